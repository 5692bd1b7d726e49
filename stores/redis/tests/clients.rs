//! A store from each way of reaching Redis: a URL, your own `redis::Client`, your own
//! `ConnectionManager` (shared with the rest of the app), your own cluster client, and
//! through Sentinel. Each serves a session over HTTP: a write, then a read in the next
//! request.

mod common;

use std::time::Duration;

use common::replicas::{ReplicaSet, MASTER_NAME};
use common::{app, serve, Client};
use session_layer_redis::{redis, RedisStore};

/// A write and a read back, in two requests through the layer, over HTTP.
async fn round_trip(store: RedisStore) {
    let client = Client::new(serve(app(store)).await);
    let reply = client.post("/set/colour/teal", None).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let cookie = reply.cookie.expect("a session cookie");
    let reply = client.get("/get/colour", Some(&cookie)).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "teal"),
        "{reply:?}"
    );
}

fn shared_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[tokio::test]
async fn a_store_from_a_url_round_trips() {
    let Some(store) = common::shared_store().await else {
        return;
    };
    round_trip(store).await;
}

#[tokio::test]
async fn a_store_from_your_own_client_round_trips() {
    if common::shared_store().await.is_none() {
        return;
    }
    let client = redis::Client::open(shared_url()).expect("a valid URL");
    let store = RedisStore::from_client(client)
        .with_key_prefix("session-layer-test:client:")
        .connect()
        .await
        .expect("connect through the client");
    round_trip(store).await;
}

#[tokio::test]
async fn a_store_from_your_own_connection_manager_round_trips_and_shares_it() {
    if common::shared_store().await.is_none() {
        return;
    }
    let client = redis::Client::open(shared_url()).expect("a valid URL");
    let mut manager = client
        .get_connection_manager()
        .await
        .expect("a connection manager");
    let store = RedisStore::from_connection_manager(manager.clone())
        .with_key_prefix("session-layer-test:manager:")
        .connect()
        .await
        .expect("a store on the manager");
    round_trip(store).await;
    // The app's own use of the manager is unaffected.
    let pong: String = redis::cmd("PING")
        .query_async(&mut manager)
        .await
        .expect("the manager still answers");
    assert_eq!(pong, "PONG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_from_your_own_cluster_client_round_trips() {
    let Some(cluster) = common::RedisCluster::start() else {
        return;
    };
    let client = redis::cluster::ClusterClientBuilder::new(cluster.urls())
        .response_timeout(Duration::from_millis(500))
        .build()
        .expect("a cluster client");
    let store = RedisStore::from_cluster_client(client)
        .connect()
        .await
        .expect("connect to the cluster");
    round_trip(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_through_sentinel_round_trips() {
    let Some(set) = ReplicaSet::start().await else {
        return;
    };
    let store = RedisStore::sentinel_builder(set.sentinel_urls(), MASTER_NAME)
        .connect()
        .await
        .expect("connect through the sentinels");
    round_trip(store).await;
}

#[tokio::test]
async fn a_sentinel_that_does_not_know_the_master_is_an_error_not_a_hang() {
    let Some(set) = ReplicaSet::start().await else {
        return;
    };
    let error = RedisStore::sentinel_builder(set.sentinel_urls(), "no-such-master")
        .connect()
        .await
        .expect_err("no such master");
    assert_eq!(
        error.kind(),
        session_layer::StoreErrorKind::Unavailable,
        "{error}"
    );
}

#[tokio::test]
async fn a_replication_wait_that_cannot_work_is_refused_at_connect() {
    for (replicas, timeout) in [(0, 100), (1, 0), (1, 450), (1, 500), (1, 900)] {
        let error = RedisStore::builder("redis://127.0.0.1:1")
            .with_command_timeout(Duration::from_millis(500))
            .with_replication_wait(replicas, Duration::from_millis(timeout))
            .connect()
            .await
            .expect_err("refused");
        assert_eq!(
            error.kind(),
            session_layer::StoreErrorKind::Other,
            "{error}"
        );
    }
}
