//! 10,000 concurrent requests over 1,000 sessions, each writing its own key, through the
//! layer and a real PostgreSQL: every write is kept, none lands in another session.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::app::{call, router, serve};
use futures_util::stream::{self, StreamExt};
use reqwest::{Method, StatusCode};
use session_layer::id::SessionId;
use session_layer::SessionStore;
use session_layer_postgres::PostgresStore;

const SESSIONS: usize = 1_000;
const REQUESTS: usize = 10_000;
const IN_FLIGHT: usize = 128;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_writes_over_a_thousand_sessions_are_all_kept() {
    let name = format!("load_{}", common::random_suffix());
    let builder = PostgresStore::builder()
        .with_table(&name)
        .expect("valid name")
        .with_max_connections(16);
    let Some(store) = common::store_with(builder).await else {
        return;
    };
    let addr = serve(router(store.clone())).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()
        .expect("a client");

    let started = Instant::now();
    let cookies: Vec<String> = stream::iter(0..SESSIONS)
        .map(|i| {
            let client = &client;
            async move {
                let reply =
                    call(client, addr, Method::POST, &format!("/set/owner/{i}"), None).await;
                assert_eq!(reply.status, StatusCode::OK);
                reply.cookie.expect("a session")
            }
        })
        .buffered(IN_FLIGHT)
        .collect()
        .await;
    let created = started.elapsed();

    let started = Instant::now();
    let cookies = &cookies;
    let statuses: Vec<StatusCode> = stream::iter(0..REQUESTS)
        .map(|j| {
            let client = &client;
            async move {
                let cookie = &cookies[j % SESSIONS];
                let reply = call(
                    client,
                    addr,
                    Method::POST,
                    &format!("/set/k{j}/{j}"),
                    Some(cookie),
                )
                .await;
                assert_eq!(reply.cookie, None, "a write changed the session's cookie");
                reply.status
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let written = started.elapsed();
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "some writes failed"
    );

    let now = time::OffsetDateTime::now_utc();
    for (i, cookie) in cookies.iter().enumerate() {
        let key = SessionId::parse(cookie.as_bytes())
            .expect("an ID")
            .storage_key();
        let record = store
            .load(&key, now)
            .await
            .expect("load")
            .expect("the session lives");
        let mut expected = BTreeMap::new();
        expected.insert("owner".to_owned(), serde_json::json!(i.to_string()));
        for j in (i..REQUESTS).step_by(SESSIONS) {
            expected.insert(format!("k{j}"), serde_json::json!(j.to_string()));
        }
        let actual: BTreeMap<String, serde_json::Value> = record
            .data()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(
            actual, expected,
            "session {i} lost a write or holds another's"
        );
    }
    println!(
        "postgres load: {SESSIONS} sessions created in {created:?}; {REQUESTS} writes \
         ({IN_FLIGHT} in flight) in {written:?} ({:.0} req/s)",
        REQUESTS as f64 / written.as_secs_f64()
    );
}
