//! Two browsers racing, over real HTTP, on MySQL (MariaDB): "sign out everywhere else" against
//! rotations and owner changes, `revoke` answers, and the size limits under concurrent
//! writes.

mod common;

use session_layer::SessionLayer;
use session_layer_test_support::app::{router, routes, serve};
use session_layer_test_support::races;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_out_everywhere_else_racing_a_rotation_leaves_no_survivor() {
    let Some(store) = common::store().await else {
        return;
    };
    races::revocation_racing_rotation(serve(router(store)).await, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_out_everywhere_else_ends_sessions_that_changed_hands_under_load() {
    let Some(store) = common::store().await else {
        return;
    };
    races::revocation_after_owner_changes(serve(router(store)).await, 32, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_reports_only_what_it_ended() {
    let Some(store) = common::store().await else {
        return;
    };
    races::revoke_answers_truthfully(serve(router(store)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_then_writes_cannot_grow_a_session_past_its_limits() {
    let Some(store) = common::store().await else {
        return;
    };
    let layer = SessionLayer::builder(store)
        .with_plain_http_for_development()
        .with_limits(usize::MAX, 4)
        .build()
        .unwrap();
    races::limits_hold_for_concurrent_read_then_write(serve(routes().layer(layer)).await, 4, 40)
        .await;
}
