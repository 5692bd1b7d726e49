//! Faults under load: while several clients send a steady stream of requests, the private
//! MariaDB server behind the app is killed (`SIGKILL`) and restarted, frozen (`SIGSTOP`) and
//! thawed, and killed again. Every answer must be a 200 with consistent data (the session's
//! own owner, no new cookie) or a prompt 5xx without `Set-Cookie`; never a hang, a cookie for
//! a session that was not stored, or a silent sign-out. Afterwards, the same app process
//! serves again, every session created before the faults holds its data and every write
//! acknowledged during them, and nothing logged, at any level, holds a cookie value.
//!
//! The load, the checks and the fault schedule are in `session_layer_test_support::faults`;
//! this file starts the server, opens the store and sets the timings.

mod common;

use std::time::Duration;

use common::server::Server;
use session_layer_mysql::MySqlStore;
use session_layer_test_support::faults::{self, Plan};
use session_layer_test_support::logs::LogCapture;

/// The store's acquire and query timeouts in this test.
const TIMEOUT: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_and_freezes_under_load_fail_promptly_and_lose_nothing_acknowledged() {
    let logs = LogCapture::global();
    let Some(server) = Server::start() else {
        return;
    };
    let store = MySqlStore::builder()
        .with_max_connections(8)
        .with_acquire_timeout(TIMEOUT)
        .with_query_timeout(TIMEOUT)
        .connect(&server.url())
        .await
        .expect("the private server is up");
    store.migrate().await.expect("migrate");
    let plan = Plan {
        name: "MariaDB",
        stops: "kills and restarts",
        // A load and a save, each bounded by the timeout, plus scheduling slack on a busy
        // two-core machine.
        prompt: Duration::from_millis(2_500),
        first_fault_after: Duration::from_millis(700),
        between_faults: Duration::from_millis(1_000),
        after_last_fault: Duration::from_millis(1_500),
        recovery: Duration::from_secs(15),
    };
    faults::fail_promptly_and_lose_nothing_acknowledged(store, server, &plan, logs).await;
}
