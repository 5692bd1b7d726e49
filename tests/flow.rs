//! The request flow (ARCHITECTURE.md) and the core items of SECURITY.md's checklist, in process
//! through `tower::ServiceExt` on an axum router.

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::{body, new_value, ok, set_cookies, Counts, TestApp};
use session_layer::{MemoryStore, SameSite, SessionLayer, SessionStore as _};

// ---- Cookie header and IDs -------------------------------------------------------------

#[tokio::test]
async fn untouched_sessions_cost_no_store_call_and_set_no_cookie() {
    let app = TestApp::new();
    let res = app.send("GET", "/untouched", None).await;
    ok(&res);
    assert!(set_cookies(&res).is_empty());
    assert!(res.headers().get(header::VARY).is_none());
    assert!(res.headers().get(header::CACHE_CONTROL).is_none());
    // A valid cookie on a route that does not touch the session costs nothing either.
    let id = new_value(&app.send("POST", "/incr", None).await).unwrap();
    let before = app.store.counts.total();
    let res = app.send("GET", "/untouched", Some(&id)).await;
    assert!(set_cookies(&res).is_empty());
    assert_eq!(app.store.counts.total(), before);
}

#[tokio::test]
async fn a_read_only_new_session_is_never_stored() {
    let app = TestApp::new();
    let res = app.send("GET", "/get/n", None).await;
    ok(&res);
    assert!(set_cookies(&res).is_empty());
    assert_eq!(app.store.counts.total(), 0);
    assert!(app.store.inner.is_empty());
}

#[tokio::test]
async fn malformed_cookies_are_anonymous_and_never_reach_the_store() {
    let app = TestApp::new();
    let junk = "j".repeat(10_000);
    for bad in ["*", "../x", "%00", "' OR 1=1--", "a*", "", junk.as_str()] {
        let res = app.send("GET", "/get/n", Some(bad)).await;
        ok(&res);
        assert_eq!(body(res).await, "");
    }
    // Non-UTF-8 and control-free odd bytes in the header.
    let req = Request::get("/get/n")
        .header(
            header::COOKIE,
            &b"__Host-session=\xff\xfe\x80; x=\t\x80"[..],
        )
        .body(Body::empty())
        .unwrap();
    ok(&app.request(req).await);
    assert_eq!(
        app.store.counts.total(),
        0,
        "a malformed ID reached the store"
    );
}

#[tokio::test]
async fn a_well_formed_unknown_id_is_never_adopted() {
    let app = TestApp::new();
    let forged = session_layer::id::SessionId::generate();
    let res = app.send("POST", "/incr", Some(&forged.expose())).await;
    ok(&res);
    let issued = new_value(&res).expect("a new session");
    assert_ne!(issued, forged.expose());
    let none = app.store.inner.len();
    assert_eq!(none, 1);
    use session_layer::SessionStore;
    let now = time::OffsetDateTime::now_utc();
    assert!(app
        .store
        .inner
        .load(&forged.storage_key(), None, now)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn the_session_cookie_in_a_second_cookie_header_is_found() {
    let app = TestApp::new();
    let id = new_value(&app.send("POST", "/incr", None).await).unwrap();
    let req = Request::get("/get/n")
        .header(header::COOKIE, "a=1; b=2")
        .header(header::COOKIE, format!("c=3; __Host-session={id}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(body(app.request(req).await).await, "1");
}

#[tokio::test]
async fn duplicate_cookies_follow_the_first_valid_rule_and_are_never_merged() {
    let app = TestApp::new();
    let a = new_value(&app.send("POST", "/set/who/a", None).await).unwrap();
    let b = new_value(&app.send("POST", "/set/who/b", None).await).unwrap();
    let req = Request::get("/get/who")
        .header(
            header::COOKIE,
            format!("__Host-session=junk; __Host-session={b}; __Host-session={a}"),
        )
        .body(Body::empty())
        .unwrap();
    assert_eq!(body(app.request(req).await).await, "\"b\"");
}

#[tokio::test]
async fn cookie_names_match_byte_for_byte() {
    let app = TestApp::new();
    let id = new_value(&app.send("POST", "/incr", None).await).unwrap();
    for name in [
        "__host-session",
        "__Host%2Dsession",
        "__HOST-SESSION",
        " __Host-session ",
    ] {
        let req = Request::get("/get/n")
            .header(header::COOKIE, format!("{name}={id}"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(body(app.request(req).await).await, "", "{name:?} matched");
    }
}

// ---- Loading and saving ----------------------------------------------------------------

#[tokio::test]
async fn reads_load_the_record_once_per_request() {
    let app = TestApp::new();
    let id = new_value(&app.send("POST", "/incr", None).await).unwrap();
    let loads = Counts::get(&app.store.counts.load);
    let res = app.send("GET", "/get_twice", Some(&id)).await;
    assert_eq!(body(res).await, "Some(1)Some(1)None");
    assert_eq!(Counts::get(&app.store.counts.load), loads + 1);
}

#[tokio::test]
async fn each_request_runs_at_most_one_store_write() {
    let app = TestApp::new();
    let mut id = new_value(&app.send("POST", "/incr", None).await).unwrap();
    for uri in [
        "/incr",
        "/set/a/b",
        "/rotate",
        "/remember/true",
        "/login_and_write/al",
        "/logout",
    ] {
        let before = app.store.counts.writes();
        let res = app.send("POST", uri, Some(&id)).await;
        ok(&res);
        assert!(
            app.store.counts.writes() - before <= 1,
            "{uri} wrote more than once"
        );
        if let Some(next) = new_value(&res) {
            id = next;
        }
    }
}

#[tokio::test]
async fn a_write_without_a_read_keeps_the_cookie_and_the_other_keys() {
    let app = TestApp::new();
    let id = new_value(&app.send("POST", "/incr", None).await).unwrap();
    let (loads, writes) = (
        Counts::get(&app.store.counts.load),
        app.store.counts.writes(),
    );
    let res = app.send("POST", "/set/colour/blue", Some(&id)).await;
    ok(&res);
    assert!(
        set_cookies(&res).is_empty(),
        "a write to a browser session re-sent the cookie"
    );
    // One `apply`, which checks the limits and writes in the same step: no load first.
    assert_eq!(Counts::get(&app.store.counts.load), loads);
    assert_eq!(app.store.counts.writes(), writes + 1);
    assert_eq!(
        body(app.send("GET", "/get/colour", Some(&id)).await).await,
        "\"blue\""
    );
    assert_eq!(body(app.send("GET", "/get/n", Some(&id)).await).await, "1");
}

#[tokio::test]
async fn concurrent_requests_writing_different_keys_keep_both_writes() {
    let app = TestApp::new();
    let id = new_value(&app.send("POST", "/incr", None).await).unwrap();
    let (a, b) = tokio::join!(
        app.send("POST", "/set/left/1", Some(&id)),
        app.send("POST", "/set/right/2", Some(&id)),
    );
    ok(&a);
    ok(&b);
    assert_eq!(
        body(app.send("GET", "/get/left", Some(&id)).await).await,
        "\"1\""
    );
    assert_eq!(
        body(app.send("GET", "/get/right", Some(&id)).await).await,
        "\"2\""
    );
}

#[tokio::test]
async fn a_slow_save_after_logout_does_not_bring_the_session_back() {
    let app = TestApp::new();
    let id = new_value(&app.send("POST", "/login_and_write/alice", None).await).unwrap();
    let slow = {
        let router = app.router.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let req = Request::post("/slow_incr")
                .header(header::COOKIE, format!("__Host-session={id}"))
                .body(Body::empty())
                .unwrap();
            tower::ServiceExt::oneshot(router, req).await.unwrap()
        })
    };
    app.gates.loaded.notified().await;
    let res = app.send("POST", "/logout", Some(&id)).await;
    ok(&res);
    app.gates.release.notify_one();
    let slow = slow.await.unwrap();
    ok(&slow);
    // The old session stays dead: its ID is anonymous, its user is gone.
    assert_eq!(body(app.send("GET", "/whoami", Some(&id)).await).await, "");
    // The slow request's write went to a fresh session, never to the old ID.
    if let Some(fresh) = new_value(&slow) {
        assert_ne!(fresh, id);
        assert_eq!(
            body(app.send("GET", "/whoami", Some(&fresh)).await).await,
            ""
        );
    }
}

// ---- Rotation, logout, revocation ------------------------------------------------------

#[tokio::test]
async fn rotation_at_login_issues_a_new_id_and_kills_the_old_one() {
    let app = TestApp::new();
    let before = new_value(&app.send("POST", "/set/cart/apple", None).await).unwrap();
    let res = app.send("POST", "/login/alice", Some(&before)).await;
    let after = new_value(&res).expect("login sets a new cookie");
    assert_ne!(after, before);
    assert_eq!(
        body(app.send("GET", "/whoami", Some(&after)).await).await,
        "alice"
    );
    assert_eq!(
        body(app.send("GET", "/get/cart", Some(&after)).await).await,
        "\"apple\""
    );
    // Replaying the old ID is anonymous.
    assert_eq!(
        body(app.send("GET", "/whoami", Some(&before)).await).await,
        ""
    );
    assert_eq!(app.store.inner.len(), 1);
}

#[tokio::test]
async fn five_rotations_in_a_row_leave_only_the_newest_id_alive() {
    let app = TestApp::new();
    let mut ids = vec![new_value(&app.send("POST", "/set/keep/me", None).await).unwrap()];
    for _ in 0..5 {
        let res = app.send("POST", "/rotate", Some(ids.last().unwrap())).await;
        ids.push(new_value(&res).unwrap());
    }
    let (newest, old) = ids.split_last().unwrap();
    assert_eq!(
        body(app.send("GET", "/get/keep", Some(newest)).await).await,
        "\"me\""
    );
    for id in old {
        assert_eq!(body(app.send("GET", "/get/keep", Some(id)).await).await, "");
    }
}

#[tokio::test]
async fn rotating_and_writing_sends_exactly_one_set_cookie() {
    let app = TestApp::new();
    let id = new_value(&app.send("POST", "/incr", None).await).unwrap();
    let res = app.send("POST", "/login_and_write/bob", Some(&id)).await;
    assert_eq!(set_cookies(&res).len(), 1);
}

#[tokio::test]
async fn rotation_keeps_the_absolute_deadline() {
    let app = TestApp::new();
    let id = new_value(&app.send("POST", "/incr", None).await).unwrap();
    let before = body(app.send("GET", "/meta", Some(&id)).await).await;
    app.advance(600);
    let id = new_value(&app.send("POST", "/rotate", Some(&id)).await).unwrap();
    let after = body(app.send("GET", "/meta", Some(&id)).await).await;
    let abs = |s: &str| s.split(' ').nth(1).unwrap().to_owned();
    let created = |s: &str| s.split(' ').nth(3).unwrap().to_owned();
    assert_eq!(abs(&before), abs(&after));
    assert_eq!(created(&before), created(&after));
}

#[tokio::test]
async fn a_hundred_concurrent_requests_during_a_rotation_see_one_new_id() {
    let app = TestApp::new();
    let id = new_value(&app.send("POST", "/incr", None).await).unwrap();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let router = app.router.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let uri = if i == 50 {
                "/rotate".to_owned()
            } else {
                format!("/set/k{i}/v")
            };
            let req = Request::post(uri)
                .header(header::COOKIE, format!("__Host-session={id}"))
                .body(Body::empty())
                .unwrap();
            tower::ServiceExt::oneshot(router, req).await.unwrap()
        }));
    }
    let mut rotated = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let res = t.await.unwrap();
        ok(&res);
        if i == 50 {
            rotated.push(new_value(&res).expect("the rotation sets a cookie"));
        }
    }
    assert_eq!(rotated.len(), 1);
    assert_eq!(
        body(app.send("GET", "/get/n", Some(&id)).await).await,
        "",
        "old ID alive"
    );
    assert_eq!(
        body(app.send("GET", "/get/n", Some(&rotated[0])).await).await,
        "1"
    );
    // Writes that raced ahead of the rotation were carried; later ones started new sessions.
    let live_with_n = app.store.inner.len();
    assert!(live_with_n >= 1);
}

#[tokio::test]
async fn logout_deletes_the_record_and_sends_a_matching_removal_cookie() {
    let app = TestApp::new();
    let id = new_value(&app.send("POST", "/login_and_write/carol", None).await).unwrap();
    let res = app.send("POST", "/logout", Some(&id)).await;
    ok(&res);
    let cookies = set_cookies(&res);
    assert_eq!(cookies.len(), 1);
    let c = cookie::Cookie::parse(cookies[0].clone()).unwrap();
    assert_eq!(c.name(), "__Host-session");
    assert_eq!(c.value(), "");
    assert_eq!(c.path(), Some("/"));
    assert_eq!(c.secure(), Some(true));
    assert_eq!(c.http_only(), Some(true));
    assert_eq!(c.same_site(), Some(SameSite::Lax));
    assert_eq!(c.max_age(), Some(time::Duration::ZERO));
    assert!(app.store.inner.is_empty(), "the record survived logout");
    assert_eq!(body(app.send("GET", "/whoami", Some(&id)).await).await, "");
}

#[tokio::test]
async fn writes_after_logout_start_a_new_session() {
    let app = TestApp::new();
    let id = new_value(&app.send("POST", "/login_and_write/dave", None).await).unwrap();
    let res = app.send("POST", "/logout_then_flash", Some(&id)).await;
    let fresh = new_value(&res).expect("a new session for the flash");
    assert_ne!(fresh, id);
    assert_eq!(
        body(app.send("GET", "/get/flash", Some(&fresh)).await).await,
        "\"Signed out\""
    );
    assert_eq!(
        body(app.send("GET", "/whoami", Some(&fresh)).await).await,
        ""
    );
    assert_eq!(body(app.send("GET", "/whoami", Some(&id)).await).await, "");
}

#[tokio::test]
async fn logout_while_the_store_is_down_is_an_error_not_a_success() {
    let app = TestApp::new();
    let id = new_value(&app.send("POST", "/login/erin", None).await).unwrap();
    app.store.set_down(true);
    let res = app.send("POST", "/logout", Some(&id)).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(set_cookies(&res).is_empty());
    app.store.set_down(false);
    assert_eq!(
        body(app.send("GET", "/whoami", Some(&id)).await).await,
        "erin"
    );
}

#[tokio::test]
async fn sign_out_everywhere_else_ends_the_other_sessions_of_that_user_only() {
    let app = TestApp::new();
    let mut alice = Vec::new();
    for _ in 0..3 {
        alice.push(new_value(&app.send("POST", "/login/alice", None).await).unwrap());
    }
    let bob = new_value(&app.send("POST", "/login/bob", None).await).unwrap();
    let res = app.send("POST", "/revoke_others", Some(&alice[0])).await;
    assert_eq!(body(res).await, "2");
    assert_eq!(
        body(app.send("GET", "/whoami", Some(&alice[0])).await).await,
        "alice"
    );
    for other in &alice[1..] {
        assert_eq!(
            body(app.send("GET", "/whoami", Some(other)).await).await,
            ""
        );
    }
    assert_eq!(
        body(app.send("GET", "/whoami", Some(&bob)).await).await,
        "bob"
    );
}

#[tokio::test]
async fn listing_shows_handles_not_ids_and_no_one_revokes_anothers_session() {
    let app = TestApp::new();
    let a1 = new_value(&app.send("POST", "/login/alice", None).await).unwrap();
    let a2 = new_value(&app.send("POST", "/login/alice", None).await).unwrap();
    let bob = new_value(&app.send("POST", "/login/bob", None).await).unwrap();
    let listing = body(app.send("GET", "/sessions", Some(&a1)).await).await;
    let entries: Vec<&str> = listing.split(',').collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries.iter().filter(|e| e.ends_with('*')).count(), 1);
    assert!(
        !listing.contains(&a1) && !listing.contains(&a2),
        "listing leaks an ID"
    );
    let bob_handle = body(app.send("GET", "/sessions", Some(&bob)).await).await;
    let bob_handle = bob_handle.trim_end_matches('*');
    let res = app
        .send("POST", &format!("/revoke/{bob_handle}"), Some(&a1))
        .await;
    assert_eq!(body(res).await, "false");
    assert_eq!(
        body(app.send("GET", "/whoami", Some(&bob)).await).await,
        "bob"
    );
    // Alice can end her own other session by its handle.
    let other = entries.iter().find(|e| !e.ends_with('*')).unwrap();
    let res = app
        .send("POST", &format!("/revoke/{other}"), Some(&a1))
        .await;
    assert_eq!(body(res).await, "true");
    assert_eq!(body(app.send("GET", "/whoami", Some(&a2)).await).await, "");
}

// ---- Expiry ----------------------------------------------------------------------------

#[tokio::test]
async fn a_request_after_the_idle_timeout_is_anonymous_and_clears_the_cookie() {
    let app = TestApp::new();
    let id = new_value(&app.send("POST", "/incr", None).await).unwrap();
    app.advance(3600 + 1);
    let res = app.send("GET", "/get/n", Some(&id)).await;
    let cookies = set_cookies(&res);
    assert_eq!(body(res).await, "");
    assert_eq!(cookies.len(), 1);
    assert!(cookies[0].contains("Max-Age=0"), "{cookies:?}");
    assert!(app.store.inner.is_empty(), "the expired record stayed");
}

#[tokio::test]
async fn activity_keeps_a_session_alive_until_the_absolute_deadline_only() {
    let app = TestApp::with(|b| {
        b.with_idle_timeout(std::time::Duration::from_secs(600))
            .with_absolute_timeout(std::time::Duration::from_secs(3600))
            .with_touch_step(std::time::Duration::from_secs(30))
    });
    let id = new_value(&app.send("POST", "/incr", None).await).unwrap();
    let mut elapsed = 0;
    while elapsed + 599 < 3600 {
        app.advance(599);
        elapsed += 599;
        assert_eq!(
            body(app.send("GET", "/get/n", Some(&id)).await).await,
            "1",
            "died at {elapsed}s"
        );
    }
    app.advance(3600 - elapsed);
    assert_eq!(
        body(app.send("GET", "/get/n", Some(&id)).await).await,
        "",
        "outlived the absolute deadline"
    );
}

#[tokio::test]
async fn writes_without_reads_also_keep_a_session_alive() {
    let app = TestApp::with(|b| {
        b.with_idle_timeout(std::time::Duration::from_secs(600))
            .with_touch_step(std::time::Duration::from_secs(60))
    });
    let id = new_value(&app.send("POST", "/set/k/0", None).await).unwrap();
    let writes = app.store.counts.writes();
    for i in 1..=5 {
        app.advance(500);
        ok(&app.send("POST", &format!("/set/k/{i}"), Some(&id)).await);
    }
    // 2,500 s after the last read, past four idle timeouts: the writes kept it alive, each
    // with one store write that carried the data and the new idle deadline together.
    assert_eq!(
        app.store.counts.writes() - writes,
        5,
        "one store write per request"
    );
    assert_eq!(
        body(app.send("GET", "/get/k", Some(&id)).await).await,
        "\"5\""
    );
}

#[tokio::test]
async fn busy_sessions_are_written_once_per_touch_step() {
    let app = TestApp::new(); // touch step: 60 s
    let id = new_value(&app.send("POST", "/incr", None).await).unwrap();
    let writes = app.store.counts.writes();
    for _ in 0..120 {
        app.advance(1);
        ok(&app.send("GET", "/get/n", Some(&id)).await);
    }
    // The due touches ride on the loads: no read adds a store call of its own.
    let extra = app.store.counts.writes() - writes;
    assert_eq!(extra, 0, "{extra} writes for 120 reads over 2 minutes");
}

#[tokio::test]
async fn remember_me_gives_a_max_age_that_survives_later_writes() {
    let app = TestApp::new();
    let id = new_value(&app.send("POST", "/incr", None).await).unwrap();
    let res = app.send("POST", "/remember/true", Some(&id)).await;
    let cookie = cookie::Cookie::parse(set_cookies(&res)[0].clone()).unwrap();
    assert_eq!(cookie.max_age(), Some(time::Duration::days(14)));
    // Later writes and touches keep it persistent.
    app.advance(3 * 3600);
    assert_eq!(body(app.send("POST", "/incr", Some(&id)).await).await, "2");
    let meta = body(app.send("GET", "/meta", Some(&id)).await).await;
    assert!(meta.contains(" true "), "{meta}");
    let res = app.send("GET", "/get/n", Some(&id)).await;
    if let Some(c) = set_cookies(&res).first() {
        let c = cookie::Cookie::parse(c.clone()).unwrap();
        assert!(c.max_age().unwrap() <= time::Duration::days(14));
    }
    // And it is still alive after the browser-session idle timeout.
    app.advance(2 * 3600);
    assert_eq!(body(app.send("GET", "/get/n", Some(&id)).await).await, "2");
    // Turning it off sends a browser-session cookie again.
    let res = app.send("POST", "/remember/false", Some(&id)).await;
    let c = cookie::Cookie::parse(set_cookies(&res)[0].clone()).unwrap();
    assert_eq!(c.max_age(), None);
}

#[tokio::test]
async fn the_expiry_after_a_reload_is_the_stored_one() {
    let app = TestApp::new();
    let id = new_value(&app.send("POST", "/remember/true", None).await).unwrap();
    let first = body(app.send("GET", "/meta", Some(&id)).await).await;
    app.advance(10);
    let second = body(app.send("GET", "/meta", Some(&id)).await).await;
    assert_eq!(
        first, second,
        "the deadline was recomputed instead of read back"
    );
}

#[tokio::test]
async fn cookie_max_age_never_exceeds_the_remaining_lifetime_or_400_days() {
    let app = TestApp::with(|b| {
        b.with_persistent_idle_timeout(std::time::Duration::from_secs(500 * 86400))
            .with_absolute_timeout(std::time::Duration::from_secs(600 * 86400))
    });
    let res = app.send("POST", "/remember/true", None).await;
    let c = cookie::Cookie::parse(set_cookies(&res)[0].clone()).unwrap();
    assert_eq!(c.max_age(), Some(time::Duration::days(400)));

    let app = TestApp::with(|b| {
        b.with_persistent_idle_timeout(std::time::Duration::from_secs(3600))
            .with_absolute_timeout(std::time::Duration::from_secs(7200))
            .with_touch_step(std::time::Duration::from_secs(1))
    });
    let id = new_value(&app.send("POST", "/remember/true", None).await).unwrap();
    app.advance(3000);
    let res = app.send("GET", "/get/remembered", Some(&id)).await;
    let c = cookie::Cookie::parse(set_cookies(&res)[0].clone()).unwrap();
    assert_eq!(c.max_age(), Some(time::Duration::seconds(3600)));
    app.advance(3000);
    let res = app.send("GET", "/get/remembered", Some(&id)).await;
    let c = cookie::Cookie::parse(set_cookies(&res)[0].clone()).unwrap();
    assert_eq!(
        c.max_age(),
        Some(time::Duration::seconds(1200)),
        "Max-Age passes the absolute deadline"
    );
}

// ---- Set-Cookie output -----------------------------------------------------------------

#[tokio::test]
async fn default_cookies_pass_the_audit() {
    let app = TestApp::new();
    let res = app.send("POST", "/incr", None).await;
    let raw = &set_cookies(&res)[0];
    let c = cookie::Cookie::parse(raw.clone()).unwrap();
    assert!(c.name().starts_with("__Host-"));
    assert_eq!(c.secure(), Some(true));
    assert_eq!(c.http_only(), Some(true));
    assert_eq!(c.same_site(), Some(SameSite::Lax));
    assert_eq!(c.path(), Some("/"));
    assert_eq!(c.domain(), None);
    assert_eq!(c.max_age(), None, "a browser-session cookie has no Max-Age");
    assert_eq!(c.value().len(), 43);
}

#[tokio::test]
async fn session_responses_vary_by_cookie_and_are_private() {
    let app = TestApp::new();
    for (uri, method) in [("/get/n", "GET"), ("/incr", "POST")] {
        let res = app.send(method, uri, None).await;
        assert_eq!(res.headers()[header::VARY], "Cookie");
        assert_eq!(res.headers()[header::CACHE_CONTROL], "private");
    }
}

#[test]
fn invalid_configurations_are_refused_with_what_to_change() {
    let build =
        |f: fn(session_layer::SessionLayerBuilder) -> session_layer::SessionLayerBuilder| {
            f(SessionLayer::builder(MemoryStore::default()))
                .build()
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
    assert!(build(|b| b.with_domain("example.com")).contains("Domain"));
    assert!(build(|b| b.with_path("/app")).contains("Path=/"));
    assert!(build(|b| b.with_secure(false)).contains("Secure"));
    assert!(build(|b| b
        .with_cookie_name("x")
        .with_same_site(SameSite::None)
        .with_secure(false))
    .contains("SameSite=None"));
    for name in ["a;b", "a,b", "a b", "a\r\nb", "", "a=b"] {
        let err = SessionLayer::builder(MemoryStore::default())
            .with_cookie_name(name)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("cookie name"), "{name:?}");
    }
    assert!(build(|b| b.with_cookie_name("s").with_path("/a;b")).contains("path"));
    assert!(build(|b| b.with_cookie_name("s").with_domain("a b")).contains("domain"));
    assert!(
        build(|b| b.with_touch_step(std::time::Duration::from_secs(7200))).contains("touch step")
    );
    assert!(
        build(|b| b.with_idle_timeout(std::time::Duration::from_secs(100 * 86400)))
            .contains("absolute")
    );
    // The documented development switch is accepted and drops the prefix.
    SessionLayer::builder(MemoryStore::default())
        .with_plain_http_for_development()
        .build()
        .unwrap();
}

#[tokio::test]
async fn the_development_switch_sends_a_plain_cookie() {
    let mut app = TestApp::with(|b| b.with_plain_http_for_development());
    app.cookie_name = "session".into();
    let res = app.send("POST", "/incr", None).await;
    let c = cookie::Cookie::parse(set_cookies(&res)[0].clone()).unwrap();
    assert_eq!(c.name(), "session");
    assert_eq!(c.secure(), None);
    assert_eq!(c.http_only(), Some(true));
}

// ---- Errors ----------------------------------------------------------------------------

#[tokio::test]
async fn a_load_failure_reaches_the_handler_as_an_error_not_an_empty_session() {
    let app = TestApp::new();
    let id = new_value(&app.send("POST", "/incr", None).await).unwrap();
    app.store.set_down(true);
    let res = app.send("POST", "/incr", Some(&id)).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        set_cookies(&res).is_empty(),
        "a failing store changed the client's cookie"
    );
    app.store.set_down(false);
    assert_eq!(
        body(app.send("POST", "/incr", Some(&id)).await).await,
        "2",
        "data was lost"
    );
}

#[tokio::test]
async fn a_save_failure_is_a_server_error_without_set_cookie() {
    let app = TestApp::new();
    app.store.set_down(true);
    let res = app.send("POST", "/set/a/b", None).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(set_cookies(&res).is_empty());
    assert_eq!(res.headers()[header::CACHE_CONTROL], "private");
}

#[tokio::test]
async fn a_store_whose_calls_wait_saves_as_one_that_answers_at_once() {
    let app = TestApp::new();
    let id = new_value(&app.send("POST", "/set/a/b", None).await).unwrap();
    app.store
        .waits
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        body(app.send("GET", "/get/a", Some(&id)).await).await,
        "\"b\""
    );
    let fresh = new_value(&app.send("POST", "/set/c/d", None).await).expect("a new session");
    ok(&app.send("POST", "/set/c/e", Some(&id)).await);
    app.store
        .waits
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        body(app.send("GET", "/get/c", Some(&fresh)).await).await,
        "\"d\""
    );
    assert_eq!(
        body(app.send("GET", "/get/c", Some(&id)).await).await,
        "\"e\""
    );
}

#[tokio::test]
async fn the_save_error_status_is_configurable() {
    let app = TestApp::with(|b| b.with_save_error_status(StatusCode::SERVICE_UNAVAILABLE));
    app.store.set_down(true);
    assert_eq!(
        app.send("POST", "/set/a/b", None).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let err = SessionLayer::builder(MemoryStore::default())
        .with_save_error_status(StatusCode::OK)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("5xx"));
}

#[tokio::test]
async fn a_handler_without_the_layer_gets_a_rejection_that_says_to_add_it() {
    let router = common::routes(common::Gates::default());
    let res =
        tower::ServiceExt::oneshot(router, Request::get("/get/n").body(Body::empty()).unwrap())
            .await
            .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body(res).await.contains("SessionLayer::new"));
}

#[tokio::test]
async fn huge_values_and_too_many_keys_are_size_errors() {
    let app = TestApp::new();
    let res = app.send("POST", "/big/100000", None).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(set_cookies(&res).is_empty());
    assert!(app.store.inner.is_empty());
    // The 1,025th key is refused; what the handler wrote before stays within the limit.
    let res = app.send("POST", "/many/2000", None).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(app.store.inner.len() <= 1);
}

#[tokio::test]
async fn a_sign_in_past_the_limits_fails_the_save_and_keeps_the_old_session() {
    // A rotation whose writes no read preceded: the store checks them on the record it
    // moves (`rotate_within`), and refuses to move it.
    let app = TestApp::with(|b| b.with_limits(64 * 1024, 3));
    let id = new_value(&app.send("POST", "/set/a/1", None).await).unwrap();
    ok(&app.send("POST", "/set/b/2", Some(&id)).await);
    ok(&app.send("POST", "/set/c/3", Some(&id)).await);
    let res = app.send("POST", "/login_and_write/alice", Some(&id)).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        set_cookies(&res).is_empty(),
        "a refused sign-in set a cookie"
    );
    assert_eq!(
        app.store.inner.len(),
        1,
        "the refused sign-in made a session"
    );
    assert_eq!(body(app.send("GET", "/whoami", Some(&id)).await).await, "");
    assert_eq!(
        body(app.send("GET", "/get/c", Some(&id)).await).await,
        "\"3\""
    );
    // Within the limits, the same sign-in moves the session.
    ok(&app.send("POST", "/remove/c", Some(&id)).await);
    let signed_in =
        new_value(&app.send("POST", "/login_and_write/alice", Some(&id)).await).expect("a new ID");
    assert_ne!(signed_in, id);
    assert_eq!(
        body(app.send("GET", "/whoami", Some(&signed_in)).await).await,
        "alice"
    );
    assert_eq!(
        body(app.send("GET", "/get/a", Some(&signed_in)).await).await,
        "\"1\""
    );
}

#[tokio::test]
async fn a_blind_write_past_the_limits_fails_the_save_and_writes_nothing() {
    let logs = session_layer_test_support::logs::LogCapture::global();
    let app = TestApp::with(|b| b.with_limits(64 * 1024, 3));
    let id = new_value(&app.send("POST", "/set/a/1", None).await).unwrap();
    logs.forbid("session cookie", &id);
    ok(&app.send("POST", "/set/b/2", Some(&id)).await);
    ok(&app.send("POST", "/set/c/3", Some(&id)).await);
    let key = session_layer::id::SessionId::parse(id.as_bytes())
        .unwrap()
        .storage_key();
    let before = app
        .store
        .inner
        .load(&key, None, session_layer::clock::Clock::now(&app.clock))
        .await
        .unwrap()
        .expect("live");

    // A fourth key, written without a read and with a touch due: the store refuses it.
    app.advance(120);
    let res = app.send("POST", "/set/d/4", Some(&id)).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(set_cookies(&res).is_empty(), "a failed save set a cookie");
    assert_eq!(
        app.store
            .inner
            .load(&key, None, session_layer::clock::Clock::now(&app.clock))
            .await
            .unwrap()
            .as_ref(),
        Some(&before),
        "a write past the limits changed the session (data or deadlines)"
    );
    assert!(
        logs.contains("a session size limit was passed"),
        "the refused save was not logged as a size limit"
    );
    logs.assert_clean();

    // Read first, and `insert` itself refuses, so the handler can react.
    let updates = Counts::get(&app.store.counts.apply);
    let res = app.send("POST", "/incr", Some(&id)).await;
    assert_ne!(res.status(), StatusCode::OK);
    assert!(logs.contains("4 keys, over the limit of 3"));
    assert_eq!(Counts::get(&app.store.counts.apply), updates);
}
