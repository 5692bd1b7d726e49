//! Hostile input and load against a real PostgreSQL: malformed IDs never reach it, and
//! 10,000 concurrent requests with rotations and sign-outs lose nothing.

mod common;

use std::time::Duration;

use common::app::{call, router, serve};
use reqwest::{Method, StatusCode};
use session_layer::id::SessionId;
use session_layer::testing::concurrency::{run_mix, Mix};
use session_layer::testing::hostile::HostileInputs;
use session_layer::testing::CountingStore;
use session_layer_postgres::PostgresStore;

/// Whether `value`, sent as the session cookie's value, names no well-formed ID: not as it
/// is, not between quotes, and not as a second cookie after a `;`.
fn malformed(value: &[u8]) -> bool {
    let unquoted = value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(value);
    !value.contains(&b';')
        && SessionId::parse(value).is_none()
        && SessionId::parse(unquoted).is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_ids_are_anonymous_and_never_reach_postgres() {
    let Some(store) = common::store().await else {
        return;
    };
    let store = CountingStore::new(store);
    let addr = serve(router(store.clone())).await;
    let client = reqwest::Client::new();
    let good = call(&client, addr, Method::POST, "/set/a/1", None)
        .await
        .cookie
        .expect("a session");
    let before = store.calls();

    let junk = "j".repeat(10 * 1024);
    let mut values: Vec<Vec<u8>> = ["*", "../x", "%00", "' OR 1=1--", "a*", "", junk.as_str()]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    values.extend(HostileInputs::new(5, [good.as_bytes()]).take(2_000));
    let mut sent = 0;
    for value in values {
        let Ok(text) = String::from_utf8(value) else {
            continue;
        };
        if !malformed(text.as_bytes()) || text.bytes().any(|b| b < 0x20 || b == 0x7f) {
            continue;
        }
        let reply = call(&client, addr, Method::GET, "/get/a", Some(&text)).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (StatusCode::OK, "none")
        );
        sent += 1;
    }
    assert!(sent > 800, "only {sent} malformed values sent");
    assert_eq!(
        store.calls(),
        before,
        "a malformed cookie reached PostgreSQL"
    );
    let reply = call(&client, addr, Method::GET, "/get/a", Some(&good)).await;
    assert_eq!(reply.body, "\"1\"");
    println!("hostile: {sent} malformed session IDs sent to the PostgreSQL store, none reached it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_requests_with_rotations_and_sign_outs_lose_nothing() {
    let table = format!("mix_{}", common::random_suffix());
    // Correctness under concurrency, not latency: generous timeouts for a debug build on a
    // busy machine.
    let builder = PostgresStore::builder()
        .with_table(&table)
        .expect("a valid table name")
        .with_max_connections(16)
        .with_acquire_timeout(Duration::from_secs(60))
        .with_query_timeout(Duration::from_secs(60));
    let Some(store) = common::store_with(builder).await else {
        return;
    };
    let mix = Mix::default()
        .with_in_flight(256)
        .with_deadline(Duration::from_secs(240));
    let report = run_mix(store, &mix).await;
    assert_eq!(report.requests, 10_000);
    assert_eq!(report.writes_verified, report.writes_acknowledged);
    assert_eq!((report.rotations, report.sign_outs), (200, 200));
    println!("hostile: PostgreSQL concurrency: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_requests_while_one_rotates_leave_one_new_id() {
    let table = format!("mix_{}", common::random_suffix());
    // Correctness under concurrency, not latency: generous timeouts for a debug build on a
    // busy machine.
    let builder = PostgresStore::builder()
        .with_table(&table)
        .expect("a valid table name")
        .with_max_connections(16)
        .with_acquire_timeout(Duration::from_secs(60))
        .with_query_timeout(Duration::from_secs(60));
    let Some(store) = common::store_with(builder).await else {
        return;
    };
    // Ten sessions of 100 concurrent requests each; in two of them one request rotates.
    let mix = Mix::default()
        .with_sessions(10)
        .with_requests(1_000)
        .with_in_flight(256)
        .with_deadline(Duration::from_secs(240));
    let report = run_mix(store, &mix).await;
    assert_eq!(report.requests, 1_000);
    assert_eq!(report.writes_verified, report.writes_acknowledged);
    assert_eq!((report.rotations, report.sign_outs), (2, 2));
    println!("hostile: PostgreSQL, 100 requests racing each rotation: {report}");
}
