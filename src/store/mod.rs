//! The store contract: one trait every backend implements.
//!
//! The layer hands a store only [`StorageKey`]s (hashes of session IDs), [`Record`]s and
//! [`Change`]s, the rules a write must keep ([`WriteRules`]: the size limits, when a touch
//! is due, and how far a session's own end time may lie), and the time it considers "now" (so tests can drive the clock and every
//! backend agrees on expiry). The contract, which the conformance suite in `testing`
//! checks against a real backend:
//!
//! | operation | contract |
//! | --- | --- |
//! | [`create`](SessionStore::create) | insert only if the key is absent; report a collision instead of overwriting |
//! | [`load`](SessionStore::load) | the live record or nothing; with a [`TouchRule`], move a due idle deadline in the same step |
//! | [`apply`](SessionStore::apply) | apply a [`Change`] atomically to a live record within [`WriteRules`]; report gone or too large and write nothing; never recreate |
//! | [`rotate`](SessionStore::rotate) | atomically give the live record, with the change, a new key; the old key is dead; report collision, gone or too large |
//! | [`delete`](SessionStore::delete) | remove; deleting what is absent is not an error |
//! | [`delete_owned`](SessionStore::delete_owned) | remove only if the record still belongs to the user; say whether a live one ended |
//! | [`list_by_user`](SessionStore::list_by_user), [`delete_by_user`](SessionStore::delete_by_user) | a user's live sessions (metadata and handles), and deleting all of them or all but one, with no window in which a concurrent rotation escapes |
//! | [`delete_expired`](SessionStore::delete_expired) | remove expired records in bounded batches, where the backend does not expire them |
//!
//! "Live" means both deadlines lie after `now`. Never upsert: a save that finds its session
//! gone must not bring it back, or a slow request would undo a logout.
//!
//! How a change applies (a session's own end time and the idle restart when its persistence
//! or idle timeout changes included), what counts against the limits and when a touch is
//! due each have one home: [`WriteRules::apply`] does all three to a [`Record`]. A store that reads,
//! modifies and writes (inside its own lock or transaction) calls it; a store that applies
//! changes remotely (a Redis script, one SQL statement) mirrors it, and the conformance
//! suite holds the two together.
//!
//! Every method returns a [`StoreFuture`]: [`StoreFuture::ready`] for a store that answers
//! in place, [`StoreFuture::boxed`] for one that waits on a server. The layer never asks
//! which kind it has, so a store wrapped in another (an `Arc`, a cache, a metrics wrapper)
//! takes the same path and keeps its speed.
//!
//! ```
//! use session_layer::{MemoryStore, SessionLayer};
//!
//! // Any `SessionStore` goes into the layer the same way, bare or wrapped.
//! let layer = SessionLayer::new(MemoryStore::default());
//! let wrapped = SessionLayer::new(std::sync::Arc::new(MemoryStore::default()));
//! # let _ = (layer, wrapped);
//! ```
//!
//! # Writing a store
//!
//! A store is nine methods, each with one guarantee (the table above, and each method's
//! docs). What every one of them must get right:
//!
//! 1. **Keys are hashes.** A [`StorageKey`] is the SHA-256 of a session ID; keep it as the
//!    record's primary key (32 bytes, or [`StorageKey::to_hex`]). Never log it, and never
//!    log a record's data.
//! 2. **`now` is the layer's.** Judge liveness with the `now` you are given (a record is
//!    live while `now` is before both deadlines), even if the backend also expires records
//!    itself: a record your backend has not removed yet is still gone.
//! 3. **Never upsert.** `apply` and `rotate` change only a live record; a missing or
//!    expired one is [`Applied::Gone`] / [`Rotated::Gone`] and nothing is written. A slow
//!    request must not bring back a session another request ended.
//! 4. **One atomic step each.** `apply`, `rotate` and `delete_by_user` read and write in
//!    one step: a lock, a transaction, a script or a single statement. The simplest correct
//!    way to apply a change is to read the record inside your transaction, call
//!    [`WriteRules::apply`] on it, and write it back only on [`Applied::Done`]: the rules for
//!    touches, limits and how a change applies then are the core's own. A store that cannot
//!    read and write in one step (a Redis script, one SQL statement) mirrors those rules; the
//!    conformance suite's cases on the rules pin the copy to the original.
//! 5. **Revocation cannot be escaped.** `delete_by_user` must end a session that a racing
//!    `rotate` moves to a new key: take the same lock, lock the same row, or make the
//!    rotation and the revocation touch one shared key.
//! 6. **Keep all the metadata.** Every field of [`Metadata`] goes back out as it came in,
//!    the session's own idle timeout ([`Metadata::idle_timeout`]) included: the touch rule
//!    reads it, and a session given one must keep it across writes and rotations.
//! 7. **Errors say what happened.** Map failures to a [`StoreErrorKind`] (`Unavailable`,
//!    `Timeout`, `Corrupt`, ...) with a message that says what to check; never put a stored
//!    value in an error.
//!
//! Then run the conformance suite against your real backend, from your crate's
//! `tests/conformance.rs`, with the `testing` feature of this crate as a dev-dependency:
//!
//! ```
//! # use session_layer::MemoryStore as MyStore;
//! // Return `None` (after printing why) to skip when the backend is not there; only do
//! // that outside CI.
//! async fn make_store() -> Option<MyStore> {
//!     Some(MyStore::default())
//! }
//! session_layer::store_conformance_tests!(make_store);
//! # fn main() {}
//! ```
//!
//! The smallest store that passes the whole suite keeps every session in one map behind one
//! lock:
//!
//! ```no_run
#![doc = include_str!("../../examples/map_store.rs")]
//! ```
//!
//! A store that wraps another (a cache in front, metrics, a log of calls) forwards each
//! method and returns the future it got, so it keeps every property of what it wraps:
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! use session_layer::id::StorageKey;
//! use session_layer::record::{Change, Record};
//! use session_layer::store::{
//!     Applied, Rotated, SessionInfo, SessionStore, StoreFuture, TouchRule, WriteRules,
//! };
//! use session_layer::{MemoryStore, SessionLayer};
//! use time::OffsetDateTime;
//!
//! /// Counts the rotations (sign-ins) that reach the store it wraps.
//! #[derive(Debug, Default)]
//! struct CountRotations<S> {
//!     inner: S,
//!     rotations: AtomicU64,
//! }
//!
//! impl<S: SessionStore> SessionStore for CountRotations<S> {
//!     fn rotate<'a>(
//!         &'a self,
//!         old: &'a StorageKey,
//!         new: &'a StorageKey,
//!         change: &'a Change,
//!         rules: &'a WriteRules,
//!         now: OffsetDateTime,
//!     ) -> StoreFuture<'a, Rotated> {
//!         self.rotations.fetch_add(1, Ordering::Relaxed);
//!         self.inner.rotate(old, new, change, rules, now)
//!     }
//!
//!     // The other eight forward as they are.
//!     fn create<'a>(&'a self, key: &'a StorageKey, record: &'a Record) -> StoreFuture<'a, bool> {
//!         self.inner.create(key, record)
//!     }
//!     fn load<'a>(&'a self, key: &'a StorageKey, touch: Option<&'a TouchRule>, now: OffsetDateTime) -> StoreFuture<'a, Option<Record>> {
//!         self.inner.load(key, touch, now)
//!     }
//!     fn apply<'a>(&'a self, key: &'a StorageKey, change: &'a Change, rules: &'a WriteRules, now: OffsetDateTime) -> StoreFuture<'a, Applied> {
//!         self.inner.apply(key, change, rules, now)
//!     }
//!     fn delete<'a>(&'a self, key: &'a StorageKey) -> StoreFuture<'a, ()> {
//!         self.inner.delete(key)
//!     }
//!     fn delete_owned<'a>(&'a self, key: &'a StorageKey, user: &'a str, now: OffsetDateTime) -> StoreFuture<'a, bool> {
//!         self.inner.delete_owned(key, user, now)
//!     }
//!     fn list_by_user<'a>(&'a self, user: &'a str, now: OffsetDateTime) -> StoreFuture<'a, Vec<SessionInfo>> {
//!         self.inner.list_by_user(user, now)
//!     }
//!     fn delete_by_user<'a>(&'a self, user: &'a str, except: Option<&'a StorageKey>, now: OffsetDateTime) -> StoreFuture<'a, u64> {
//!         self.inner.delete_by_user(user, except, now)
//!     }
//!     fn delete_expired(&self, now: OffsetDateTime, batch: usize) -> StoreFuture<'_, u64> {
//!         self.inner.delete_expired(now, batch)
//!     }
//! }
//!
//! let layer = SessionLayer::new(CountRotations::<MemoryStore>::default());
//! # let _ = layer;
//! ```

mod cleanup;
mod error;
mod future;
pub mod memory;

use std::fmt::Debug;
use std::sync::Arc;

use time::OffsetDateTime;

pub use self::cleanup::{spawn_cleanup, CleanupHandle};
pub use self::error::{StoreError, StoreErrorKind};
pub use self::future::StoreFuture;
use crate::id::{SessionHandle, StorageKey};
use crate::record::{Change, Metadata, Record};
pub use crate::rules::{entry_bytes, Applied, Limits, Totals, TouchRule, WriteRules};

/// What [`SessionStore::rotate`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rotated {
    /// The record now lives under the new key, with the change applied; here is its metadata.
    Done(Metadata),
    /// The old key held no live record: nothing was written.
    Gone,
    /// The new key was taken: nothing was written, the old record is untouched.
    Collision,
    /// The change would make the data pass the limits (here are the totals it would have
    /// had). Nothing was written, the old record is untouched.
    TooLarge(Totals),
}

/// One of a user's sessions, as listed by [`SessionStore::list_by_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// Names the session for [`SessionStore::delete`] through
    /// [`SessionHandle::storage_key`]; not usable as a cookie.
    pub handle: SessionHandle,
    /// The session's metadata.
    pub meta: Metadata,
}

impl SessionInfo {
    /// Lists a session by its key and metadata.
    #[must_use]
    pub fn new(key: StorageKey, meta: Metadata) -> Self {
        Self {
            handle: SessionHandle::from(key),
            meta,
        }
    }
}

/// A session backend. See the [module docs](self) for the contract each method keeps.
///
/// Every method receives `now` from the layer's clock; a store decides liveness with it (a
/// record is live while `now` is before both deadlines) rather than with its own clock,
/// even when the backend also expires records by itself. No method has a default: each one
/// states a guarantee a backend must give.
///
/// The [module docs](self) say how to write one, with the smallest store that passes the
/// conformance suite and a wrapper that forwards to another store.
pub trait SessionStore: Debug + Send + Sync + 'static {
    /// Inserts `record` under `key` if the key is absent. Answers `false`, writing nothing,
    /// if the key is taken (even by an expired record the backend has not removed yet).
    fn create<'a>(&'a self, key: &'a StorageKey, record: &'a Record) -> StoreFuture<'a, bool>;

    /// The live record under `key` at `now`, or `None` if there is none or it has expired.
    ///
    /// With a `touch` rule, a touch that is [due](TouchRule::due) (judged on the stored
    /// record's own idle timeout or persistence flag, and its deadlines) is made in the same atomic step, and the
    /// record comes back with the moved `last_seen` and idle deadline. A record that is not
    /// live is never touched.
    fn load<'a>(
        &'a self,
        key: &'a StorageKey,
        touch: Option<&'a TouchRule>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<Record>>;

    /// Applies `change` to the record under `key`, atomically, exactly as
    /// [`WriteRules::apply`] does to the stored record: nothing if it is not live at `now`
    /// ([`Applied::Gone`]: never an upsert), nothing if the data would pass the limits
    /// ([`Applied::TooLarge`]), otherwise the change and, unless it carries a touch of its
    /// own, the idle restart of a change of persistence or idle timeout, or else a due
    /// touch.
    fn apply<'a>(
        &'a self,
        key: &'a StorageKey,
        change: &'a Change,
        rules: &'a WriteRules,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Applied>;

    /// Atomically moves the live record under `old` to `new`, with `change` applied as
    /// [`apply`](Self::apply) would. Afterwards `old` holds nothing live. A taken `new` is
    /// [`Rotated::Collision`] and changes nothing.
    ///
    /// A concurrent [`delete_by_user`](Self::delete_by_user) of the record's owner either
    /// ends the record before it moves (the rotation is [`Rotated::Gone`]) or ends it under
    /// its new key: a rotation never lets a session escape a revocation.
    fn rotate<'a>(
        &'a self,
        old: &'a StorageKey,
        new: &'a StorageKey,
        change: &'a Change,
        rules: &'a WriteRules,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Rotated>;

    /// Removes the record under `key`. Removing an absent record is not an error.
    fn delete<'a>(&'a self, key: &'a StorageKey) -> StoreFuture<'a, ()>;

    /// Removes the record under `key` only if it belongs to `user`, and answers whether a
    /// record live at `now` was removed. Another user's record is left alone.
    fn delete_owned<'a>(
        &'a self,
        key: &'a StorageKey,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool>;

    /// The live sessions of `user` at `now`, in any order.
    fn list_by_user<'a>(
        &'a self,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<SessionInfo>>;

    /// Deletes every session of `user` except the one under `except`, and answers how many
    /// live ones it deleted. A session of the user that exists when the call starts, or
    /// that a rotation racing the call moves to a new key, is gone when it returns.
    fn delete_by_user<'a>(
        &'a self,
        user: &'a str,
        except: Option<&'a StorageKey>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, u64>;

    /// Removes up to `batch` records that expired before `now` and answers how many it
    /// removed. A backend that expires records by itself answers `0` at once.
    fn delete_expired(&self, now: OffsetDateTime, batch: usize) -> StoreFuture<'_, u64>;
}

macro_rules! forward_store {
    ($($ty:ty),*) => {$(
        impl<S: SessionStore + ?Sized> SessionStore for $ty {
            fn create<'a>(&'a self, key: &'a StorageKey, record: &'a Record) -> StoreFuture<'a, bool> {
                (**self).create(key, record)
            }
            fn load<'a>(&'a self, key: &'a StorageKey, touch: Option<&'a TouchRule>, now: OffsetDateTime) -> StoreFuture<'a, Option<Record>> {
                (**self).load(key, touch, now)
            }
            fn apply<'a>(&'a self, key: &'a StorageKey, change: &'a Change, rules: &'a WriteRules, now: OffsetDateTime) -> StoreFuture<'a, Applied> {
                (**self).apply(key, change, rules, now)
            }
            fn rotate<'a>(&'a self, old: &'a StorageKey, new: &'a StorageKey, change: &'a Change, rules: &'a WriteRules, now: OffsetDateTime) -> StoreFuture<'a, Rotated> {
                (**self).rotate(old, new, change, rules, now)
            }
            fn delete<'a>(&'a self, key: &'a StorageKey) -> StoreFuture<'a, ()> {
                (**self).delete(key)
            }
            fn delete_owned<'a>(&'a self, key: &'a StorageKey, user: &'a str, now: OffsetDateTime) -> StoreFuture<'a, bool> {
                (**self).delete_owned(key, user, now)
            }
            fn list_by_user<'a>(&'a self, user: &'a str, now: OffsetDateTime) -> StoreFuture<'a, Vec<SessionInfo>> {
                (**self).list_by_user(user, now)
            }
            fn delete_by_user<'a>(&'a self, user: &'a str, except: Option<&'a StorageKey>, now: OffsetDateTime) -> StoreFuture<'a, u64> {
                (**self).delete_by_user(user, except, now)
            }
            fn delete_expired(&self, now: OffsetDateTime, batch: usize) -> StoreFuture<'_, u64> {
                (**self).delete_expired(now, batch)
            }
        }
    )*};
}

forward_store!(Arc<S>, Box<S>);
