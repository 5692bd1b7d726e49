//! For store authors: the store conformance suite, a clock tests can drive, and a wrapper
//! that counts the calls reaching a store.
//!
//! | item | what |
//! | --- | --- |
//! | [`conformance`] | the store contract, one function per case ([`store_conformance_tests!`](crate::store_conformance_tests)) |
//! | [`MockClock`] | a clock that stands still until the test moves it |
//! | [`CountingStore`] | counts the calls that reach a real store, without changing what they do |
//!
//! Enable with the `testing` feature. A store crate runs the whole suite against its real
//! backend with one macro line, which expands to one `#[test]` per contract case:
//!
//! ```
//! use session_layer::MemoryStore;
//!
//! // In a store crate's `tests/conformance.rs`. The function returns `None` to skip (after
//! // printing why), which it should only do outside CI.
//! async fn make_store() -> Option<MemoryStore> {
//!     Some(MemoryStore::default())
//! }
//! session_layer::store_conformance_tests!(make_store);
//! # fn main() {}
//! ```

pub mod conformance;

use std::sync::{Arc, Mutex};

use time::{Duration, OffsetDateTime};

use crate::clock::Clock;
use crate::id::StorageKey;
use crate::layer::SessionLayer;
use crate::record::{Change, Record};
use crate::session::Session;
use crate::store::{
    Applied, Rotated, SessionInfo, SessionStore, StoreFuture, TouchRule, WriteRules,
};

/// A clock that stands still until a test moves it. Clones share one time.
///
/// ```
/// use session_layer::clock::Clock;
/// use session_layer::testing::MockClock;
///
/// let clock = MockClock::new();
/// let start = clock.now();
/// clock.advance(std::time::Duration::from_secs(90));
/// assert_eq!(clock.now() - start, time::Duration::seconds(90));
/// ```
#[derive(Debug, Clone)]
pub struct MockClock {
    now: Arc<Mutex<OffsetDateTime>>,
}

impl MockClock {
    /// A clock set to the current time, rounded down to the millisecond.
    #[must_use]
    pub fn new() -> Self {
        Self {
            now: Arc::new(Mutex::new(crate::clock::to_millis(
                OffsetDateTime::now_utc(),
            ))),
        }
    }

    /// Moves the clock forward.
    ///
    /// # Panics
    ///
    /// Panics if `by` does not fit a `time::Duration`.
    pub fn advance(&self, by: std::time::Duration) {
        let by = Duration::try_from(by).expect("a representable duration");
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += by;
    }
}

impl Default for MockClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MockClock {
    fn now(&self) -> OffsetDateTime {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Runs a future to completion on a fresh two-thread runtime; the conformance macro's tests
/// use it so store crates need no runtime macros of their own.
///
/// # Panics
///
/// Panics if the runtime cannot be built.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a test runtime")
        .block_on(future)
}

/// Whether tests run in CI (`CI=true`), where a missing server is a failure, not a skip.
#[must_use]
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A new, empty session of `layer`, as a request without a cookie gets it, for unit tests
/// of handlers that take a [`Session`] without building a router.
///
/// Reads and writes work as in a request, against the layer's store; nothing is saved when
/// the handler returns (saving is the layer's work after a response), so check what the
/// handler did through the session itself.
///
/// ```
/// use session_layer::{MemoryStore, Session, SessionError, SessionLayer};
///
/// async fn add_to_cart(session: Session, item: &str) -> Result<usize, SessionError> {
///     let mut cart: Vec<String> = session.get("cart").await?.unwrap_or_default();
///     cart.push(item.to_owned());
///     session.insert("cart", &cart).await?;
///     Ok(cart.len())
/// }
///
/// # session_layer::testing::block_on(async {
/// let layer = SessionLayer::new(MemoryStore::default());
/// let session = session_layer::testing::session(&layer);
/// assert_eq!(add_to_cart(session.clone(), "apple").await?, 1);
/// assert_eq!(add_to_cart(session.clone(), "pear").await?, 2);
/// let cart: Vec<String> = session.get("cart").await?.unwrap();
/// assert_eq!(cart, ["apple", "pear"]);
/// # Ok::<(), SessionError>(()) }).unwrap();
/// ```
#[must_use]
pub fn session(layer: &SessionLayer) -> Session {
    layer.session_for(&http::HeaderMap::new())
}

/// Generates one `#[test]` per case of the [store contract](crate::store) against the store
/// that `$make` (an `async fn() -> Option<S>`) returns. See the [module docs](self).
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:path) => {
        $crate::for_each_conformance_case!($crate::store_conformance_tests, @test $make);
    };
    (@test $make:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testing::block_on(async {
                    match $make().await {
                        Some(store) => $crate::testing::conformance::$case(&store).await,
                        None => eprintln!("skipped {}: no store", stringify!($case)),
                    }
                });
            }
        )*
    };
}

/// Calls `$callback!($($args)*; case, case, ...)` with every case of
/// [`conformance`]: the one list of the contract's cases, which
/// [`store_conformance_tests!`](crate::store_conformance_tests) and
/// [`conformance::run_all`] expand.
#[doc(hidden)]
#[macro_export]
macro_rules! for_each_conformance_case {
    ($callback:path $(, $($args:tt)*)?) => {
        $callback!($($($args)*;)?
            create_then_load_round_trips,
            create_never_overwrites,
            unknown_keys_load_nothing,
            expired_records_are_never_returned,
            apply_applies_a_per_key_change,
            apply_of_a_missing_session_writes_nothing,
            apply_after_delete_does_not_resurrect,
            apply_of_an_expired_session_writes_nothing,
            concurrent_writes_of_different_keys_are_all_kept,
            the_last_write_of_one_key_wins,
            a_touch_alone_moves_the_idle_deadline_only,
            no_touch_passes_the_absolute_deadline,
            rotate_moves_the_record_and_kills_the_old_key,
            rotate_keeps_the_owner_of_an_owned_session,
            rotate_of_a_missing_session_writes_nothing,
            rotate_into_a_taken_key_changes_nothing,
            rotate_checks_the_limits_on_the_record_it_moves,
            concurrent_rotations_have_one_winner,
            updates_racing_a_rotation_never_revive_the_old_key,
            delete_removes_and_tolerates_absence,
            list_by_user_shows_only_live_sessions_of_that_user,
            delete_by_user_spares_the_exception_and_other_users,
            delete_expired_never_removes_live_sessions,
            values_of_every_json_shape_round_trip,
            load_with_a_touch_rule_moves_a_due_idle_deadline_only,
            load_with_a_touch_rule_is_capped_at_the_absolute_deadline,
            load_with_a_touch_rule_of_a_dead_session_is_none_and_writes_nothing,
            apply_makes_a_due_touch_with_the_change,
            apply_of_a_dead_session_is_gone_and_writes_nothing,
            apply_past_the_limits_writes_nothing,
            concurrent_blind_writes_of_different_keys_are_all_kept,
            a_session_at_its_key_limit_can_replace_a_key,
            rotate_makes_a_due_touch,
            delete_owned_ends_only_a_session_of_that_user,
            revocation_racing_rotations_leaves_no_survivor,
            an_own_expiry_is_stored_and_survives_writes_and_rotation,
            apply_sets_and_clears_an_own_idle_timeout_and_end_time,
            a_change_of_persistence_or_idle_timeout_restarts_the_idle_deadline,
            a_touch_uses_the_sessions_own_idle_timeout,
            a_later_end_time_keeps_a_session_listed_and_revocable
        );
    };
}

/// Wraps a real store and counts every call the layer makes to it, so a test can show that
/// some requests (malformed cookies, requests that never touch the session) reach no
/// backend at all. Clones share the count.
///
/// ```
/// use session_layer::testing::CountingStore;
/// use session_layer::{MemoryStore, SessionLayer};
///
/// let store = CountingStore::new(MemoryStore::default());
/// let layer = SessionLayer::new(store.clone());
/// # let _ = layer;
/// assert_eq!(store.calls(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct CountingStore<S> {
    inner: S,
    calls: Arc<std::sync::atomic::AtomicUsize>,
}

impl<S> CountingStore<S> {
    /// Counts the calls made to `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            calls: Arc::default(),
        }
    }

    /// How many calls reached the store so far.
    #[must_use]
    pub fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn count(&self) {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl<S: SessionStore> SessionStore for CountingStore<S> {
    fn create<'a>(&'a self, key: &'a StorageKey, record: &'a Record) -> StoreFuture<'a, bool> {
        self.count();
        self.inner.create(key, record)
    }
    fn load<'a>(
        &'a self,
        key: &'a StorageKey,
        touch: Option<&'a TouchRule>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<Record>> {
        self.count();
        self.inner.load(key, touch, now)
    }
    fn apply<'a>(
        &'a self,
        key: &'a StorageKey,
        change: &'a Change,
        rules: &'a WriteRules,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Applied> {
        self.count();
        self.inner.apply(key, change, rules, now)
    }
    fn rotate<'a>(
        &'a self,
        old: &'a StorageKey,
        new: &'a StorageKey,
        change: &'a Change,
        rules: &'a WriteRules,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Rotated> {
        self.count();
        self.inner.rotate(old, new, change, rules, now)
    }
    fn delete<'a>(&'a self, key: &'a StorageKey) -> StoreFuture<'a, ()> {
        self.count();
        self.inner.delete(key)
    }
    fn delete_owned<'a>(
        &'a self,
        key: &'a StorageKey,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        self.count();
        self.inner.delete_owned(key, user, now)
    }
    fn list_by_user<'a>(
        &'a self,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<SessionInfo>> {
        self.count();
        self.inner.list_by_user(user, now)
    }
    fn delete_by_user<'a>(
        &'a self,
        user: &'a str,
        except: Option<&'a StorageKey>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, u64> {
        self.count();
        self.inner.delete_by_user(user, except, now)
    }
    fn delete_expired(&self, now: OffsetDateTime, batch: usize) -> StoreFuture<'_, u64> {
        self.count();
        self.inner.delete_expired(now, batch)
    }
}
