//! PostgreSQL going away and coming back, on a private cluster this test starts (so
//! stopping it harms no other server): errors, never panics or silent logouts, and the same
//! process recovers.

mod common;

use std::time::Duration;

use common::cluster::Cluster;
use session_layer_postgres::PostgresStore;
use session_layer_test_support::faults;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_server_gives_5xx_without_cookies_and_the_process_recovers() {
    let Some(mut cluster) = Cluster::start() else {
        return;
    };
    let store = PostgresStore::builder()
        .with_acquire_timeout(Duration::from_millis(500))
        .with_query_timeout(Duration::from_secs(1))
        .connect(&cluster.url())
        .await
        .expect("the private cluster is up");
    store.migrate().await.expect("migrate");
    faults::outage_then_recovery(store, &mut cluster, "PostgreSQL").await;
}
