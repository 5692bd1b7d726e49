//! The store contract: one trait every backend implements.
//!
//! The layer hands a store only [`StorageKey`]s (hashes of session IDs), [`Record`]s and
//! [`Change`]s, and the time it considers "now" (so tests can drive the clock and every
//! backend agrees on expiry). The contract, which the conformance suite in
//! [`testing`](crate::testing) checks against a real backend:
//!
//! | operation | contract |
//! | --- | --- |
//! | [`create`](SessionStore::create) | insert only if the key is absent; report a collision instead of overwriting |
//! | [`load`](SessionStore::load) | the live record or nothing; an expired record is never returned |
//! | [`update`](SessionStore::update) | apply a [`Change`] atomically to a live record; if it is gone, write nothing and say so |
//! | [`touch`](SessionStore::touch) | move the idle deadline of a live record without rewriting its data |
//! | [`rotate`](SessionStore::rotate) | atomically move the record, with a change, to a new key; the old key is dead |
//! | [`delete`](SessionStore::delete) | remove; deleting what is absent is not an error |
//! | [`list_by_user`](SessionStore::list_by_user), [`delete_by_user`](SessionStore::delete_by_user) | a user's live sessions (metadata only), and deleting all of them or all but one |
//! | [`delete_expired`](SessionStore::delete_expired) | remove expired records in bounded batches, where the backend does not expire them |
//! | [`load_touching`](SessionStore::load_touching) | `load`, and a due touch in the same step |
//! | [`write`](SessionStore::write) | `update` for a change made without a read: size limits and a due touch in the same step |
//!
//! "Live" means both deadlines lie after `now`. Never upsert: a save that finds its session
//! gone must not bring it back, or a slow request would undo a logout.
//!
//! ```
//! use session_layer::{MemoryStore, SessionLayer};
//!
//! // Any `SessionStore` goes into the layer the same way.
//! let layer = SessionLayer::new(MemoryStore::default());
//! # let _ = layer;
//! ```

mod cleanup;
mod error;
pub mod memory;
mod rules;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

pub use self::cleanup::{spawn_cleanup, CleanupHandle};
pub use self::error::{StoreError, StoreErrorKind};
pub use self::rules::{entry_bytes, Limits, Totals, TouchRule, WriteRules, Written};
use crate::id::{SessionHandle, StorageKey};
use crate::record::{Change, Metadata, Record};

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
    /// Only from [`SessionStore::rotate_within`]: the change would make the data pass the
    /// limits (here are the totals it would have had). Nothing was written, the old record is
    /// untouched.
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
/// even when the backend also expires records by itself.
#[async_trait]
pub trait SessionStore: Debug + Send + Sync + 'static {
    /// Inserts `record` under `key` if the key is absent. Returns `false`, writing nothing,
    /// if the key is taken (even by an expired record the backend has not removed yet).
    async fn create(&self, key: &StorageKey, record: &Record) -> Result<bool, StoreError>;

    /// The live record under `key`, or `None` if there is none or it has expired at `now`.
    async fn load(
        &self,
        key: &StorageKey,
        now: OffsetDateTime,
    ) -> Result<Option<Record>, StoreError>;

    /// Applies `change` atomically to the record under `key` if it is live at `now`, and
    /// returns its metadata afterwards. Returns `None`, writing nothing, if it is not.
    async fn update(
        &self,
        key: &StorageKey,
        change: &Change,
        now: OffsetDateTime,
    ) -> Result<Option<Metadata>, StoreError>;

    /// Moves the idle deadline (capped at the absolute one) and `last_seen` of the live record
    /// under `key` without rewriting its data. Returns `false` if there is no live record.
    async fn touch(
        &self,
        key: &StorageKey,
        seen: OffsetDateTime,
        idle_deadline: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Atomically moves the live record under `old` to `new`, applying `change`. Afterwards
    /// `old` holds nothing.
    async fn rotate(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        change: &Change,
        now: OffsetDateTime,
    ) -> Result<Rotated, StoreError>;

    /// Removes the record under `key`. Removing an absent record is not an error.
    async fn delete(&self, key: &StorageKey) -> Result<(), StoreError>;

    /// The live sessions of `user` at `now`, in any order.
    async fn list_by_user(
        &self,
        user: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionInfo>, StoreError>;

    /// Deletes every session of `user` except the one under `except`, and returns how many
    /// live ones it deleted.
    async fn delete_by_user(
        &self,
        user: &str,
        except: Option<&StorageKey>,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// Removes up to `batch` records that expired before `now` and returns how many it
    /// removed. Backends that expire records by themselves keep the default, which does
    /// nothing.
    async fn delete_expired(&self, now: OffsetDateTime, batch: usize) -> Result<u64, StoreError> {
        let _ = (now, batch);
        Ok(0)
    }

    /// Whether every future this store's methods return is ready the first time it is
    /// polled: the store does its work in place and never waits (an in-process map, as
    /// [`MemoryStore`](crate::MemoryStore)). The layer then runs a request's save in place
    /// instead of boxing it. Default `false`, which is always correct.
    ///
    /// A store that says `true` and then returns a pending future breaks this contract: the
    /// layer abandons that save, logs an error and answers with its save error (`500` unless
    /// configured), as for a failed save.
    fn never_waits(&self) -> bool {
        false
    }

    /// The live record under `key` at `now`, as [`load`](Self::load) returns it, after
    /// moving its idle deadline and `last_seen` if `rule` says a touch is
    /// [due](TouchRule::due) (judged by the record's own persistence flag and deadlines).
    /// The layer reads a session with this, so a read whose touch is due costs one call.
    ///
    /// The default runs [`load`](Self::load), then [`touch`](Self::touch) if due: two calls,
    /// and a record that dies between them comes back untouched (it is gone at the next
    /// request anyway). A backend that can do both in one round trip should override it.
    async fn load_touching(
        &self,
        key: &StorageKey,
        now: OffsetDateTime,
        rule: &TouchRule,
    ) -> Result<Option<Record>, StoreError> {
        let Some(mut record) = self.load(key, now).await? else {
            return Ok(None);
        };
        if let Some(touch) = rule.due(&record.meta, now) {
            if self.touch(key, touch.seen, touch.idle_deadline).await? {
                record.meta.last_seen = touch.seen;
                record.meta.idle_deadline = touch.idle_deadline;
            }
        }
        Ok(Some(record))
    }

    /// Applies `change`, made by a request that did not read the session, to the live
    /// record under `key`, as [`update`](Self::update) does, with two additions in the same
    /// step: if `change` carries no touch of its own and one is
    /// [due](TouchRule::due) by `rules.touch` (after the change's persistence flag applies),
    /// the idle deadline moves too; and if the data would pass `rules.limits` (counted as
    /// [`Limits`] says, and [allowed](Limits::allow) to shrink), nothing is written and the
    /// answer is [`Written::TooLarge`]. A record that is not live is [`Written::Gone`], and
    /// nothing is written: never an upsert.
    ///
    /// The default runs [`load`](Self::load), checks the limits, then
    /// [`update`](Self::update)s with the due touch folded in: two calls, and the limit check
    /// is not atomic with the update, so concurrent writes of new keys can together pass the
    /// limits by what one request writes. Backends that can check and write in one atomic
    /// step (the Redis store does) should override it.
    async fn write(
        &self,
        key: &StorageKey,
        change: &Change,
        rules: &WriteRules,
        now: OffsetDateTime,
    ) -> Result<Written, StoreError> {
        let Some(record) = self.load(key, now).await? else {
            return Ok(Written::Gone);
        };
        if let Some(after) = rules.limits.refuse(record.data(), change) {
            return Ok(Written::TooLarge(after));
        }
        let mut change = change.clone();
        if change.touch.is_none() {
            let mut meta = record.meta.clone();
            change.apply_meta(&mut meta);
            change.touch = rules.touch.due(&meta, now);
        }
        Ok(match self.update(key, &change, now).await? {
            Some(meta) => Written::Done(meta),
            None => Written::Gone,
        })
    }

    /// As [`rotate`](Self::rotate), for a request that did not read the session: if the
    /// change would make the data pass `limits` (counted as [`Limits`] says, and
    /// [allowed](Limits::allow) to shrink), nothing is written and the answer is
    /// [`Rotated::TooLarge`].
    ///
    /// The default runs [`load`](Self::load), checks the limits, then
    /// [`rotate`](Self::rotate)s: one call more, and the check is not atomic with the
    /// rotation. Backends whose rotation reads the record anyway (the memory and Redis
    /// stores) should override it and check what they read.
    async fn rotate_within(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        change: &Change,
        limits: &Limits,
        now: OffsetDateTime,
    ) -> Result<Rotated, StoreError> {
        let Some(record) = self.load(old, now).await? else {
            return Ok(Rotated::Gone);
        };
        if let Some(after) = limits.refuse(record.data(), change) {
            return Ok(Rotated::TooLarge(after));
        }
        self.rotate(old, new, change, now).await
    }
}

macro_rules! forward_store {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<S: SessionStore + ?Sized> SessionStore for $ty {
            async fn create(&self, key: &StorageKey, record: &Record) -> Result<bool, StoreError> {
                (**self).create(key, record).await
            }
            async fn load(&self, key: &StorageKey, now: OffsetDateTime) -> Result<Option<Record>, StoreError> {
                (**self).load(key, now).await
            }
            async fn update(&self, key: &StorageKey, change: &Change, now: OffsetDateTime) -> Result<Option<Metadata>, StoreError> {
                (**self).update(key, change, now).await
            }
            async fn touch(&self, key: &StorageKey, seen: OffsetDateTime, idle_deadline: OffsetDateTime) -> Result<bool, StoreError> {
                (**self).touch(key, seen, idle_deadline).await
            }
            async fn rotate(&self, old: &StorageKey, new: &StorageKey, change: &Change, now: OffsetDateTime) -> Result<Rotated, StoreError> {
                (**self).rotate(old, new, change, now).await
            }
            async fn delete(&self, key: &StorageKey) -> Result<(), StoreError> {
                (**self).delete(key).await
            }
            async fn list_by_user(&self, user: &str, now: OffsetDateTime) -> Result<Vec<SessionInfo>, StoreError> {
                (**self).list_by_user(user, now).await
            }
            async fn delete_by_user(&self, user: &str, except: Option<&StorageKey>, now: OffsetDateTime) -> Result<u64, StoreError> {
                (**self).delete_by_user(user, except, now).await
            }
            async fn delete_expired(&self, now: OffsetDateTime, batch: usize) -> Result<u64, StoreError> {
                (**self).delete_expired(now, batch).await
            }
            async fn load_touching(&self, key: &StorageKey, now: OffsetDateTime, rule: &TouchRule) -> Result<Option<Record>, StoreError> {
                (**self).load_touching(key, now, rule).await
            }
            async fn write(&self, key: &StorageKey, change: &Change, rules: &WriteRules, now: OffsetDateTime) -> Result<Written, StoreError> {
                (**self).write(key, change, rules, now).await
            }
            async fn rotate_within(&self, old: &StorageKey, new: &StorageKey, change: &Change, limits: &Limits, now: OffsetDateTime) -> Result<Rotated, StoreError> {
                (**self).rotate_within(old, new, change, limits, now).await
            }
            fn never_waits(&self) -> bool {
                (**self).never_waits()
            }
        }
    )*};
}

forward_store!(Arc<S>, Box<S>);
