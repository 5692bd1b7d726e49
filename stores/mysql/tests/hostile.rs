//! Hostile input and load against a real MySQL or MariaDB: malformed IDs never reach it, and
//! 10,000 concurrent requests with rotations and sign-outs lose nothing.

mod common;

use std::time::Duration;

use session_layer_mysql::MySqlStore;
use session_layer_test_support::hostile::{self, Pace};

/// A store on a table of its own, or `None` to skip.
async fn own_table() -> Option<MySqlStore> {
    // Correctness under concurrency, not latency: generous timeouts for a debug build on a
    // busy machine.
    let builder = MySqlStore::builder()
        .with_table(common::own_table_name("mix"))
        .expect("a valid table name")
        .with_max_connections(16)
        .with_acquire_timeout(Duration::from_secs(60))
        .with_query_timeout(Duration::from_secs(60));
    common::store_with(builder).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_ids_are_anonymous_and_never_reach_mysql() {
    let Some(store) = common::store().await else {
        return;
    };
    hostile::malformed_ids_are_anonymous_and_never_reach_the_store(store, "MySQL", 11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_requests_with_rotations_and_sign_outs_lose_nothing() {
    let Some(store) = own_table().await else {
        return;
    };
    hostile::ten_thousand_concurrent_requests_with_rotations_and_sign_outs_lose_nothing(
        store,
        "MySQL",
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
        "MySQL",
        Pace::SQL,
    )
    .await;
}
