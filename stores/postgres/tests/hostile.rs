//! Hostile input and load against a real PostgreSQL: malformed IDs never reach it, and
//! 10,000 concurrent requests with rotations and sign-outs lose nothing.

mod common;

use std::time::Duration;

use session_layer_postgres::PostgresStore;
use session_layer_test_support::hostile::{self, Pace};

/// A store on a table of its own, or `None` to skip.
async fn own_table() -> Option<PostgresStore> {
    let table = format!("mix_{}", common::random_suffix());
    // Correctness under concurrency, not latency: generous timeouts for a debug build on a
    // busy machine.
    let builder = PostgresStore::builder()
        .with_table(&table)
        .expect("a valid table name")
        .with_max_connections(16)
        .with_acquire_timeout(Duration::from_secs(60))
        .with_query_timeout(Duration::from_secs(60));
    common::store_with(builder).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_ids_are_anonymous_and_never_reach_postgres() {
    let Some(store) = common::store().await else {
        return;
    };
    hostile::malformed_ids_are_anonymous_and_never_reach_the_store(store, "PostgreSQL", 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_requests_with_rotations_and_sign_outs_lose_nothing() {
    let Some(store) = own_table().await else {
        return;
    };
    hostile::ten_thousand_concurrent_requests_with_rotations_and_sign_outs_lose_nothing(
        store,
        "PostgreSQL",
        Pace::SQL,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_requests_while_one_rotates_leave_one_new_id() {
    let Some(store) = own_table().await else {
        return;
    };
    hostile::a_hundred_concurrent_requests_while_one_rotates_leave_one_new_id(
        store,
        "PostgreSQL",
        Pace::SQL,
    )
    .await;
}
