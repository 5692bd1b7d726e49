//! Hostile input and load against a real SQLite file: malformed IDs never reach it, and
//! 10,000 concurrent requests with rotations and sign-outs lose nothing.

mod common;

use std::time::Duration;

use common::TempStore;
use session_layer_sqlite::SqliteStore;
use session_layer_test_support::hostile::{self, Pace};

/// A store whose query timeout covers the queue for SQLite's one writer, not one write:
/// under these loads requests wait for it.
async fn queued_store() -> TempStore {
    TempStore::with(SqliteStore::builder().with_query_timeout(Duration::from_secs(60))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_ids_are_anonymous_and_never_reach_sqlite() {
    let temp = TempStore::new().await;
    hostile::malformed_ids_are_anonymous_and_never_reach_the_store(temp.store.clone(), "SQLite", 7)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_requests_with_rotations_and_sign_outs_lose_nothing() {
    let temp = queued_store().await;
    hostile::ten_thousand_concurrent_requests_with_rotations_and_sign_outs_lose_nothing(
        temp.store.clone(),
        "SQLite",
        Pace::SQL,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_requests_while_one_rotates_leave_one_new_id() {
    let temp = queued_store().await;
    hostile::a_hundred_concurrent_requests_while_one_rotates_leave_one_new_id(
        temp.store.clone(),
        "SQLite",
        Pace::SQL,
    )
    .await;
}
