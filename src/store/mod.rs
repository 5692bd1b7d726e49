//! The store contract: one trait every backend implements.
//!
//! The layer hands a store only [`StorageKey`]s (hashes of session IDs), [`Record`]s and
//! [`Change`]s, the rules a write must keep ([`WriteRules`]: the size limits and when a
//! touch is due), and the time it considers "now" (so tests can drive the clock and every
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
//! How a change applies, what counts against the limits and when a touch is due each have
//! one home: [`WriteRules::apply`] does all three to a [`Record`]. A store that reads,
//! modifies and writes (inside its own lock or transaction) calls it; a store that applies
//! changes remotely (a Redis script, one SQL statement) mirrors it, and the conformance
//! suite holds the two together.
//!
//! Every method returns a [`StoreFuture`]: [`StoreFuture::ready`] for a store that answers
//! in place, [`StoreFuture::boxed`] for one that waits on a server.
//!
//! ```
//! use session_layer::{MemoryStore, SessionLayer};
//!
//! // Any `SessionStore` goes into the layer the same way, bare or wrapped.
//! let layer = SessionLayer::new(MemoryStore::default());
//! let wrapped = SessionLayer::new(std::sync::Arc::new(MemoryStore::default()));
//! # let _ = (layer, wrapped);
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
/// A minimal store, correct but for one process only, shows the shape; the
/// [`memory`] module's [`MemoryStore`](crate::MemoryStore) is the same idea, sharded and
/// bounded:
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
///
/// use session_layer::id::StorageKey;
/// use session_layer::record::{Change, Record};
/// use session_layer::store::{
///     Applied, Rotated, SessionInfo, SessionStore, StoreFuture, TouchRule, WriteRules,
/// };
/// use time::OffsetDateTime;
///
/// #[derive(Debug, Default)]
/// struct MapStore(Mutex<HashMap<StorageKey, Record>>);
///
/// impl SessionStore for MapStore {
///     fn create<'a>(&'a self, key: &'a StorageKey, record: &'a Record) -> StoreFuture<'a, bool> {
///         let mut map = self.0.lock().unwrap();
///         let fresh = !map.contains_key(key);
///         if fresh {
///             map.insert(*key, record.clone());
///         }
///         StoreFuture::ready(Ok(fresh))
///     }
///
///     fn load<'a>(
///         &'a self,
///         key: &'a StorageKey,
///         touch: Option<&'a TouchRule>,
///         now: OffsetDateTime,
///     ) -> StoreFuture<'a, Option<Record>> {
///         let mut map = self.0.lock().unwrap();
///         let live = map.get_mut(key).filter(|r| r.is_live(now)).map(|record| {
///             if let Some(due) = touch.and_then(|rule| rule.due(&record.meta, now)) {
///                 due.apply_to(&mut record.meta);
///             }
///             record.clone()
///         });
///         StoreFuture::ready(Ok(live))
///     }
///
///     fn apply<'a>(
///         &'a self,
///         key: &'a StorageKey,
///         change: &'a Change,
///         rules: &'a WriteRules,
///         now: OffsetDateTime,
///     ) -> StoreFuture<'a, Applied> {
///         let mut map = self.0.lock().unwrap();
///         StoreFuture::ready(Ok(match map.get_mut(key) {
///             Some(record) => rules.apply(record, change, now),
///             None => Applied::Gone,
///         }))
///     }
///
///     fn rotate<'a>(
///         &'a self,
///         old: &'a StorageKey,
///         new: &'a StorageKey,
///         change: &'a Change,
///         rules: &'a WriteRules,
///         now: OffsetDateTime,
///     ) -> StoreFuture<'a, Rotated> {
///         let mut map = self.0.lock().unwrap();
///         if map.contains_key(new) {
///             return StoreFuture::ready(Ok(Rotated::Collision));
///         }
///         let Some(mut record) = map.get(old).cloned() else {
///             return StoreFuture::ready(Ok(Rotated::Gone));
///         };
///         StoreFuture::ready(Ok(match rules.apply(&mut record, change, now) {
///             Applied::Done(meta) => {
///                 map.remove(old);
///                 map.insert(*new, record);
///                 Rotated::Done(meta)
///             }
///             Applied::TooLarge(totals) => Rotated::TooLarge(totals),
///             _ => Rotated::Gone,
///         }))
///     }
///
///     fn delete<'a>(&'a self, key: &'a StorageKey) -> StoreFuture<'a, ()> {
///         self.0.lock().unwrap().remove(key);
///         StoreFuture::ready(Ok(()))
///     }
///
///     fn delete_owned<'a>(
///         &'a self,
///         key: &'a StorageKey,
///         user: &'a str,
///         now: OffsetDateTime,
///     ) -> StoreFuture<'a, bool> {
///         let mut map = self.0.lock().unwrap();
///         let owned = map.get(key).is_some_and(|r| r.meta.user.as_deref() == Some(user));
///         let removed = owned.then(|| map.remove(key)).flatten();
///         StoreFuture::ready(Ok(removed.is_some_and(|r| r.is_live(now))))
///     }
///
///     fn list_by_user<'a>(
///         &'a self,
///         user: &'a str,
///         now: OffsetDateTime,
///     ) -> StoreFuture<'a, Vec<SessionInfo>> {
///         let map = self.0.lock().unwrap();
///         let mine = map.iter().filter(|(_, r)| r.is_live(now) && r.meta.user.as_deref() == Some(user));
///         StoreFuture::ready(Ok(mine.map(|(k, r)| SessionInfo::new(*k, r.meta.clone())).collect()))
///     }
///
///     fn delete_by_user<'a>(
///         &'a self,
///         user: &'a str,
///         except: Option<&'a StorageKey>,
///         now: OffsetDateTime,
///     ) -> StoreFuture<'a, u64> {
///         // One lock over every record: no rotation can run between the look and the delete.
///         let mut map = self.0.lock().unwrap();
///         let mut live = 0;
///         map.retain(|k, r| {
///             let doomed = r.meta.user.as_deref() == Some(user) && Some(k) != except;
///             live += u64::from(doomed && r.is_live(now));
///             !doomed
///         });
///         StoreFuture::ready(Ok(live))
///     }
///
///     fn delete_expired(&self, now: OffsetDateTime, batch: usize) -> StoreFuture<'_, u64> {
///         let mut map = self.0.lock().unwrap();
///         let dead: Vec<StorageKey> =
///             map.iter().filter(|(_, r)| !r.is_live(now)).map(|(k, _)| *k).take(batch).collect();
///         for key in &dead {
///             map.remove(key);
///         }
///         StoreFuture::ready(Ok(dead.len() as u64))
///     }
/// }
///
/// let layer = session_layer::SessionLayer::new(MapStore::default());
/// # let _ = layer;
/// ```
pub trait SessionStore: Debug + Send + Sync + 'static {
    /// Inserts `record` under `key` if the key is absent. Answers `false`, writing nothing,
    /// if the key is taken (even by an expired record the backend has not removed yet).
    fn create<'a>(&'a self, key: &'a StorageKey, record: &'a Record) -> StoreFuture<'a, bool>;

    /// The live record under `key` at `now`, or `None` if there is none or it has expired.
    ///
    /// With a `touch` rule, a touch that is [due](TouchRule::due) (judged on the stored
    /// record's own persistence flag and deadlines) is made in the same atomic step, and the
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
    /// own, a due touch.
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
