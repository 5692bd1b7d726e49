//! Races and edges of the store contract, as users meet them: over real HTTP on the
//! memory store (a multi-thread runtime, so requests really run at once), and through the
//! layer with a clock the test moves.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use common::{body, new_value, ok, TestApp};
use session_layer::{MemoryStore, SessionLayer};
use session_layer_test_support::app::{router, routes, serve};
use session_layer_test_support::races;
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_out_everywhere_else_racing_a_rotation_leaves_no_survivor() {
    let addr = serve(router(MemoryStore::default())).await;
    races::revocation_racing_rotation(addr, 150).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_out_everywhere_else_ends_sessions_that_changed_hands_under_load() {
    let addr = serve(router(MemoryStore::default())).await;
    races::revocation_after_owner_changes(addr, 64, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_reports_only_what_it_ended() {
    let addr = serve(router(MemoryStore::default())).await;
    races::revoke_answers_truthfully(addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_then_writes_cannot_grow_a_session_past_its_limits() {
    let layer = SessionLayer::builder(MemoryStore::default())
        .with_plain_http_for_development()
        .with_limits(usize::MAX, 4)
        .build()
        .unwrap();
    let addr = serve(routes().layer(layer)).await;
    races::limits_hold_for_concurrent_read_then_write(addr, 4, 40).await;
}

#[tokio::test]
async fn a_session_that_expires_during_a_request_is_not_revived_by_its_save() {
    let app = TestApp::new();
    let res = app.send("POST", "/incr", None).await;
    ok(&res);
    let cookie = new_value(&res).expect("a new session");
    let slow = app.router.clone().oneshot(
        Request::post("/slow_remember")
            .header("cookie", format!("{}={cookie}", app.cookie_name))
            .body(Body::empty())
            .unwrap(),
    );
    let slow = tokio::spawn(slow);
    app.gates.loaded.notified().await;
    // The idle timeout (one hour) passes while the handler runs.
    app.clock.advance(Duration::from_secs(2 * 60 * 60));
    app.gates.release.notify_one();
    let res = slow.await.unwrap().unwrap();
    ok(&res);
    // "Remember me" and the write went to a new session, if anywhere: never into the old
    // one, which stays expired.
    assert_ne!(new_value(&res).as_deref(), Some(cookie.as_str()));
    let check = app.send("GET", "/get/n", Some(&cookie)).await;
    ok(&check);
    assert_eq!(body(check).await, "", "the expired session came back");
}

#[tokio::test]
async fn a_session_at_its_key_limit_can_replace_a_key_it_read() {
    let app = TestApp::with(|b| b.with_limits(1 << 20, 2));
    let res = app.send("POST", "/incr", None).await;
    let cookie = new_value(&res).expect("a new session");
    ok(&app.send("POST", "/set/other/x", Some(&cookie)).await);
    // Two keys, the limit: replacing `n` after reading it adds none.
    let res = app.send("POST", "/incr", Some(&cookie)).await;
    ok(&res);
    assert_eq!(body(res).await, "2");
    let res = app.send("POST", "/set/third/x", Some(&cookie)).await;
    assert!(
        res.status().is_server_error(),
        "a third key passed the limit"
    );
}

#[tokio::test]
async fn a_session_about_to_rotate_offers_no_handle_that_would_die_with_it() {
    use session_layer::testing::session;

    let layer = SessionLayer::new(MemoryStore::default());
    let s = session(&layer);
    assert_eq!(s.handle(), None, "not stored yet");
    s.rotate().await;
    assert_eq!(s.handle(), None, "rotation pending");
}
