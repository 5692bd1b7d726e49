//! The project's own test harness, one copy of each helper for every crate's tests: a small
//! axum app over any store, served on loopback, its client side, the concurrency mixes, the
//! hostile-input generator, the log capture, and the bodies of the checks every store runs
//! the same way. Each store crate keeps what is its own (opening its store, its server, its
//! query plans, its fault tests) and calls these with its store; the test names stay in the
//! store crate, so a failure still says which backend failed.
//!
//! What a store author outside this project needs (the conformance suite, the test clock, a
//! call counter) is published in the core's `testing` feature instead.
//!
//! | module | what |
//! | --- | --- |
//! | [`app`] | the app ([`app::router`]), serving it ([`app::serve`]) and one request ([`app::call`]) |
//! | [`http`] | over real HTTP: no cookie value in the rows or the logs, rotation, logout racing a save |
//! | [`load`] | 10,000 concurrent writes over 1,000 sessions, every one kept |
//! | [`faults`] | the server behind a store stopped, frozen and stopped again under load: prompt failures, nothing acknowledged lost (the Redis store's too) |
//! | [`hostile`] | malformed IDs never reach the store; concurrent rotations and sign-outs lose nothing |
//! | [`fuzz`] | a store's fuzz target run on its seeds and generated inputs, on stable Rust (the Redis store's too) |
//! | [`concurrency`] | thousands of concurrent requests with rotations and sign-outs, checked for lost writes, live dead IDs and crossed data |
//! | [`inputs`] | a deterministic generator of hostile inputs, for fuzz-style tests on stable Rust |
//! | [`logs`] | a `tracing` capture that fails a test when a cookie value, ID or key was logged |
//! | [`races`] | two browsers racing: revocation against rotation and owner changes, `revoke` answers, limits under concurrent writes |
//!
//! Not published: it carries axum and reqwest, which the core's `testing` feature must not.
//!
//! ```
//! use reqwest::Method;
//! use session_layer::MemoryStore;
//! use session_layer_test_support::app::{call, router, serve};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let addr = serve(router(MemoryStore::default())).await;
//! let client = reqwest::Client::new();
//! let set = call(&client, addr, Method::POST, "/set/cart/apple", None).await;
//! let cookie = set.cookie.expect("a new session");
//! let get = call(&client, addr, Method::GET, "/get/cart", Some(&cookie)).await;
//! assert_eq!(get.body, "\"apple\"");
//! # }
//! ```

pub mod app;
pub mod concurrency;
pub mod faults;
pub mod fuzz;
pub mod hostile;
pub mod http;
pub mod inputs;
pub mod load;
pub mod logs;
pub mod races;

use session_layer::id::StorageKey;
use session_layer::record::{Change, Metadata};
use session_layer::store::{Applied, Limits, Rotated, TouchRule, WriteRules};
use session_layer::{SessionStore, StoreError};
use time::{Duration, OffsetDateTime};

/// Rules that never refuse a write and never add a touch: a change applies as it is.
#[must_use]
pub fn loose_rules() -> WriteRules {
    WriteRules::new(
        Limits::new(usize::MAX, usize::MAX),
        TouchRule::new(Duration::hours(1), Duration::hours(10), Duration::MAX),
    )
}

/// A store's calls as the store tests use them most: a change applied as it is.
pub trait StoreExt: SessionStore {
    /// [`SessionStore::apply`] under [`loose_rules`]: the metadata afterwards, or `None`
    /// if the session is gone.
    fn update<'a>(
        &'a self,
        key: &'a StorageKey,
        change: &'a Change,
        now: OffsetDateTime,
    ) -> impl std::future::Future<Output = Result<Option<Metadata>, StoreError>> + Send + 'a
    where
        Self: Sized,
    {
        async move {
            let rules = loose_rules();
            Ok(match self.apply(key, change, &rules, now).await? {
                Applied::Done(meta) => Some(meta),
                Applied::Gone => None,
                other => panic!("apply under loose rules answered {other:?}"),
            })
        }
    }

    /// [`SessionStore::apply`] of a change that only moves the idle deadline, as activity at
    /// `seen` does: whether the session was live.
    fn touch<'a>(
        &'a self,
        key: &'a StorageKey,
        seen: OffsetDateTime,
        idle_deadline: OffsetDateTime,
    ) -> impl std::future::Future<Output = Result<bool, StoreError>> + Send + 'a
    where
        Self: Sized,
    {
        async move {
            let mut change = Change::default();
            change.touch = Some(session_layer::record::Touch {
                seen,
                idle_deadline,
            });
            Ok(self.update(key, &change, seen).await?.is_some())
        }
    }

    /// [`SessionStore::rotate`] under [`loose_rules`].
    fn rotate_to<'a>(
        &'a self,
        old: &'a StorageKey,
        new: &'a StorageKey,
        change: &'a Change,
        now: OffsetDateTime,
    ) -> impl std::future::Future<Output = Result<Rotated, StoreError>> + Send + 'a
    where
        Self: Sized,
    {
        async move {
            let rules = loose_rules();
            self.rotate(old, new, change, &rules, now).await
        }
    }
}

impl<S: SessionStore> StoreExt for S {}
