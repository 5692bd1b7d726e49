//! MariaDB going away and coming back, on a private server this test starts (so
//! stopping it harms no other server): errors, never panics or silent logouts, and the same
//! process recovers.

mod common;

use std::time::Duration;

use common::server::Server;
use session_layer_mysql::MySqlStore;
use session_layer_test_support::faults;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_server_gives_5xx_without_cookies_and_the_process_recovers() {
    let Some(mut server) = Server::start() else {
        return;
    };
    let store = MySqlStore::builder()
        .with_acquire_timeout(Duration::from_millis(500))
        .with_query_timeout(Duration::from_secs(1))
        .connect(&server.url())
        .await
        .expect("the private server is up");
    store.migrate().await.expect("migrate");
    faults::outage_then_recovery(store, &mut server, "MariaDB").await;
}
