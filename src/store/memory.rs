//! [`MemoryStore`]: the embedded default, for one process and for tests.
//!
//! Records live in a fixed number of independently locked shards picked by the storage key,
//! so concurrent requests of different sessions rarely wait on each other and no lock is
//! ever held across an `.await`. The store is bounded: at [capacity](MemoryStore::with_capacity)
//! it first evicts expired records, and if every record is still live it refuses new
//! sessions with a [`StoreErrorKind::Full`] error (the request fails with a server error)
//! rather than silently logging out live users. Expired records are removed when a load
//! finds them, by a sweep of one shard every few hundred creations, and by
//! [`delete_expired`](SessionStore::delete_expired) (run it on a timer with
//! [`spawn_cleanup`](super::spawn_cleanup)).
//!
//! A create at capacity costs a bounded amount of work however large the store: it sweeps
//! the next shards in turn until about a thousand records were examined (at least one
//! shard; all of them in a small store), and at most once a second. A create that then
//! still finds no room is refused at once, so a flood of new sessions against a full store
//! cannot make every request walk the whole store.
//!
//! Each session is kept packed in one allocation (times as integers, the data as JSON text).
//! A load decodes it, a touch writes the times in place, and a change is applied by the
//! store's rules ([`WriteRules::apply`]) to the decoded record under the shard's lock, then
//! packed again. Every call answers at once ([`StoreFuture::ready`]).
//!
//! The per-user index is changed under the same locks as the records it names, always taken
//! in one order (the index, then shards by number), so a revocation of a user's sessions
//! and a rotation or create of one of them cannot interleave.
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
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use time::OffsetDateTime;

use super::{
    Applied, Rotated, SessionInfo, SessionStore, StoreError, StoreErrorKind, StoreFuture,
    TouchRule, WriteRules,
};
use crate::id::StorageKey;
use crate::record::{Change, Record};

mod packed;
use packed::Packed;

/// Not a power of two on purpose: hash tables double at 7/8 full, so with 2^k shards a store
/// just past 2^(k+m) x 7/8 sessions (one million is just past 2^20 x 7/8) sits in tables
/// half empty. Eighty shards of 16,384 slots hold 1.1 million sessions before any doubles.
const SHARDS: usize = 80;
/// One shard is swept for expired records every this many creations.
const SWEEP_EVERY: usize = 256;
/// A create at capacity sweeps shards until it has examined this many records (at least
/// one shard), so its cost does not grow with the store.
const SWEEP_BUDGET: usize = 1024;
/// Creates at capacity sweep at most once in this many milliseconds of the layer's clock;
/// the others are refused without sweeping.
const FULL_SWEEP_EVERY_MS: i64 = 1000;
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
type Users = HashMap<String, HashSet<StorageKey>>;

/// An in-process session store. Cloning it gives another handle to the same sessions.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    /// Each owner's keys. Every live record with an owner is listed under it; an entry may
    /// outlive its record (a delete or an expiry drops the entry just after the record), which
    /// readers tolerate by checking the record.
    users: Mutex<Users>,
    len: AtomicUsize,
    capacity: usize,
    creations: AtomicUsize,
    /// The shard the next sweep takes: sweeps go round the shards in turn.
    next_sweep: AtomicUsize,
    /// When a create at capacity last swept, in milliseconds since the epoch.
    full_swept_at: AtomicI64,
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
                next_sweep: AtomicUsize::new(0),
                full_swept_at: AtomicI64::new(i64::MIN),
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

    fn users(&self) -> MutexGuard<'_, Users> {
        lock(&self.inner.users)
    }

    /// Removes `key` from `user`'s list. Called after the record is gone, never while a
    /// shard is locked (the index comes first in the lock order).
    fn unindex(&self, key: &StorageKey, user: &str) {
        unlist(&mut self.users(), key, user);
    }

    /// Removes whatever is under `key` from `shard`, keeping the count; answers the owner.
    fn take(&self, shard: &mut Shard, key: &StorageKey) -> Option<Packed> {
        let removed = shard.remove(key);
        if removed.is_some() {
            self.inner.len.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// Removes expired records from one shard; returns how many, and how many records the
    /// shard held.
    fn sweep_shard(&self, index: usize, now: OffsetDateTime, limit: usize) -> (u64, usize) {
        let mut owned = Vec::new();
        let mut removed = 0u64;
        let examined;
        {
            let mut shard = lock(&self.inner.shards[index]);
            examined = shard.len();
            let dead: Vec<StorageKey> = shard
                .iter()
                .filter(|(_, r)| !r.is_live(now))
                .map(|(k, _)| *k)
                .take(limit)
                .collect();
            for key in dead {
                if let Some(record) = self.take(&mut shard, &key) {
                    removed += 1;
                    if let Some(user) = record.user() {
                        owned.push((key, user.to_owned()));
                    }
                }
            }
        }
        for (key, user) in owned {
            self.unindex(&key, &user);
        }
        (removed, examined)
    }

    /// Sweeps the next shard in turn; answers how many records it held.
    fn sweep_next(&self, now: OffsetDateTime) -> usize {
        let index = self.inner.next_sweep.fetch_add(1, Ordering::Relaxed) % SHARDS;
        self.sweep_shard(index, now, usize::MAX).1
    }

    /// Whether a create at capacity at `now` may sweep: the first in each interval may.
    fn claim_full_sweep(&self, now: OffsetDateTime) -> bool {
        let now = crate::clock::millis::of(now);
        let last = &self.inner.full_swept_at;
        let seen = last.load(Ordering::Relaxed);
        // A clock that went back (another request's `now`) counts as within the interval.
        now.saturating_sub(seen) >= FULL_SWEEP_EVERY_MS
            && last
                .compare_exchange(seen, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Makes room for one more record, or says the store is full.
    fn reserve(&self, now: OffsetDateTime) -> Result<(), StoreError> {
        let n = self.inner.creations.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(SWEEP_EVERY) {
            self.sweep_next(now);
        }
        if self.len() < self.inner.capacity {
            return Ok(());
        }
        if self.claim_full_sweep(now) {
            let mut examined = 0;
            for _ in 0..SHARDS {
                examined += self.sweep_next(now);
                if examined >= SWEEP_BUDGET {
                    break;
                }
            }
        }
        if self.len() < self.inner.capacity {
            Ok(())
        } else {
            Err(StoreError::new(
                StoreErrorKind::Full,
                format!(
                    "the memory store holds its capacity of {} sessions, and a create at \
                     capacity sweeps expired ones at most once a second; raise the capacity \
                     with MemoryStore::with_capacity, sweep on a timer with spawn_cleanup, or \
                     use a server-side store",
                    self.inner.capacity
                ),
            ))
        }
    }

    fn create_now(&self, key: &StorageKey, record: &Record) -> Result<bool, StoreError> {
        self.reserve(record.meta.created)?;
        let owner = record.meta.user.as_deref();
        let mut users = owner.map(|_| self.users());
        let mut shard = self.shard(key);
        if shard.contains_key(key) {
            return Ok(false);
        }
        shard.insert(*key, Packed::new(record));
        self.inner.len.fetch_add(1, Ordering::Relaxed);
        if let (Some(users), Some(user)) = (users.as_mut(), owner) {
            list(users, key, user);
        }
        Ok(true)
    }

    fn load_now(
        &self,
        key: &StorageKey,
        touch: Option<&TouchRule>,
        now: OffsetDateTime,
    ) -> Option<Record> {
        let mut shard = self.shard(key);
        let packed = shard.get_mut(key)?;
        if packed.is_live(now) {
            let mut record = packed.record();
            if let Some(due) = touch.and_then(|rule| rule.due(&record.meta, now)) {
                due.apply_to(&mut record.meta);
                packed.set_seen(&record.meta);
            }
            return Some(record);
        }
        // Expired: evict it now rather than wait for a sweep.
        let expired = self.take(&mut shard, key);
        drop(shard);
        if let Some(user) = expired.as_ref().and_then(Packed::user) {
            self.unindex(key, user);
        }
        None
    }

    fn apply_now(
        &self,
        key: &StorageKey,
        change: &Change,
        rules: &WriteRules,
        now: OffsetDateTime,
    ) -> Applied {
        // A change of owner moves the index entry under the index's lock, taken first.
        let mut users = change.user.as_ref().map(|_| self.users());
        let mut shard = self.shard(key);
        let Some(packed) = shard.get_mut(key) else {
            return Applied::Gone;
        };
        let mut record = packed.record();
        let before = record.meta.user.clone();
        let applied = rules.apply(&mut record, change, now);
        if let Applied::Done(meta) = &applied {
            if change.touches_data() || change.user.is_some() || change.alters_expiry() {
                *packed = Packed::new(&record);
            } else {
                packed.set_seen(meta);
            }
            if let Some(users) = users.as_mut() {
                reindex(users, key, before.as_deref(), key, meta.user.as_deref());
            }
        }
        applied
    }

    fn rotate_now(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        change: &Change,
        rules: &WriteRules,
        now: OffsetDateTime,
    ) -> Rotated {
        // The index first, then both shards in index order: a revocation holding the index
        // sees the record under exactly one of its keys.
        let mut users = self.users();
        let (a, b) = (shard_of(old), shard_of(new));
        let mut first = lock(&self.inner.shards[a.min(b)]);
        let mut second = (a != b).then(|| lock(&self.inner.shards[a.max(b)]));
        // The shard of `old`, and the shard of `new` when it is another one.
        let (from, to): (&mut Shard, Option<&mut Shard>) = match second.as_deref_mut() {
            None => (&mut *first, None),
            Some(second) if a < b => (&mut *first, Some(second)),
            Some(second) => (second, Some(&mut *first)),
        };
        if to.as_deref().unwrap_or(&*from).contains_key(new) {
            return Rotated::Collision;
        }
        let Some(packed) = from.get(old) else {
            return Rotated::Gone;
        };
        let mut record = packed.record();
        let before = record.meta.user.clone();
        match rules.apply(&mut record, change, now) {
            Applied::Done(meta) => {
                from.remove(old);
                to.unwrap_or(from).insert(*new, Packed::new(&record));
                reindex(
                    &mut users,
                    old,
                    before.as_deref(),
                    new,
                    meta.user.as_deref(),
                );
                Rotated::Done(meta)
            }
            Applied::TooLarge(totals) => Rotated::TooLarge(totals),
            _ => Rotated::Gone,
        }
    }

    fn delete_now(&self, key: &StorageKey) {
        let removed = self.take(&mut self.shard(key), key);
        if let Some(user) = removed.as_ref().and_then(Packed::user) {
            self.unindex(key, user);
        }
    }

    fn delete_owned_now(&self, key: &StorageKey, user: &str, now: OffsetDateTime) -> bool {
        let mut users = self.users();
        let mut shard = self.shard(key);
        if shard.get(key).and_then(Packed::user) != Some(user) {
            return false;
        }
        let removed = self.take(&mut shard, key);
        unlist(&mut users, key, user);
        removed.is_some_and(|r| r.is_live(now))
    }

    fn list_now(&self, user: &str, now: OffsetDateTime) -> Vec<SessionInfo> {
        let users = self.users();
        let Some(keys) = users.get(user) else {
            return Vec::new();
        };
        keys.iter()
            .filter_map(|key| {
                let shard = self.shard(key);
                let packed = shard.get(key)?;
                (packed.is_live(now) && packed.user() == Some(user))
                    .then(|| SessionInfo::new(*key, packed.meta()))
            })
            .collect()
    }

    fn delete_by_user_now(
        &self,
        user: &str,
        except: Option<&StorageKey>,
        now: OffsetDateTime,
    ) -> u64 {
        // The index stays locked throughout: no create, rotation or change of owner of this
        // user's sessions runs until every one of them is gone.
        let mut users = self.users();
        let Some(keys) = users.remove(user) else {
            return 0;
        };
        let mut deleted = 0;
        let mut kept = HashSet::new();
        for key in keys {
            if Some(&key) == except {
                kept.insert(key);
                continue;
            }
            let mut shard = self.shard(&key);
            if shard.get(&key).and_then(Packed::user) == Some(user) {
                let removed = self.take(&mut shard, &key);
                deleted += u64::from(removed.is_some_and(|r| r.is_live(now)));
            }
        }
        if !kept.is_empty() {
            users.insert(user.to_owned(), kept);
        }
        deleted
    }

    fn delete_expired_now(&self, now: OffsetDateTime, batch: usize) -> u64 {
        let mut removed = 0;
        for index in 0..SHARDS {
            if removed as usize >= batch {
                break;
            }
            removed += self.sweep_shard(index, now, batch - removed as usize).0;
        }
        removed
    }
}

fn list(users: &mut Users, key: &StorageKey, user: &str) {
    users.entry(user.to_owned()).or_default().insert(*key);
}

fn unlist(users: &mut Users, key: &StorageKey, user: &str) {
    if let Some(keys) = users.get_mut(user) {
        keys.remove(key);
        if keys.is_empty() {
            users.remove(user);
        }
    }
}

/// Moves an index entry from `old` owned by `before` to `new` owned by `after`.
fn reindex(
    users: &mut Users,
    old: &StorageKey,
    before: Option<&str>,
    new: &StorageKey,
    after: Option<&str>,
) {
    if old == new && before == after {
        return;
    }
    if let Some(user) = before {
        unlist(users, old, user);
    }
    if let Some(user) = after {
        list(users, new, user);
    }
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

/// Every call takes its locks, does its work and answers: nothing here waits.
impl SessionStore for MemoryStore {
    fn create<'a>(&'a self, key: &'a StorageKey, record: &'a Record) -> StoreFuture<'a, bool> {
        StoreFuture::ready(self.create_now(key, record))
    }

    fn load<'a>(
        &'a self,
        key: &'a StorageKey,
        touch: Option<&'a TouchRule>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<Record>> {
        StoreFuture::ready(Ok(self.load_now(key, touch, now)))
    }

    fn apply<'a>(
        &'a self,
        key: &'a StorageKey,
        change: &'a Change,
        rules: &'a WriteRules,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Applied> {
        StoreFuture::ready(Ok(self.apply_now(key, change, rules, now)))
    }

    fn rotate<'a>(
        &'a self,
        old: &'a StorageKey,
        new: &'a StorageKey,
        change: &'a Change,
        rules: &'a WriteRules,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Rotated> {
        StoreFuture::ready(Ok(self.rotate_now(old, new, change, rules, now)))
    }

    fn delete<'a>(&'a self, key: &'a StorageKey) -> StoreFuture<'a, ()> {
        self.delete_now(key);
        StoreFuture::ready(Ok(()))
    }

    fn delete_owned<'a>(
        &'a self,
        key: &'a StorageKey,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        StoreFuture::ready(Ok(self.delete_owned_now(key, user, now)))
    }

    fn list_by_user<'a>(
        &'a self,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<SessionInfo>> {
        StoreFuture::ready(Ok(self.list_now(user, now)))
    }

    fn delete_by_user<'a>(
        &'a self,
        user: &'a str,
        except: Option<&'a StorageKey>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, u64> {
        StoreFuture::ready(Ok(self.delete_by_user_now(user, except, now)))
    }

    fn delete_expired(&self, now: OffsetDateTime, batch: usize) -> StoreFuture<'_, u64> {
        StoreFuture::ready(Ok(self.delete_expired_now(now, batch)))
    }
}
