//! Two browsers racing, over real HTTP, on the Redis at `REDIS_URL` and on a three-master
//! Redis Cluster this test starts: "sign out everywhere else" against rotations and owner
//! changes, `revoke` answers, and the size limits under concurrent writes.

mod common;

/// These tests are about who wins a race, not latency: a debug build on a busy two-core
/// machine, with about a thousand requests in flight, can take longer than the default
/// 500 ms per command, and a timeout would fail a request the race did not.
fn patient(builder: RedisStoreBuilder) -> RedisStoreBuilder {
    builder.with_command_timeout(Duration::from_secs(10))
}

use std::time::Duration;

use session_layer::SessionLayer;
use session_layer_redis::{RedisStore, RedisStoreBuilder};
use session_layer_test_support::app::{router, routes, serve};
use session_layer_test_support::races;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_out_everywhere_else_racing_a_rotation_leaves_no_survivor() {
    let Some(store) = common::shared_store_with(patient).await else {
        return;
    };
    races::revocation_racing_rotation(serve(router(store)).await, 150).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_out_everywhere_else_ends_sessions_that_changed_hands_under_load() {
    let Some(store) = common::shared_store_with(patient).await else {
        return;
    };
    races::revocation_after_owner_changes(serve(router(store)).await, 64, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_reports_only_what_it_ended() {
    let Some(store) = common::shared_store_with(patient).await else {
        return;
    };
    races::revoke_answers_truthfully(serve(router(store)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_then_writes_cannot_grow_a_session_past_its_limits() {
    let Some(store) = common::shared_store_with(patient).await else {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_cluster_revocation_racing_rotations_and_owner_changes_leaves_no_survivor() {
    let Some(cluster) = common::RedisCluster::start() else {
        return;
    };
    let store = patient(RedisStore::cluster_builder(cluster.urls()))
        .connect()
        .await
        .expect("connect to the cluster");
    let addr = serve(router(store)).await;
    races::revocation_racing_rotation(addr, 150).await;
    races::revocation_after_owner_changes(addr, 64, 20).await;
    races::revoke_answers_truthfully(addr).await;
    drop(cluster);
}
