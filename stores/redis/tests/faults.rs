//! Faults under load: while several clients send a steady stream of requests, the private
//! `redis-server` behind the app is killed and restarted, frozen (`SIGSTOP`) and thawed,
//! and killed again. Every answer must be a 200 with consistent data (the session's own
//! owner, no new cookie) or a prompt 5xx without `Set-Cookie`; never a hang, a cookie for a
//! session that was not stored, or a silent sign-out. Afterwards, the same app process
//! serves again, every session created before the faults holds its data and every write
//! acknowledged during them, and nothing logged, at any level, holds a cookie value.
//!
//! The server writes every acknowledged command to its append-only file before answering
//! (`appendfsync always`), as a Redis that must not lose sessions would be run, so a
//! killed server comes back with what it acknowledged.
//!
//! The load, the checks and the fault schedule are in `session_layer_test_support::faults`;
//! this file starts the server, opens the store and sets the timings.

mod common;

use std::time::Duration;

use common::RedisServer;
use session_layer_test_support::faults::{self, Plan, Server};
use session_layer_test_support::logs::LogCapture;

/// The store's per-command timeout in this test.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(300);

/// The server's controls: a kill, a fresh `redis-server` reading the append-only file.
impl Server for RedisServer {
    fn stop(&mut self) {
        RedisServer::stop(self);
    }

    fn restart(&mut self) {
        RedisServer::restart(self);
    }

    fn freeze(&mut self) {
        self.pause();
    }

    fn thaw(&mut self) {
        self.resume();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_and_stalls_under_load_fail_promptly_and_lose_nothing_acknowledged() {
    let logs = LogCapture::global();
    let Some(server) = RedisServer::start_durable() else {
        return;
    };
    let store = session_layer_redis::RedisStore::builder(server.url())
        .with_command_timeout(COMMAND_TIMEOUT)
        .with_connect_timeout(COMMAND_TIMEOUT)
        .connect()
        .await
        .expect("connect to the private redis-server");
    let plan = Plan {
        name: "Redis",
        stops: "kills and restarts",
        // A load and a save, each bounded by the timeout, plus scheduling slack on a busy
        // two-core machine.
        prompt: Duration::from_millis(2_000),
        first_fault_after: Duration::from_millis(500),
        between_faults: Duration::from_millis(700),
        after_last_fault: Duration::from_secs(1),
        recovery: Duration::from_secs(10),
    };
    faults::fail_promptly_and_lose_nothing_acknowledged(store, server, &plan, logs).await;
}
