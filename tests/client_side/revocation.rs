//! What client-side mode cannot do without a server, and what it offers instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use session_layer::clock::Clock as _;
use session_layer::testing::MockClock;
use session_layer::{ClientSide, SessionLayer};
use time::OffsetDateTime;

use super::{builder, minutes, ring, send, Browser, CLIENT_MODES};

#[tokio::test]
async fn a_copy_kept_after_logout_still_opens_until_its_idle_deadline() {
    // The documented limit: the server keeps nothing to compare a kept copy with.
    for mode in CLIENT_MODES {
        let clock = MockClock::new();
        let layer = builder(mode, ring(&[1]), &clock)
            .with_idle_timeout(minutes(10))
            .with_persistent_idle_timeout(minutes(30))
            .build()
            .unwrap();
        let mut browser = Browser::new(layer);
        browser.get("/count").await;
        let kept = browser.cookie.clone().unwrap();
        assert!(browser.get("/logout").await.removes_cookie());
        assert_eq!(
            send(&browser.app, "/read", Some(&kept)).await.body,
            "1",
            "{mode:?}"
        );
        clock.advance(minutes(10) + std::time::Duration::from_secs(1));
        assert_eq!(
            send(&browser.app, "/read", Some(&kept)).await.body,
            "0",
            "{mode:?}"
        );
    }
}

type Times = Arc<Mutex<HashMap<String, OffsetDateTime>>>;

fn with_not_before(config: ClientSide, times: &Times) -> ClientSide {
    let times = times.clone();
    config.with_not_before(move |user: String| {
        let time = times.lock().unwrap().get(&user).copied();
        async move { Ok::<_, std::io::Error>(time) }
    })
}

/// A client-side layer (signed-only or private) whose not-before times are `times`.
fn revocable(signed: bool, times: &Times, clock: &MockClock) -> SessionLayer {
    let config = ClientSide::new(ring(&[1]));
    let config = with_not_before(if signed { config.signed_only() } else { config }, times);
    SessionLayer::client_side_builder(config)
        .with_clock(clock.clone())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_not_before_time_voids_the_users_older_sessions() {
    for signed in [false, true] {
        let clock = MockClock::new();
        let times = Times::default();
        let mut laptop = Browser::new(revocable(signed, &times, &clock));
        laptop.get("/count").await;
        laptop.get("/login").await;
        let mut phone = Browser::on(laptop.app.clone());
        phone.get("/count").await;
        phone.get("/login").await;
        assert_eq!(phone.get("/whoami").await.body, "Some(\"alice\") false");

        // "Sign out everywhere": sessions created before now are void.
        clock.advance(minutes(1));
        times.lock().unwrap().insert("alice".into(), clock.now());
        let reply = phone.get("/read").await;
        assert_eq!(reply.body, "0", "signed={signed}");
        assert!(reply.removes_cookie());
        assert_eq!(laptop.get("/whoami").await.body, "None false");

        // A session created afterwards lives; other users are untouched.
        phone.get("/count").await;
        phone.get("/login").await;
        assert_eq!(phone.get("/whoami").await.body, "Some(\"alice\") false");
        let mut other = Browser::on(laptop.app.clone());
        other.get("/user?name=bob").await;
        assert_eq!(other.get("/whoami").await.body, "Some(\"bob\") false");
    }
}

#[tokio::test]
async fn the_first_sign_in_after_a_not_before_time_lives() {
    // A visitor's session starts before the user's "sign out everywhere" (a cart, a
    // consent choice), and the sign-in that follows rotates it: the sign-in is after the
    // cut-off, so the session lives, with its data.
    for signed in [false, true] {
        let clock = MockClock::new();
        let times = Times::default();
        let mut browser = Browser::new(revocable(signed, &times, &clock));
        assert_eq!(browser.get("/count").await.body, "1");
        clock.advance(minutes(1));
        times.lock().unwrap().insert("alice".into(), clock.now());
        clock.advance(minutes(1));
        browser.get("/login").await;
        assert_eq!(
            browser.get("/whoami").await.body,
            "Some(\"alice\") false",
            "signed={signed}: the sign-in after the cut-off was voided"
        );
        assert_eq!(browser.get("/read").await.body, "1", "signed={signed}");
        // A sign-out everywhere after that sign-in still ends it.
        clock.advance(minutes(1));
        times.lock().unwrap().insert("alice".into(), clock.now());
        assert_eq!(browser.get("/whoami").await.body, "None false");
    }
}

#[tokio::test]
async fn a_write_unread_after_sign_out_everywhere_starts_a_new_session() {
    // The save has to open the cookie and wait for the not-before check before it reseals.
    let clock = MockClock::new();
    let times = Times::default();
    let mut browser = Browser::new(revocable(false, &times, &clock));
    browser.get("/count").await;
    browser.get("/login").await;
    assert_eq!(browser.get("/whoami").await.body, "Some(\"alice\") false");

    // Before the sign-out, a write unread keeps the user and the count.
    assert_eq!(browser.get("/put?key=a&len=1").await.status, StatusCode::OK);
    assert_eq!(browser.get("/read").await.body, "1");
    assert_eq!(browser.get("/whoami").await.body, "Some(\"alice\") false");

    clock.advance(minutes(1));
    times.lock().unwrap().insert("alice".into(), clock.now());
    let reply = browser.get("/put?key=b&len=1").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        reply.set_cookies.len(),
        1,
        "a new session's cookie: {reply:?}"
    );
    // A new session, created after the sign-out: it lives (a resealed old one would be void
    // and its cookie removed on the next request), without the old user and data.
    let reply = browser.get("/read").await;
    assert_eq!(reply.body, "0", "the old data is gone");
    assert!(!reply.removes_cookie(), "{reply:?}");
    assert_eq!(browser.get("/whoami").await.body, "None false");
}

#[tokio::test]
async fn a_failing_not_before_check_is_an_error_not_an_empty_session() {
    let clock = MockClock::new();
    let failing = Arc::new(Mutex::new(false));
    let flag = failing.clone();
    let config = ClientSide::new(ring(&[1])).with_not_before(move |_user: String| {
        let fail = *flag.lock().unwrap();
        async move {
            if fail {
                Err(std::io::Error::other("database down"))
            } else {
                Ok(None)
            }
        }
    });
    let layer = SessionLayer::client_side_builder(config)
        .with_clock(clock)
        .build()
        .unwrap();
    let mut browser = Browser::new(layer);
    browser.get("/login").await;
    browser.get("/count").await;
    *failing.lock().unwrap() = true;
    let reply = browser.get("/read").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    assert!(reply.set_cookies.is_empty(), "{reply:?}");
    // A write unread has to open the cookie at the save: the failure is the save's error.
    let reply = browser.get("/put?key=a&len=1").await;
    assert!(reply.status.is_server_error(), "{reply:?}");
    assert!(reply.set_cookies.is_empty(), "{reply:?}");
    *failing.lock().unwrap() = false;
    assert_eq!(browser.get("/read").await.body, "1");
}

#[tokio::test]
async fn per_user_listing_and_revocation_say_they_need_a_store() {
    for mode in CLIENT_MODES {
        let mut browser = Browser::new(
            builder(mode, ring(&[1]), &MockClock::new())
                .build()
                .unwrap(),
        );
        // Without a user there is nothing to list, as in every mode.
        assert_eq!(browser.get("/list").await.body, "0");
        assert_eq!(browser.get("/revoke-others").await.body, "0");
        browser.get("/login").await;
        for path in ["/list", "/revoke-others"] {
            let reply = browser.get(path).await;
            assert_eq!(reply.status, StatusCode::NOT_IMPLEMENTED, "{mode:?} {path}");
            assert!(
                reply.body.contains("cannot be listed or revoked"),
                "{}",
                reply.body
            );
        }
    }
}
