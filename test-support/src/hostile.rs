//! Hostile input and load against a real store: malformed IDs never reach it, and 10,000
//! concurrent requests with rotations and sign-outs lose nothing. Each check prints its
//! figures on a `hostile:` line (the README's command collects them).
//!
//! A store crate's `tests/hostile.rs` opens its store and hands it over, with the backend's
//! name for messages (not run here: the store crates run it, each on its own backend):
//!
//! ```no_run
//! use session_layer_test_support::hostile;
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn malformed_ids_are_anonymous_and_never_reach_memory() {
//!     let store = session_layer::MemoryStore::default();
//!     hostile::malformed_ids_are_anonymous_and_never_reach_the_store(store, "memory", 1).await;
//! }
//! # fn main() {}
//! ```

use std::time::Duration;

use crate::concurrency::{run_mix, Mix};
use crate::inputs::HostileInputs;
use reqwest::{Method, StatusCode};
use session_layer::id::SessionId;
use session_layer::testing::CountingStore;
use session_layer::SessionStore;

use crate::app::{call, router, serve};

/// How hard a concurrency check presses its store: requests in flight at once, and the
/// time the whole run may take before it counts as a deadlock.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Requests in flight at once.
    pub in_flight: usize,
    /// The longest the run may take.
    pub deadline: Duration,
}

impl Pace {
    /// What the SQL stores use: 256 in flight, within 240 s.
    pub const SQL: Self = Self {
        in_flight: 256,
        deadline: Duration::from_secs(240),
    };
}

/// Whether `value`, sent as the session cookie's value, names no well-formed ID: not as it
/// is, not between quotes, and not as a second cookie after a `;`.
#[must_use]
pub fn malformed(value: &[u8]) -> bool {
    let unquoted = value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(value);
    !value.contains(&b';')
        && SessionId::parse(value).is_none()
        && SessionId::parse(unquoted).is_none()
}

/// Sends well over 800 malformed session cookie values (fixed ones, and the hostile stream
/// numbered `seed` grown from a real ID) to the app over `store`: each is answered as an
/// anonymous request and none reaches the store. Prints `hostile: N malformed session IDs
/// sent to the {backend} store, none reached it`.
///
/// # Panics
///
/// When a malformed value opens a session or reaches the store, too few were sent, or the
/// real session no longer answers.
pub async fn malformed_ids_are_anonymous_and_never_reach_the_store<S: SessionStore + Clone>(
    store: S,
    backend: &str,
    seed: u64,
) {
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
    values.extend(HostileInputs::new(seed, [good.as_bytes()]).take(2_000));
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
        "a malformed cookie reached {backend}"
    );
    let reply = call(&client, addr, Method::GET, "/get/a", Some(&good)).await;
    assert_eq!(reply.body, "\"1\"");
    println!("hostile: {sent} malformed session IDs sent to the {backend} store, none reached it");
}

/// Runs the default [`Mix`] (10,000 requests over 1,000 sessions) at `pace` on `store`:
/// every acknowledged write is found, with 200 rotations and 200 sign-outs. Prints
/// `hostile: {backend} concurrency: …`.
///
/// # Panics
///
/// When a request is missing, an acknowledged write is lost, or the rotations and sign-outs
/// are not the 200 and 200 the mix plans.
pub async fn ten_thousand_concurrent_requests_with_rotations_and_sign_outs_lose_nothing<S>(
    store: S,
    backend: &str,
    pace: Pace,
) where
    S: SessionStore + Clone,
{
    let mix = Mix::default()
        .with_in_flight(pace.in_flight)
        .with_deadline(pace.deadline);
    let report = run_mix(store, &mix).await;
    assert_eq!(report.requests, 10_000);
    assert_eq!(report.writes_verified, report.writes_acknowledged);
    assert_eq!((report.rotations, report.sign_outs), (200, 200));
    println!("hostile: {backend} concurrency: {report}");
}

/// Runs ten sessions of 100 concurrent requests each on `store`, where in two of them one
/// request rotates: every acknowledged write is found, with 2 rotations and 2 sign-outs.
/// Prints `hostile: {backend}, 100 requests racing each rotation: …`.
///
/// # Panics
///
/// When a request is missing, an acknowledged write is lost, or the rotations and sign-outs
/// are not the 2 and 2 the mix plans.
pub async fn a_hundred_concurrent_requests_while_one_rotates_leave_one_new_id<S>(
    store: S,
    backend: &str,
    pace: Pace,
) where
    S: SessionStore + Clone,
{
    let mix = Mix::default()
        .with_sessions(10)
        .with_requests(1_000)
        .with_in_flight(pace.in_flight)
        .with_deadline(pace.deadline);
    let report = run_mix(store, &mix).await;
    assert_eq!(report.requests, 1_000);
    assert_eq!(report.writes_verified, report.writes_acknowledged);
    assert_eq!((report.rotations, report.sign_outs), (2, 2));
    println!("hostile: {backend}, 100 requests racing each rotation: {report}");
}
