//! [`MemoryStore`]: the embedded default, for one process and for tests.
//!
//! Records live in a fixed number of independently locked shards picked by the storage key,
//! so concurrent requests of different sessions rarely wait on each other and no lock is
//! ever held across an `.await`. The store is bounded: at [capacity](MemoryStore::with_capacity)
//! it first evicts expired records, and if every record is still live it refuses new
//! sessions with a [`StoreErrorKind::Full`] error (the request fails with a server error)
//! rather than silently logging out live users. Expired records are removed when a load
//! finds them, by a sweep of one shard every few hundred creations, and by
//! [`delete_expired`](SessionStore::delete_expired).
//!
//! Each session is kept packed in one allocation (times as integers, the data as JSON text),
//! about 145 bytes of memory per session beyond its data at a million sessions. A load
//! shares it (the request reads its data from the packed JSON text, one key at a time), a
//! touch writes in place, and a change is merged into the stored JSON entry by entry.
//!
//! Sessions end when the process does; use the SQLite store to keep them across restarts.
//!
//! ```
//! use session_layer::{MemoryStore, SessionLayer};
//!
//! let store = MemoryStore::default().with_capacity(50_000);
//! let layer = SessionLayer::new(store);
//! # let _ = layer;
//! ```

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use time::OffsetDateTime;

use super::{
    Limits, Rotated, SessionInfo, SessionStore, StoreError, StoreErrorKind, Totals, TouchRule,
    WriteRules, Written,
};
use crate::clock::millis;
use crate::id::StorageKey;
use crate::record::{Change, Metadata, Record};

mod packed;
use packed::Packed;

/// Not a power of two on purpose: hash tables double at 7/8 full, so with 2^k shards a store
/// just past 2^(k+m) x 7/8 sessions (one million is just past 2^20 x 7/8) sits in tables
/// half empty. Eighty shards of 16,384 slots hold 1.1 million sessions before any doubles.
const SHARDS: usize = 80;
/// One shard is swept for expired records every this many creations.
const SWEEP_EVERY: usize = 256;
/// The default capacity, in sessions.
pub const DEFAULT_CAPACITY: usize = 1_000_000;

/// Storage keys are SHA-256 output already: their first bytes are a perfectly good hash.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut first = [0u8; 8];
        let n = bytes.len().min(8);
        first[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(first);
    }
}

type Shard = HashMap<StorageKey, Packed, BuildHasherDefault<KeyHasher>>;

/// An in-process session store. Cloning it gives another handle to the same sessions.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    users: Mutex<HashMap<String, HashSet<StorageKey>>>,
    len: AtomicUsize,
    capacity: usize,
    creations: AtomicUsize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
                users: Mutex::default(),
                len: AtomicUsize::new(0),
                capacity: DEFAULT_CAPACITY,
                creations: AtomicUsize::new(0),
            }),
        }
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.len())
            .field("capacity", &self.inner.capacity)
            .finish()
    }
}

impl MemoryStore {
    /// A store of at most `capacity` sessions (default 1,000,000). See the
    /// [module docs](self) for what happens at the bound.
    ///
    /// # Panics
    ///
    /// Panics if called on a store that has been cloned or used; set it first.
    #[must_use]
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("set the capacity before cloning or using the store")
            .capacity = capacity;
        self
    }

    /// How many records the store holds, live or not yet evicted.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.len.load(Ordering::Relaxed)
    }

    /// Whether the store holds no record.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &StorageKey) -> MutexGuard<'_, Shard> {
        lock(&self.inner.shards[shard_of(key)])
    }

    fn users(&self) -> MutexGuard<'_, HashMap<String, HashSet<StorageKey>>> {
        lock(&self.inner.users)
    }

    /// Moves the live record under `old` to `new` with `change` applied, unless `new` is
    /// taken or, with `limits`, the change would pass them.
    fn move_record(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        change: &Change,
        limits: Option<&Limits>,
        now: OffsetDateTime,
    ) -> Rotated {
        // Two shard locks, always taken in index order so rotations cannot deadlock.
        let (a, b) = (shard_of(old), shard_of(new));
        let moved = if a == b {
            let mut shard = lock(&self.inner.shards[a]);
            if shard.contains_key(new) {
                return Rotated::Collision;
            }
            take_changed(&mut shard, old, change, limits, now).map(|(before, packed)| {
                let meta = packed.meta();
                shard.insert(*new, packed);
                (before, meta)
            })
        } else {
            let (first, second) = (a.min(b), a.max(b));
            let mut g1 = lock(&self.inner.shards[first]);
            let mut g2 = lock(&self.inner.shards[second]);
            let (old_shard, new_shard) = if a < b {
                (&mut *g1, &mut *g2)
            } else {
                (&mut *g2, &mut *g1)
            };
            if new_shard.contains_key(new) {
                return Rotated::Collision;
            }
            take_changed(old_shard, old, change, limits, now).map(|(before, packed)| {
                let meta = packed.meta();
                new_shard.insert(*new, packed);
                (before, meta)
            })
        };
        let (before, meta) = match moved {
            Ok(moved) => moved,
            Err(NotMoved::TooLarge(totals)) => return Rotated::TooLarge(totals),
            Err(NotMoved::Gone(expired)) => {
                if let Some(expired) = expired {
                    self.inner.len.fetch_sub(1, Ordering::Relaxed);
                    self.reindex(old, expired.user(), None);
                }
                return Rotated::Gone;
            }
        };
        self.reindex(old, before.as_deref(), None);
        self.reindex(new, None, meta.user.as_deref());
        Rotated::Done(meta)
    }

    /// Keeps the per-user index in step with a record that changed owner or went away.
    /// Called after the shard lock is released: the index may briefly name a record that is
    /// gone, which listing tolerates, but never misses one that exists.
    fn reindex(&self, key: &StorageKey, before: Option<&str>, after: Option<&str>) {
        if before == after {
            return;
        }
        let mut users = self.users();
        if let Some(user) = before {
            if let Some(keys) = users.get_mut(user) {
                keys.remove(key);
                if keys.is_empty() {
                    users.remove(user);
                }
            }
        }
        if let Some(user) = after {
            users.entry(user.to_owned()).or_default().insert(*key);
        }
    }

    /// Removes expired records from one shard; returns how many, with their owners.
    fn sweep_shard(&self, index: usize, now: OffsetDateTime, limit: usize) -> u64 {
        let mut owned = Vec::new();
        let mut removed = 0u64;
        {
            let mut shard = lock(&self.inner.shards[index]);
            let dead: Vec<StorageKey> = shard
                .iter()
                .filter(|(_, r)| !r.is_live(now))
                .map(|(k, _)| *k)
                .take(limit)
                .collect();
            for key in dead {
                if let Some(record) = shard.remove(&key) {
                    removed += 1;
                    if let Some(user) = record.user() {
                        owned.push((key, user.to_owned()));
                    }
                }
            }
        }
        self.inner
            .len
            .fetch_sub(removed as usize, Ordering::Relaxed);
        for (key, user) in owned {
            self.reindex(&key, Some(&user), None);
        }
        removed
    }

    fn remove_key(&self, key: &StorageKey) {
        let removed = self.shard(key).remove(key);
        if let Some(record) = &removed {
            self.inner.len.fetch_sub(1, Ordering::Relaxed);
            self.reindex(key, record.user(), None);
        }
    }

    /// Makes room for one more record, or says the store is full.
    fn reserve(&self, now: OffsetDateTime) -> Result<(), StoreError> {
        let n = self.inner.creations.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(SWEEP_EVERY) {
            self.sweep_shard((n / SWEEP_EVERY) % SHARDS, now, usize::MAX);
        }
        if self.len() < self.inner.capacity {
            return Ok(());
        }
        for index in 0..SHARDS {
            self.sweep_shard(index, now, usize::MAX);
        }
        if self.len() < self.inner.capacity {
            Ok(())
        } else {
            Err(StoreError::new(
                StoreErrorKind::Full,
                format!(
                    "the memory store holds its capacity of {} live sessions; raise it with \
                     MemoryStore::with_capacity or use a server-side store",
                    self.inner.capacity
                ),
            ))
        }
    }

    // The store's calls that the request flow makes, without a future: the layer calls
    // them directly when its store is a `MemoryStore` (no boxed future per call).

    /// [`SessionStore::load`], answered at once.
    pub(crate) fn load_now(
        &self,
        key: &StorageKey,
        now: OffsetDateTime,
    ) -> Result<Option<Record>, StoreError> {
        {
            let shard = self.shard(key);
            match shard.get(key) {
                None => return Ok(None),
                Some(record) if record.is_live(now) => return Ok(Some(record.record())),
                Some(_) => {}
            }
        }
        // Expired: evict it now rather than wait for a sweep.
        let mut shard = self.shard(key);
        if shard.get(key).is_some_and(|r| !r.is_live(now)) {
            let record = shard.remove(key);
            drop(shard);
            self.inner.len.fetch_sub(1, Ordering::Relaxed);
            if let Some(user) = record.as_ref().and_then(Packed::user) {
                self.reindex(key, Some(user), None);
            }
        }
        Ok(None)
    }

    /// [`SessionStore::load_touching`], answered at once.
    pub(crate) fn load_touching_now(
        &self,
        key: &StorageKey,
        now: OffsetDateTime,
        rule: &TouchRule,
    ) -> Result<Option<Record>, StoreError> {
        {
            let now = millis::of(now);
            let mut shard = self.shard(key);
            match shard.get_mut(key) {
                None => return Ok(None),
                Some(packed) if packed.is_live_at(now) => {
                    // Decided and written on the packed times; the record shares the packed bytes.
                    if let Some(idle_deadline) = packed.due(rule, now) {
                        packed.touch_at(now, idle_deadline);
                    }
                    return Ok(Some(packed.record()));
                }
                Some(_) => {}
            }
        }
        // Expired: `load` evicts it.
        self.load_now(key, now)
    }

    /// Runs `apply` on the live record under `key` within its shard's lock (so a limit
    /// check, the change and a touch are one atomic step), then moves the owner index if
    /// `change` names an owner. `None`, running nothing, if no live record is there.
    fn apply_live<T>(
        &self,
        key: &StorageKey,
        change: &Change,
        now: OffsetDateTime,
        apply: impl FnOnce(&mut Packed) -> T,
    ) -> Option<T> {
        let owner = |packed: &Packed| {
            change
                .user
                .as_ref()
                .and_then(|_| packed.user().map(str::to_owned))
        };
        let (before, after, applied) = {
            let mut shard = self.shard(key);
            let packed = shard.get_mut(key).filter(|r| r.is_live(now))?;
            let before = owner(packed);
            let applied = apply(packed);
            (before, owner(packed), applied)
        };
        // The index moves only with the owner.
        if change.user.is_some() {
            self.reindex(key, before.as_deref(), after.as_deref());
        }
        Some(applied)
    }

    /// [`SessionStore::write`], answered at once.
    pub(crate) fn write_now(
        &self,
        key: &StorageKey,
        change: &Change,
        rules: &WriteRules,
        now: OffsetDateTime,
    ) -> Result<Written, StoreError> {
        let written = self.apply_live(key, change, now, |packed| {
            packed
                .write(change, rules, millis::of(now))
                .map(|()| packed.meta())
        });
        Ok(match written {
            None => Written::Gone,
            Some(Err(after)) => Written::TooLarge(after),
            Some(Ok(meta)) => Written::Done(meta),
        })
    }

    /// [`SessionStore::update`], answered at once. The layer needs the metadata of a
    /// session that is not persistent only when `asked`: building it is skipped otherwise.
    pub(crate) fn update_now(
        &self,
        key: &StorageKey,
        change: &Change,
        now: OffsetDateTime,
        asked: bool,
    ) -> Result<Updated, StoreError> {
        let updated = self.apply_live(key, change, now, |packed| {
            packed.apply(change);
            (asked || packed.is_persistent()).then(|| packed.meta())
        });
        Ok(match updated {
            None => Updated::Gone,
            Some(None) => Updated::NotPersistent,
            Some(Some(meta)) => Updated::Done(meta),
        })
    }
}

/// What [`MemoryStore::update_now`] did.
pub(crate) enum Updated {
    /// Nothing: the session is gone (ended or expired).
    Gone,
    /// Applied the change to a session that is not persistent; its metadata was not asked for.
    NotPersistent,
    /// Applied the change; the session's metadata now.
    Done(Metadata),
}

/// Why [`take_changed`] left a record where it was.
enum NotMoved {
    /// Missing or expired; an expired record was taken out, and is here.
    Gone(Option<Packed>),
    /// The change would pass the limits: the record is untouched.
    TooLarge(Totals),
}

/// Takes the live record at `key` out of `shard` with `change` applied, and its owner before
/// the change; with `limits`, a change that would pass them leaves the record in place.
fn take_changed(
    shard: &mut Shard,
    key: &StorageKey,
    change: &Change,
    limits: Option<&Limits>,
    now: OffsetDateTime,
) -> Result<(Option<String>, Packed), NotMoved> {
    let mut packed = match shard.remove(key) {
        Some(packed) if packed.is_live(now) => packed,
        other => return Err(NotMoved::Gone(other)),
    };
    let before = packed.user().map(str::to_owned);
    match limits {
        Some(limits) => {
            if let Err(after) = packed.apply_within(change, limits) {
                // Refused: it goes back as it was.
                shard.insert(*key, packed);
                return Err(NotMoved::TooLarge(after));
            }
        }
        None => packed.apply(change),
    }
    Ok((before, packed))
}

/// The shard of `key`, from bytes the in-shard hash does not use (it takes the first eight).
fn shard_of(key: &StorageKey) -> usize {
    let b = key.as_bytes();
    let tail = u32::from_le_bytes([b[28], b[29], b[30], b[31]]);
    tail as usize % SHARDS
}

/// A poisoned shard only means another request panicked while holding it; the map itself is
/// consistent after every statement, so carry on.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[async_trait]
impl SessionStore for MemoryStore {
    /// Every call takes a shard lock and returns: nothing here ever waits.
    fn never_waits(&self) -> bool {
        true
    }

    async fn create(&self, key: &StorageKey, record: &Record) -> Result<bool, StoreError> {
        self.reserve(record.meta.created)?;
        {
            let mut shard = self.shard(key);
            if shard.contains_key(key) {
                return Ok(false);
            }
            shard.insert(*key, Packed::new(record));
        }
        self.inner.len.fetch_add(1, Ordering::Relaxed);
        self.reindex(key, None, record.meta.user.as_deref());
        Ok(true)
    }

    async fn load(
        &self,
        key: &StorageKey,
        now: OffsetDateTime,
    ) -> Result<Option<Record>, StoreError> {
        self.load_now(key, now)
    }

    async fn load_touching(
        &self,
        key: &StorageKey,
        now: OffsetDateTime,
        rule: &TouchRule,
    ) -> Result<Option<Record>, StoreError> {
        self.load_touching_now(key, now, rule)
    }

    async fn write(
        &self,
        key: &StorageKey,
        change: &Change,
        rules: &WriteRules,
        now: OffsetDateTime,
    ) -> Result<Written, StoreError> {
        self.write_now(key, change, rules, now)
    }

    async fn update(
        &self,
        key: &StorageKey,
        change: &Change,
        now: OffsetDateTime,
    ) -> Result<Option<Metadata>, StoreError> {
        Ok(match self.update_now(key, change, now, true)? {
            Updated::Done(meta) => Some(meta),
            Updated::Gone => None,
            Updated::NotPersistent => unreachable!("the metadata was asked for"),
        })
    }

    async fn touch(
        &self,
        key: &StorageKey,
        seen: OffsetDateTime,
        idle_deadline: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut shard = self.shard(key);
        match shard.get_mut(key).filter(|r| r.is_live(seen)) {
            Some(record) => {
                record.touch(seen, idle_deadline);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn rotate(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        change: &Change,
        now: OffsetDateTime,
    ) -> Result<Rotated, StoreError> {
        Ok(self.move_record(old, new, change, None, now))
    }

    async fn rotate_within(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        change: &Change,
        limits: &Limits,
        now: OffsetDateTime,
    ) -> Result<Rotated, StoreError> {
        // The limits are checked on the record the rotation takes, under the same locks.
        Ok(self.move_record(old, new, change, Some(limits), now))
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StoreError> {
        self.remove_key(key);
        Ok(())
    }

    async fn list_by_user(
        &self,
        user: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        let keys: Vec<StorageKey> = match self.users().get(user) {
            Some(keys) => keys.iter().copied().collect(),
            None => return Ok(Vec::new()),
        };
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(record) = self.shard(&key).get(&key) {
                if record.is_live(now) && record.user() == Some(user) {
                    out.push(SessionInfo::new(key, record.meta()));
                }
            }
        }
        Ok(out)
    }

    async fn delete_by_user(
        &self,
        user: &str,
        except: Option<&StorageKey>,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let keys: Vec<StorageKey> = match self.users().get(user) {
            Some(keys) => keys
                .iter()
                .filter(|k| Some(*k) != except)
                .copied()
                .collect(),
            None => return Ok(0),
        };
        let mut deleted = 0;
        for key in keys {
            let removed = {
                let mut shard = self.shard(&key);
                if shard.get(&key).and_then(Packed::user) == Some(user) {
                    shard.remove(&key)
                } else {
                    None
                }
            };
            if let Some(record) = removed {
                self.inner.len.fetch_sub(1, Ordering::Relaxed);
                self.reindex(&key, Some(user), None);
                if record.is_live(now) {
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }

    async fn delete_expired(&self, now: OffsetDateTime, batch: usize) -> Result<u64, StoreError> {
        let mut removed = 0;
        for index in 0..SHARDS {
            if removed as usize >= batch {
                break;
            }
            removed += self.sweep_shard(index, now, batch - removed as usize);
        }
        Ok(removed)
    }
}
