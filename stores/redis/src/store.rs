//! [`RedisStore`]: the [`SessionStore`] contract on Redis and Redis Cluster.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::try_join_all;
use rand::TryRngCore as _;
use redis::{cmd, ScriptInvocation};
use session_layer::id::StorageKey;
use session_layer::record::{Change, Record};
use session_layer::store::{
    Applied, Rotated, SessionInfo, SessionStore, StoreFuture, Totals, TouchRule, WriteRules,
};
use session_layer::{StoreError, StoreErrorKind};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::builder::RedisStoreBuilder;
use crate::codec::{self, data_field, json, millis, Malformed, Stored};
use crate::conn::{timed, Conn};
use crate::replication::ReplicationWait;
use crate::scripts::Scripts;

/// The metadata fields, in the order [`codec::meta_from`] reads them.
const META_FIELDS: [&str; 6] = ["m:created", "m:seen", "m:idle", "m:abs", "m:pers", "m:user"];

/// A session store on Redis or Redis Cluster. See the [crate docs](crate) for the layout,
/// expiry, atomicity and cluster behaviour.
///
/// Cloning is cheap: clones share one multiplexed connection.
///
/// ```no_run
/// use session_layer::SessionLayer;
/// use session_layer_redis::RedisStore;
///
/// # async fn run() -> Result<(), session_layer::StoreError> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// let layer = SessionLayer::new(store);
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) conn: Conn,
    pub(crate) scripts: Scripts,
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) cluster: bool,
    pub(crate) wait: Option<ReplicationWait>,
    /// With a replication wait: the same store on a connection of its own, for the writes
    /// that wait for replicas.
    pub(crate) waiting: Option<RedisStore>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("cluster", &self.inner.cluster)
            .field("prefix", &self.inner.prefix)
            .field("command_timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to one Redis server with the default settings (key prefix `session:`,
    /// 500 ms per command). The URL is `redis://[user:password@]host[:port][/db]`, or
    /// `rediss://` with the crate's `tls` feature.
    ///
    /// # Errors
    ///
    /// As for [`RedisStoreBuilder::connect`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).connect().await
    }

    /// A builder for a store on one Redis server (or a proxy that speaks for one).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::single(url.into())
    }

    /// A builder for a store on a Redis Cluster, given one or more of its nodes' URLs; the
    /// client discovers the rest.
    ///
    /// ```no_run
    /// use session_layer_redis::RedisStore;
    ///
    /// # async fn run() -> Result<(), session_layer::StoreError> {
    /// let store = RedisStore::cluster_builder(["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"])
    ///     .connect()
    ///     .await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub fn cluster_builder<I, S>(nodes: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisStoreBuilder::cluster(nodes.into_iter().map(Into::into).collect())
    }

    /// The prefix of every key this store writes.
    #[must_use]
    pub fn key_prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The Redis key a session is stored under: the prefix and the storage key in hex.
    ///
    /// ```
    /// use session_layer::id::SessionId;
    /// # async fn run(store: session_layer_redis::RedisStore) {
    /// let key = SessionId::generate().storage_key();
    /// assert_eq!(store.redis_key(&key), format!("session:{}", key.to_hex()));
    /// # }
    /// ```
    #[must_use]
    pub fn redis_key(&self, key: &StorageKey) -> String {
        format!("{}{}", self.inner.prefix, key.to_hex())
    }

    /// The Redis key of a user's index: the prefix, `user:`, and the SHA-256 of the name in
    /// hex (so any name makes a short, safe key).
    #[must_use]
    pub fn user_index_key(&self, user: &str) -> String {
        let digest = Sha256::digest(user.as_bytes());
        let mut key = String::with_capacity(self.inner.prefix.len() + 5 + 64);
        key.push_str(&self.inner.prefix);
        key.push_str("user:");
        for b in digest {
            key.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            key.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        key
    }

    fn conn(&self) -> Conn {
        self.inner.conn.clone()
    }

    async fn invoke<T: redis::FromRedisValue>(
        &self,
        what: &'static str,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let call = retry_refused(|| {
            let mut conn = self.conn();
            async move { invocation.invoke_async(&mut conn).await }
        });
        timed(self.inner.timeout, what, call).await
    }

    async fn query<T: redis::FromRedisValue>(
        &self,
        what: &'static str,
        command: &redis::Cmd,
    ) -> Result<T, StoreError> {
        let call = retry_refused(|| {
            let mut conn = self.conn();
            async move { command.query_async(&mut conn).await }
        });
        timed(self.inner.timeout, what, call).await
    }

    /// Adds a session to its user's index in a call of its own (cluster mode, where the
    /// index lives in another slot than the session).
    async fn index_add(
        &self,
        index: &str,
        member: &str,
        absolute: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        let mut invocation = self.inner.scripts.index_add.prepare_invoke();
        invocation.key(index).arg(member).arg(absolute).arg(now);
        self.invoke::<i64>("index update", &invocation).await?;
        Ok(())
    }

    /// Stores `record` under `key` unless the key is taken. In standalone mode the user's
    /// index is updated in the same script; in cluster mode, in a call before it, so no
    /// session is ever stored without being indexed.
    async fn put_new(
        &self,
        key: &StorageKey,
        record: &Record,
        now: OffsetDateTime,
        token: &str,
    ) -> Result<bool, StoreError> {
        let ttl = millis(record.meta.expires()) - millis(now);
        if ttl <= 0 {
            // Dead on arrival: nothing to keep.
            return Ok(true);
        }
        let member = key.to_hex();
        let absolute = millis(record.meta.absolute_deadline).to_string();
        let now = millis(now).to_string();
        let index = record.meta.user.as_deref().map(|u| self.user_index_key(u));
        let mut invocation = self.inner.scripts.create.prepare_invoke();
        invocation.key(self.redis_key(key));
        if let Some(index) = &index {
            if self.inner.cluster {
                self.index_add(index, &member, &absolute, &now).await?;
            } else {
                invocation.key(index);
            }
        }
        invocation
            .arg(token)
            .arg(ttl)
            .arg(&now)
            .arg(&member)
            .arg(&absolute)
            .arg(codec::record_fields(record, token));
        Ok(self.invoke::<i64>("create", &invocation).await? == 1)
    }

    /// Deletes `key` without waiting for the answer to matter: used to clean up after a
    /// rotation that failed half-way, when an error is already on its way to the caller.
    async fn best_effort_delete(&self, key: &StorageKey) {
        let _ = self
            .query::<i64>("cleanup", cmd("DEL").arg(self.redis_key(key)))
            .await;
    }
}

/// Runs `call`, and once more if the first attempt could not even connect. A refused
/// connection means the command was never sent, so repeating it is safe; and after an
/// outage the first request would otherwise fail on the reconnection attempt made while
/// Redis was still down.
async fn retry_refused<T, F, Fut>(mut call: F) -> redis::RedisResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    match call().await {
        Err(error) if error.is_connection_refusal() => call().await,
        other => other,
    }
}

/// A random token naming one call, so a script can recognise its own earlier effect.
fn token() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random number generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The largest integer a Lua number (a double) holds exactly.
const LUA_MAX_EXACT: i128 = (1 << 53) - 1;

/// `d` in whole milliseconds, as a script reads it (saturating, so any duration fits).
fn whole_millis(d: time::Duration) -> i64 {
    // The clamp makes the value fit an i64.
    #[allow(clippy::cast_possible_truncation)]
    let ms = d.whole_milliseconds().clamp(0, LUA_MAX_EXACT) as i64;
    ms
}

/// Unix milliseconds of `now + d`, as a script reads it (saturating).
fn later(now: OffsetDateTime, d: time::Duration) -> i64 {
    // The clamp makes the value fit an i64.
    #[allow(clippy::cast_possible_truncation)]
    let ms = (i128::from(millis(now)) + d.whole_milliseconds()).clamp(0, LUA_MAX_EXACT) as i64;
    ms
}

fn corrupt(Malformed(why): Malformed) -> StoreError {
    StoreError::new(
        StoreErrorKind::Corrupt,
        format!("a session record in Redis could not be read: {why}"),
    )
}

fn malformed_as_absent(Malformed(why): Malformed) {
    tracing::warn!(
        target: "session_layer_redis",
        reason = why,
        "a session record in Redis could not be read; treating it as absent"
    );
}

/// How long the note a rotation leaves under the old key (naming the new one) is kept: far
/// longer than any revocation that read the user's index before the rotation can take.
const FORWARD_NOTE_MS: i64 = 60_000;

/// How many rotations in a row a revocation follows from one index entry.
const MAX_HOPS: usize = 64;

impl SessionStore for RedisStore {
    fn create<'a>(&'a self, key: &'a StorageKey, record: &'a Record) -> StoreFuture<'a, bool> {
        StoreFuture::boxed(async move {
            self.put_new(key, record, record.meta.last_seen, &token())
                .await
        })
    }

    fn load<'a>(
        &'a self,
        key: &'a StorageKey,
        touch: Option<&'a TouchRule>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<Record>> {
        StoreFuture::boxed(async move {
            let fields: Vec<(Vec<u8>, Vec<u8>)> = match touch {
                None => {
                    self.query("load", cmd("HGETALL").arg(self.redis_key(key)))
                        .await?
                }
                Some(rule) => {
                    let mut invocation = self.inner.scripts.load_touching.prepare_invoke();
                    invocation
                        .key(self.redis_key(key))
                        .arg(millis(now))
                        .arg(later(now, rule.idle_for(false)))
                        .arg(later(now, rule.idle_for(true)))
                        .arg(whole_millis(rule.step));
                    self.invoke("load", &invocation).await?
                }
            };
            match codec::decode(fields) {
                Ok(Stored::Record(record)) if record.is_live(now) => Ok(Some(record)),
                Ok(_) => Ok(None),
                Err(malformed) => {
                    malformed_as_absent(malformed);
                    Ok(None)
                }
            }
        })
    }

    fn apply<'a>(
        &'a self,
        key: &'a StorageKey,
        change: &'a Change,
        rules: &'a WriteRules,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Applied> {
        StoreFuture::boxed(async move {
            let Some(fields) = self.apply_script(key, change, now, rules).await? else {
                return Ok(Applied::Gone);
            };
            if let [Some(flag), Some(keys), Some(bytes)] = fields.as_slice() {
                if flag == b"L" {
                    let count = |text: &[u8]| {
                        std::str::from_utf8(text)
                            .ok()
                            .and_then(|t| t.parse::<usize>().ok())
                            .ok_or_else(|| {
                                corrupt(Malformed("the size a write reports is damaged"))
                            })
                    };
                    return Ok(Applied::TooLarge(Totals::new(count(keys)?, count(bytes)?)));
                }
            }
            codec::meta_from(&fields)
                .map(Applied::Done)
                .map_err(corrupt)
        })
    }

    fn rotate<'a>(
        &'a self,
        old: &'a StorageKey,
        new: &'a StorageKey,
        change: &'a Change,
        rules: &'a WriteRules,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Rotated> {
        StoreFuture::boxed(
            self.replicated(move |store| store.move_record(old, new, change, rules, now)),
        )
    }

    fn delete<'a>(&'a self, key: &'a StorageKey) -> StoreFuture<'a, ()> {
        StoreFuture::boxed(self.replicated(move |store| async move {
            store
                .query::<i64>("delete", cmd("DEL").arg(store.redis_key(key)))
                .await?;
            Ok(())
        }))
    }

    fn delete_owned<'a>(
        &'a self,
        key: &'a StorageKey,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        StoreFuture::boxed(self.replicated(move |store| async move {
            let ended = store
                .end_owned(*key, user, &millis(now).to_string())
                .await?;
            if !ended.members.is_empty() {
                store
                    .query::<i64>(
                        "revoke",
                        cmd("ZREM")
                            .arg(store.user_index_key(user))
                            .arg(&ended.members),
                    )
                    .await?;
            }
            Ok(ended.live)
        }))
    }

    fn list_by_user<'a>(
        &'a self,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<SessionInfo>> {
        StoreFuture::boxed(self.list_now(user, now))
    }

    fn delete_by_user<'a>(
        &'a self,
        user: &'a str,
        except: Option<&'a StorageKey>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, u64> {
        StoreFuture::boxed(
            self.replicated(move |store| store.delete_by_user_now(user, except, now)),
        )
    }

    fn delete_expired(&self, _: OffsetDateTime, _: usize) -> StoreFuture<'_, u64> {
        // Every key carries its TTL: Redis expires them by itself.
        StoreFuture::ready(Ok(0))
    }
}

/// What [`RedisStore::end_owned`] ended.
struct Ended {
    /// Whether a live session ended.
    live: bool,
    /// The index members whose records it deleted.
    members: Vec<String>,
}

impl RedisStore {
    /// Deletes the session under `key` if `user` owns it, and, where a rotation moved it,
    /// the session under each key it moved to.
    async fn end_owned(
        &self,
        mut key: StorageKey,
        user: &str,
        now: &str,
    ) -> Result<Ended, StoreError> {
        let mut ended = Ended {
            live: false,
            members: Vec::new(),
        };
        for _ in 0..MAX_HOPS {
            let mut invocation = self.inner.scripts.delete_owned.prepare_invoke();
            invocation.key(self.redis_key(&key)).arg(user).arg(now);
            let outcome: redis::Value = self.invoke("revoke", &invocation).await?;
            match outcome {
                redis::Value::Int(-1) => return Ok(ended),
                redis::Value::Int(live) => {
                    ended.live |= live == 1;
                    ended.members.push(key.to_hex());
                    return Ok(ended);
                }
                redis::Value::BulkString(to) => {
                    ended.members.push(key.to_hex());
                    let next = std::str::from_utf8(&to).ok().and_then(StorageKey::from_hex);
                    match next {
                        Some(next) => key = next,
                        None => return Err(corrupt(Malformed("a rotation's note is damaged"))),
                    }
                }
                _ => {
                    return Err(corrupt(Malformed(
                        "a revocation answered in an unknown form",
                    )))
                }
            }
        }
        Ok(ended)
    }

    async fn list_now(
        &self,
        user: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        let members = self.index_members(user, now).await?;
        let reads = members.iter().map(|key| {
            let mut command = cmd("HMGET");
            command.arg(self.redis_key(key)).arg("v").arg("x");
            command.arg(&META_FIELDS[..]);
            async move {
                let command = &command;
                let fields: Vec<Option<Vec<u8>>> = retry_refused(|| {
                    let mut conn = self.conn();
                    async move { command.query_async(&mut conn).await }
                })
                .await?;
                Ok::<_, redis::RedisError>((*key, fields))
            }
        });
        let read = timed(self.inner.timeout, "list", try_join_all(reads)).await?;
        let mut out = Vec::new();
        for (key, fields) in read {
            let [version, moving, meta @ ..] = fields.as_slice() else {
                continue;
            };
            if version.as_deref() != Some(codec::FORMAT) || moving.is_some() {
                continue;
            }
            match codec::meta_from(meta) {
                Ok(meta) if meta.is_live(now) && meta.user.as_deref() == Some(user) => {
                    out.push(SessionInfo::new(key, meta));
                }
                Ok(_) => {}
                Err(malformed) => malformed_as_absent(malformed),
            }
        }
        Ok(out)
    }

    async fn delete_by_user_now(
        &self,
        user: &str,
        except: Option<&StorageKey>,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let members = self.index_members(user, now).await?;
        let now_text = millis(now).to_string();
        let targets = members.into_iter().filter(|k| Some(k) != except);
        let deletions = targets.map(|key| self.end_owned(key, user, &now_text));
        let outcomes = try_join_all(deletions).await?;
        // Only entries whose session was deleted leave the index: an entry whose session
        // is not there (yet) may belong to a create or rotation in flight, which indexes
        // first and stores second, and whose last step finds the old key gone.
        let deleted: Vec<&String> = outcomes.iter().flat_map(|o| &o.members).collect();
        if !deleted.is_empty() {
            self.query::<i64>(
                "revoke",
                cmd("ZREM").arg(self.user_index_key(user)).arg(deleted),
            )
            .await?;
        }
        Ok(outcomes.iter().filter(|o| o.live).count() as u64)
    }
}

impl RedisStore {
    /// The rotation: mark the old record, create the new one, finish (see the crate docs),
    /// refusing, with `limits`, a change that would pass them.
    async fn move_record(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        change: &Change,
        rules: &WriteRules,
        now: OffsetDateTime,
    ) -> Result<Rotated, StoreError> {
        let token = token();
        let old_key = self.redis_key(old);

        // 1. Mark the old record as moving and take its fields. From here on it is dead to
        //    every other operation; updates that landed before are in what we took.
        let mut mark = self.inner.scripts.mark.prepare_invoke();
        mark.key(&old_key).arg(millis(now)).arg(&token);
        let fields: Option<Vec<(Vec<u8>, Vec<u8>)>> = self.invoke("rotate", &mark).await?;
        let Some(fields) = fields else {
            return Ok(Rotated::Gone);
        };
        let mut unmark = self.inner.scripts.unmark.prepare_invoke();
        unmark.key(&old_key).arg(&token);
        let fields: Vec<_> = fields.into_iter().filter(|(f, _)| f != b"x").collect();
        let mut record = match codec::decode(fields) {
            Ok(Stored::Record(record)) => record,
            Ok(_) => return Ok(Rotated::Gone),
            Err(malformed) => {
                // Unreadable: leave it as it was, and treat it as the load would.
                self.invoke::<i64>("rotate", &unmark).await?;
                malformed_as_absent(malformed);
                return Ok(Rotated::Gone);
            }
        };
        let owner = record.meta.user.clone().unwrap_or_default();
        match rules.apply(&mut record, change, now) {
            Applied::Done(_) => {}
            Applied::TooLarge(after) => {
                // Too large: leave it as it was.
                self.invoke::<i64>("rotate", &unmark).await?;
                return Ok(Rotated::TooLarge(after));
            }
            _ => return Ok(Rotated::Gone),
        }

        // 2. Store it under the new key (indexing it first), never overwriting.
        let created = match self.put_new(new, &record, now, &token).await {
            Ok(created) => created,
            Err(error) => {
                // Whether the create landed is unknown: fail closed. The old key stays
                // marked (dead) and the new one is removed if it can be.
                self.best_effort_delete(new).await;
                return Err(error);
            }
        };
        if !created {
            self.invoke::<i64>("rotate", &unmark).await?;
            return Ok(Rotated::Collision);
        }

        // 3. Delete the old record, if this rotation still owns it. If a sign-out or
        //    revocation deleted it meanwhile, that wins: the new record goes too.
        let mut finish = self.inner.scripts.finish.prepare_invoke();
        finish
            .key(&old_key)
            .arg(&token)
            .arg(new.to_hex())
            .arg(&owner)
            .arg(FORWARD_NOTE_MS);
        match self.invoke::<i64>("rotate", &finish).await {
            Ok(1) => Ok(Rotated::Done(record.meta)),
            Ok(_) => {
                self.query::<i64>("rotate", cmd("DEL").arg(self.redis_key(new)))
                    .await?;
                Ok(Rotated::Gone)
            }
            Err(error) => {
                self.best_effort_delete(new).await;
                Err(error)
            }
        }
    }

    /// Runs the write script for `change` within `rules`: the metadata fields afterwards
    /// (or the totals it would have had, if too large), or `None` if the record is gone.
    async fn apply_script(
        &self,
        key: &StorageKey,
        change: &Change,
        now: OffsetDateTime,
        rules: &WriteRules,
    ) -> Result<Option<Vec<Option<Vec<u8>>>>, StoreError> {
        let what = "write";
        let redis_key = self.redis_key(key);
        let member = key.to_hex();
        let now_text = millis(now).to_string();
        let mut invocation = self.inner.scripts.write.prepare_invoke();
        invocation.key(&redis_key);
        if let Some(Some(user)) = &change.user {
            let index = self.user_index_key(user);
            if self.inner.cluster {
                // Index first, so a session never has a user it is not indexed under. The
                // absolute deadline a key holds never changes, so reading it first is safe.
                let absolute: Option<String> = self
                    .query(what, cmd("HGET").arg(&redis_key).arg("m:abs"))
                    .await?;
                let Some(absolute) = absolute else {
                    return Ok(None);
                };
                self.index_add(&index, &member, &absolute, &now_text)
                    .await?;
            } else {
                invocation.key(index);
            }
        }
        let (seen, idle) = match change.touch {
            Some(t) => (
                millis(t.seen).to_string(),
                millis(t.idle_deadline).to_string(),
            ),
            None => (String::new(), String::new()),
        };
        let persistent = match change.persistent {
            Some(true) => "1",
            Some(false) => "0",
            None => "",
        };
        let (user_op, user) = match &change.user {
            None => ("", ""),
            Some(None) => ("0", ""),
            Some(Some(user)) => ("1", user.as_str()),
        };
        invocation
            .arg(&now_text)
            .arg(if change.clear { "1" } else { "0" })
            .arg(seen)
            .arg(idle)
            .arg(persistent)
            .arg(user_op)
            .arg(user)
            .arg(&member)
            .arg(change.remove.len())
            .arg(change.set.len());
        invocation
            .arg(rules.limits.max_keys)
            .arg(rules.limits.max_bytes)
            .arg(later(now, rules.touch.idle_for(false)))
            .arg(later(now, rules.touch.idle_for(true)))
            .arg(whole_millis(rules.touch.step));
        for key in &change.remove {
            invocation.arg(data_field(key));
        }
        for (key, value) in &change.set {
            invocation.arg(data_field(key)).arg(json(value));
        }
        self.invoke(what, &invocation).await
    }

    /// The members of a user's index, after dropping those past their absolute deadline.
    async fn index_members(
        &self,
        user: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<StorageKey>, StoreError> {
        let mut invocation = self.inner.scripts.index_read.prepare_invoke();
        invocation.key(self.user_index_key(user)).arg(millis(now));
        let members: Vec<String> = self.invoke("list", &invocation).await?;
        Ok(members
            .iter()
            .filter_map(|m| StorageKey::from_hex(m))
            .collect())
    }
}
