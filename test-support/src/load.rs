//! 10,000 concurrent requests over 1,000 sessions, each writing its own key, through the
//! layer and a real store: every write is kept, none lands in another session.
//!
//! A store crate's `tests/load.rs` opens its store and hands it over (not run here: the
//! store crates run it, each on its own backend):
//!
//! ```no_run
//! use session_layer_test_support::load;
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn ten_thousand_concurrent_writes_over_a_thousand_sessions_are_all_kept() {
//!     let store = session_layer::MemoryStore::default();
//!     load::ten_thousand_concurrent_writes_over_a_thousand_sessions_are_all_kept(store, "memory")
//!         .await;
//! }
//! # fn main() {}
//! ```

use std::collections::BTreeMap;
use std::time::Instant;

use futures_util::stream::{self, StreamExt};
use reqwest::{Method, StatusCode};
use session_layer::id::SessionId;
use session_layer::SessionStore;

use crate::app::{call, router, serve};

const SESSIONS: usize = 1_000;
const REQUESTS: usize = 10_000;
const IN_FLIGHT: usize = 128;

/// Creates 1,000 sessions over HTTP through the layer over `store`, sends 10,000 writes of
/// distinct keys across them, 128 in flight, then loads each session from `store` directly
/// and compares its data with what was written. Prints the timings as `{name} load: …`.
///
/// # Panics
///
/// When a request fails, a write changes the session's cookie, or a session lost a write or
/// holds another's.
pub async fn ten_thousand_concurrent_writes_over_a_thousand_sessions_are_all_kept<S>(
    store: S,
    name: &str,
) where
    S: SessionStore + Clone,
{
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
            .load(&key, None, now)
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
        "{name} load: {SESSIONS} sessions created in {created:?}; {REQUESTS} writes \
         ({IN_FLIGHT} in flight) in {written:?} ({:.0} req/s)",
        REQUESTS as f64 / written.as_secs_f64()
    );
}
