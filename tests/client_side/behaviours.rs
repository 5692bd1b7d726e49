//! The session behaviours that need no server-side store, run in every mode: the same
//! requests, the same observable answers, whether a store or the cookie keeps the session.

use session_layer::testing::MockClock;
use session_layer::SessionLayer;

use super::{builder, minutes, ring, send, Browser, Mode};

macro_rules! in_every_mode {
    ($($case:ident),* $(,)?) => {
        mod store_backed {
            $(#[tokio::test] async fn $case() { super::$case(super::Mode::Store).await })*
        }
        mod client_side_private {
            $(#[tokio::test] async fn $case() { super::$case(super::Mode::Private).await })*
        }
        mod client_side_signed {
            $(#[tokio::test] async fn $case() { super::$case(super::Mode::Signed).await })*
        }
    };
}

in_every_mode!(
    a_counter_counts_across_requests,
    untouched_requests_send_no_cookie_and_no_vary,
    responses_that_use_the_session_are_private,
    reads_within_the_touch_step_send_no_cookie,
    remember_me_sets_max_age_and_survives_later_requests,
    browser_sessions_get_no_max_age,
    rotation_changes_the_cookie_and_keeps_the_data,
    destroy_sends_a_removal_cookie,
    writes_after_destroy_start_a_new_session,
    idle_expiry_ends_the_session,
    activity_keeps_a_session_alive_until_the_absolute_deadline,
    a_cookie_the_layer_did_not_issue_is_never_adopted,
    a_sessions_own_idle_timeout_and_end_time_hold_across_requests_and_rotation,
);

fn layer(mode: Mode, clock: &MockClock) -> SessionLayer {
    builder(mode, ring(&[1]), clock).build().unwrap()
}

/// Idle 10 minutes (30 when persistent), absolute 1 hour, touch step 1 minute.
fn short_layer(mode: Mode, clock: &MockClock) -> SessionLayer {
    builder(mode, ring(&[1]), clock)
        .with_idle_timeout(minutes(10))
        .with_persistent_idle_timeout(minutes(30))
        .with_absolute_timeout(minutes(60))
        .with_touch_step(minutes(1))
        .build()
        .unwrap()
}

async fn a_counter_counts_across_requests(mode: Mode) {
    let mut browser = Browser::new(layer(mode, &MockClock::new()));
    for expected in ["1", "2", "3"] {
        let reply = browser.get("/count").await;
        assert_eq!(reply.body, expected, "{mode:?}");
    }
    let reply = browser.get("/read").await;
    assert_eq!(reply.body, "3");
}

async fn untouched_requests_send_no_cookie_and_no_vary(mode: Mode) {
    let mut browser = Browser::new(layer(mode, &MockClock::new()));
    for _ in 0..2 {
        let reply = browser.get("/untouched").await;
        assert_eq!(reply.body, "hi");
        assert!(reply.set_cookies.is_empty(), "{mode:?}: {reply:?}");
        assert_eq!(reply.vary, None, "{mode:?}");
        assert_eq!(reply.cache_control, None, "{mode:?}");
        browser.get("/count").await;
    }
}

async fn responses_that_use_the_session_are_private(mode: Mode) {
    let mut browser = Browser::new(layer(mode, &MockClock::new()));
    for path in ["/count", "/read"] {
        let reply = browser.get(path).await;
        assert_eq!(reply.vary.as_deref(), Some("Cookie"), "{mode:?} {path}");
        assert_eq!(
            reply.cache_control.as_deref(),
            Some("private"),
            "{mode:?} {path}"
        );
    }
}

async fn reads_within_the_touch_step_send_no_cookie(mode: Mode) {
    let clock = MockClock::new();
    let mut browser = Browser::new(short_layer(mode, &clock));
    assert!(browser.get("/count").await.set_cookie().is_some());
    for _ in 0..3 {
        clock.advance(std::time::Duration::from_secs(15));
        let reply = browser.get("/read").await;
        assert_eq!(reply.body, "1");
        assert!(reply.set_cookies.is_empty(), "{mode:?}: {reply:?}");
    }
}

async fn remember_me_sets_max_age_and_survives_later_requests(mode: Mode) {
    let clock = MockClock::new();
    let mut browser = Browser::new(layer(mode, &clock));
    let reply = browser.get("/remember").await;
    // The persistent idle timeout (14 days) is the nearer deadline.
    assert_eq!(
        reply.max_age(),
        Some(14 * 24 * 60 * 60),
        "{mode:?}: {reply:?}"
    );
    for _ in 0..3 {
        // Longer than the browser-session idle timeout (1 hour) each time.
        clock.advance(minutes(61));
        let reply = browser.get("/count").await;
        if reply.set_cookie().is_some() {
            assert!(
                reply.max_age().is_some(),
                "{mode:?}: a later cookie lost Max-Age"
            );
        }
    }
    assert_eq!(browser.get("/read").await.body, "4");
    assert_eq!(browser.get("/whoami").await.body, "None true");
}

async fn browser_sessions_get_no_max_age(mode: Mode) {
    let mut browser = Browser::new(layer(mode, &MockClock::new()));
    let reply = browser.get("/count").await;
    let set = reply.set_cookie().unwrap();
    assert_eq!(reply.max_age(), None, "{mode:?}: {set}");
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(
            set.split("; ").any(|a| a == attribute),
            "{mode:?}: {set} lacks {attribute}"
        );
    }
    assert!(!set.contains("Domain"), "{set}");
    assert_eq!(browser.get("/whoami").await.body, "None false");
}

async fn rotation_changes_the_cookie_and_keeps_the_data(mode: Mode) {
    let mut browser = Browser::new(layer(mode, &MockClock::new()));
    browser.get("/count").await;
    browser.get("/count").await;
    let mut seen = vec![browser.cookie.clone().unwrap()];
    for _ in 0..5 {
        let reply = browser.get("/login").await;
        assert_eq!(
            reply.set_cookies.len(),
            1,
            "{mode:?}: one Set-Cookie per response"
        );
        let value = browser.cookie.clone().unwrap();
        assert!(
            !seen.contains(&value),
            "{mode:?}: rotation kept a cookie value"
        );
        seen.push(value);
    }
    assert_eq!(
        browser.get("/read").await.body,
        "2",
        "{mode:?}: data lost in rotation"
    );
    assert_eq!(browser.get("/whoami").await.body, "Some(\"alice\") false");
}

async fn destroy_sends_a_removal_cookie(mode: Mode) {
    let mut browser = Browser::new(layer(mode, &MockClock::new()));
    browser.get("/count").await;
    let reply = browser.get("/logout").await;
    assert!(reply.removes_cookie(), "{mode:?}: {reply:?}");
    let set = reply.set_cookie().unwrap();
    for attribute in ["Secure", "HttpOnly", "Path=/"] {
        assert!(
            set.split("; ").any(|a| a == attribute),
            "{mode:?}: {set} lacks {attribute}"
        );
    }
    assert_eq!(browser.cookie, None);
    assert_eq!(browser.get("/read").await.body, "0");
}

async fn writes_after_destroy_start_a_new_session(mode: Mode) {
    let mut browser = Browser::new(layer(mode, &MockClock::new()));
    browser.get("/count").await;
    browser.get("/count").await;
    let old = browser.cookie.clone().unwrap();
    // Logout, then a write in a later request: a fresh session, counting from one.
    browser.get("/logout").await;
    assert_eq!(browser.get("/count").await.body, "1");
    assert_ne!(browser.cookie.as_deref(), Some(old.as_str()));
}

async fn idle_expiry_ends_the_session(mode: Mode) {
    let clock = MockClock::new();
    let mut browser = Browser::new(short_layer(mode, &clock));
    browser.get("/count").await;
    clock.advance(minutes(10) + std::time::Duration::from_secs(1));
    let reply = browser.get("/read").await;
    assert_eq!(reply.body, "0", "{mode:?}: an idle session lived on");
    assert!(reply.removes_cookie(), "{mode:?}: {reply:?}");
}

async fn activity_keeps_a_session_alive_until_the_absolute_deadline(mode: Mode) {
    let clock = MockClock::new();
    let mut browser = Browser::new(short_layer(mode, &clock));
    browser.get("/count").await;
    for _ in 0..6 {
        clock.advance(minutes(9));
        assert_eq!(
            browser.get("/read").await.body,
            "1",
            "{mode:?}: died while active"
        );
    }
    // 63 minutes: past the absolute deadline, however active.
    clock.advance(minutes(9));
    let reply = browser.get("/read").await;
    assert_eq!(reply.body, "0", "{mode:?}: outlived the absolute deadline");
    assert!(reply.removes_cookie());
}

async fn a_cookie_the_layer_did_not_issue_is_never_adopted(mode: Mode) {
    let app = super::app(layer(mode, &MockClock::new()));
    let other = super::app(
        builder(mode, ring(&[2]), &MockClock::new())
            .build()
            .unwrap(),
    );
    let mut foreign = Browser::on(other);
    foreign.get("/count").await;
    let planted = foreign.cookie.clone().unwrap();
    let reply = send(&app, "/count", Some(&planted)).await;
    assert_eq!(reply.body, "1", "{mode:?}");
    let set = reply.cookie_value().unwrap();
    assert!(
        !set.is_empty() && set != planted,
        "{mode:?}: adopted the planted value"
    );
}

/// A session given its own idle timeout (5 minutes, under the layer's 10) and end time
/// (20 minutes away, under the layer's hour) keeps both across later requests and a
/// rotation: the cookie's `Max-Age` is the nearer of the two, activity inside the idle
/// timeout keeps it alive, and it ends at its end time however active.
async fn a_sessions_own_idle_timeout_and_end_time_hold_across_requests_and_rotation(mode: Mode) {
    use session_layer::clock::Clock as _;

    let clock = MockClock::new();
    // On a whole second, so that whole-second end times give whole-second Max-Ages.
    clock.advance(std::time::Duration::from_millis(
        1000 - u64::from(clock.now().millisecond()),
    ));
    let mut browser = Browser::new(short_layer(mode, &clock));
    assert_eq!(browser.get("/count").await.max_age(), None, "{mode:?}");
    let reply = browser.get("/expiry?idle_secs=300").await;
    assert_eq!(reply.max_age(), Some(300), "{mode:?}: {reply:?}");

    // Idle longer than its own timeout (though within the layer's): it ended.
    clock.advance(minutes(6));
    assert_eq!(
        browser.get("/read").await.body,
        "0",
        "{mode:?}: outlived its idle timeout"
    );

    browser.get("/count").await;
    browser.get("/expiry?idle_secs=300").await;
    let end = clock.now().unix_timestamp() + 20 * 60;
    let reply = browser.get(&format!("/expiry?end_unix={end}")).await;
    assert_eq!(
        reply.max_age(),
        Some(300),
        "{mode:?}: the idle deadline is nearer"
    );
    clock.advance(minutes(4));
    let before = browser.cookie.clone();
    let reply = browser.get("/login").await;
    assert_ne!(browser.cookie, before, "{mode:?}: no rotation");
    assert_eq!(
        reply.max_age(),
        Some(300),
        "{mode:?}: rotation lost the idle timeout"
    );
    for n in 2..=4 {
        clock.advance(minutes(4));
        let reply = browser.get("/count").await;
        assert_eq!(reply.body, n.to_string(), "{mode:?}");
    }
    // A minute before the end time: a cookie sent now (a store sends none, since the
    // deadline no longer moves) lives as long as the session has left.
    clock.advance(minutes(3));
    let reply = browser.get("/count").await;
    assert_eq!(reply.body, "5", "{mode:?}");
    if reply.set_cookie().is_some() {
        assert_eq!(
            reply.max_age(),
            Some(60),
            "{mode:?}: Max-Age passed the end time"
        );
    }
    clock.advance(minutes(1));
    assert_eq!(
        browser.get("/read").await.body,
        "0",
        "{mode:?}: outlived its end time"
    );
}
