//! The store contract on a three-master Redis Cluster this test starts on free loopback
//! ports and stops at the end. Rotation moves records between slots owned by different
//! masters, and user indexes live in slots of their own.

mod common;

use session_layer::testing::conformance;
use session_layer_redis::RedisStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_contract_holds_on_a_three_master_cluster() {
    let Some(cluster) = common::RedisCluster::start() else {
        return;
    };
    let store = RedisStore::cluster_builder(cluster.urls())
        .connect()
        .await
        .expect("connect to the cluster");
    // Every case of the contract, from the one list the core keeps.
    conformance::run_all(&store).await;
    // Every master holds some of what the suite wrote: the cases really crossed slots.
    for node in &cluster.nodes {
        let keys: usize = node.cli(&["dbsize"]).trim().parse().unwrap_or(0);
        assert!(keys > 0, "a master holds no keys: the run did not spread");
    }
    drop(store);
    drop(cluster);
}
