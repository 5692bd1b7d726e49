//! MariaDB going away and coming back, on a private server this test starts (so
//! stopping it harms no other server): errors, never panics or silent logouts, and the same
//! process recovers.

mod common;

use std::time::{Duration, Instant};

use common::server::Server;
use reqwest::Method;
use session_layer::id::SessionId;
use session_layer::{SessionStore, StoreErrorKind};
use session_layer_mysql::MySqlStore;
use session_layer_test_support::app::{call, router, serve, Reply};

fn assert_failed_without_cookie(reply: &Reply, what: &str) {
    assert!(
        reply.status.is_server_error(),
        "{what}: expected a 5xx while MariaDB is down, got {}",
        reply.status
    );
    assert_eq!(
        reply.cookie, None,
        "{what}: a Set-Cookie was sent while MariaDB is down"
    );
}

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
    let addr = serve(router(store.clone())).await;
    let client = reqwest::Client::new();

    let signed_in = call(&client, addr, Method::POST, "/set/n/1", None).await;
    let cookie = signed_in.cookie.expect("a session");

    server.stop();
    let started = Instant::now();
    let read = call(&client, addr, Method::GET, "/get/n", Some(&cookie)).await;
    assert_failed_without_cookie(&read, "a read of a stored session");
    let write = call(&client, addr, Method::POST, "/set/n/2", Some(&cookie)).await;
    assert_failed_without_cookie(&write, "a write to a stored session");
    let fresh = call(&client, addr, Method::POST, "/set/n/3", None).await;
    assert_failed_without_cookie(&fresh, "a new session (its ID was never stored)");
    let login = call(&client, addr, Method::POST, "/login/alice", Some(&cookie)).await;
    assert_failed_without_cookie(&login, "a rotation");
    let logout = call(&client, addr, Method::POST, "/logout", Some(&cookie)).await;
    assert_failed_without_cookie(&logout, "a logout (never a success while the row survives)");
    // What the layer saw: "unreachable", not "slow" and not "no such session".
    let key = SessionId::parse(cookie.as_bytes())
        .expect("an ID")
        .storage_key();
    let now = time::OffsetDateTime::now_utc();
    let err = store
        .load(&key, None, now)
        .await
        .expect_err("the server is down");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failing took {:?}: the timeouts do not hold",
        started.elapsed()
    );

    server.resume();
    // The same process, the same pool: the session is still there, and writes work again.
    let read = call(&client, addr, Method::GET, "/get/n", Some(&cookie)).await;
    assert_eq!(
        read.status, 200,
        "no recovery after MariaDB came back: {}",
        read.body
    );
    assert_eq!(read.body, "\"1\"", "the session was lost during the outage");
    assert_eq!(read.cookie, None);
    let write = call(&client, addr, Method::POST, "/set/n/4", Some(&cookie)).await;
    assert_eq!(write.status, 200);
    let read = call(&client, addr, Method::GET, "/get/n", Some(&cookie)).await;
    assert_eq!(read.body, "\"4\"");
    let fresh = call(&client, addr, Method::POST, "/set/n/5", None).await;
    assert!(
        fresh.cookie.is_some_and(|c| !c.is_empty()),
        "new sessions work again"
    );
}
