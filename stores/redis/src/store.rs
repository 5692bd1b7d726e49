//! [`RedisStore`]: the [`SessionStore`] contract on Redis and Redis Cluster.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::try_join_all;
use redis::{cmd, ScriptInvocation, Value};
use session_layer::id::StorageKey;
use session_layer::record::{Change, Metadata, Record};
use session_layer::store::{
    Applied, Rotated, SessionInfo, SessionStore, StoreFuture, Totals, TouchRule, WriteRules,
};
use session_layer::{StoreError, StoreErrorKind};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::builder::RedisStoreBuilder;
use crate::codec::{self, json, millis, Malformed, Stored, LUA_MAX_EXACT};
use crate::conn::{timed, Conn};
use crate::replication::ReplicationWait;
use crate::scripts::Scripts;

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

/// How long the note a rotation leaves under the old key (naming the new one) is kept, and
/// the marker a revocation leaves under an empty key on a cluster: far longer than the
/// steps of a rotation or a create that may be on their way.
const NOTE_MS: i64 = 60_000;

/// How many rotations in a row a revocation follows from one index entry.
const MAX_HOPS: usize = 64;

/// How many index entries one round trip handles when a user's sessions are listed or
/// revoked, so that no single command holds Redis for long however many sessions a user
/// has.
const PAGE: usize = 512;

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
    /// index lives in another slot than the session; and after a rotation that kept the
    /// owner, whose index the rotation could not name).
    async fn index_add(
        &self,
        user: &str,
        member: &str,
        meta: &Metadata,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut invocation = self.inner.scripts.index_add.prepare_invoke();
        invocation
            .key(self.user_index_key(user))
            .arg(member)
            .arg(millis(meta.absolute_deadline))
            .arg(now);
        self.invoke::<i64>("index update", &invocation).await?;
        Ok(())
    }

    /// Stores `record` under `key` unless the key is taken, with its index entry: in the
    /// same script on one server, in a call before it on a cluster, so no session is ever
    /// stored without being indexed.
    async fn put_new(
        &self,
        key: &StorageKey,
        record: &Record,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let now = millis(now);
        let ttl = millis(record.meta.expires()) - now;
        if ttl <= 0 {
            // Dead on arrival: nothing to keep.
            return Ok(true);
        }
        let value = codec::encode(record);
        let member = key.to_hex();
        match &record.meta.user {
            Some(user) if !self.inner.cluster => {
                let mut invocation = self.inner.scripts.create.prepare_invoke();
                invocation
                    .key(self.redis_key(key))
                    .key(self.user_index_key(user))
                    .arg(value)
                    .arg(ttl)
                    .arg(&member)
                    .arg(millis(record.meta.absolute_deadline))
                    .arg(now);
                Ok(self.invoke::<i64>("create", &invocation).await? == 1)
            }
            user => {
                if let Some(user) = user {
                    self.index_add(user, &member, &record.meta, now).await?;
                }
                let stored: Option<String> = self
                    .query(
                        "create",
                        cmd("SET")
                            .arg(self.redis_key(key))
                            .arg(value)
                            .arg("NX")
                            .arg("PX")
                            .arg(ttl),
                    )
                    .await?;
                Ok(stored.is_some())
            }
        }
    }

    /// The value under `key` (`GET`); a key of another type (a record of the previous
    /// format) reads as absent, with a warning.
    async fn get_value(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StoreError> {
        match self
            .query("load", cmd("GET").arg(self.redis_key(key)))
            .await
        {
            Err(error) if error.source_is_wrong_type() => {
                previous_format_as_absent();
                Ok(None)
            }
            other => other,
        }
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

/// `d` in whole milliseconds, as a script reads it (saturating, so any duration fits).
fn whole_millis(d: time::Duration) -> i64 {
    // The clamp makes the value fit an i64.
    #[allow(clippy::cast_possible_truncation)]
    let ms = d.whole_milliseconds().clamp(0, i128::from(LUA_MAX_EXACT)) as i64;
    ms
}

/// Unix milliseconds of `now + d`, as a script reads it (saturating).
fn later(now: OffsetDateTime, d: time::Duration) -> i64 {
    // The clamp makes the value fit an i64.
    #[allow(clippy::cast_possible_truncation)]
    let ms = (i128::from(millis(now)) + d.whole_milliseconds()).clamp(0, i128::from(LUA_MAX_EXACT))
        as i64;
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

fn previous_format_as_absent() {
    tracing::warn!(
        target: "session_layer_redis",
        "a session key in Redis holds a record of the previous format (a hash) or another \
         type; treating it as absent"
    );
}

/// Whether `error` is Redis refusing a command on a key of another type.
fn wrong_type(error: &redis::RedisError) -> bool {
    error.code() == Some("WRONGTYPE") || error.to_string().contains("WRONGTYPE")
}

/// Reads what a write script answered: the metadata afterwards, the totals it would have
/// had (too large), or `None` (gone).
fn written(answer: Value) -> Result<Result<Metadata, Applied>, StoreError> {
    match answer {
        Value::Nil => Ok(Err(Applied::Gone)),
        Value::BulkString(head) => codec::decode_meta(&head)
            .map(|(meta, _)| Ok(meta))
            .map_err(corrupt),
        Value::Array(items) => {
            let count = |v: &Value| match v {
                Value::BulkString(text) => std::str::from_utf8(text)
                    .ok()
                    .and_then(|t| t.parse::<usize>().ok()),
                _ => None,
            };
            match items.as_slice() {
                [Value::BulkString(flag), keys, bytes] if flag == b"L" => {
                    match (count(keys), count(bytes)) {
                        (Some(keys), Some(bytes)) => {
                            Ok(Err(Applied::TooLarge(Totals::new(keys, bytes))))
                        }
                        _ => Err(corrupt(Malformed("the size a write reports is damaged"))),
                    }
                }
                _ => Err(corrupt(Malformed("a write answered in an unknown form"))),
            }
        }
        _ => Err(corrupt(Malformed("a write answered in an unknown form"))),
    }
}

impl SessionStore for RedisStore {
    fn create<'a>(&'a self, key: &'a StorageKey, record: &'a Record) -> StoreFuture<'a, bool> {
        StoreFuture::boxed(self.put_new(key, record, record.meta.last_seen))
    }

    fn load<'a>(
        &'a self,
        key: &'a StorageKey,
        touch: Option<&'a TouchRule>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<Record>> {
        StoreFuture::boxed(async move {
            let value: Option<Vec<u8>> = match touch {
                None => self.get_value(key).await?,
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
            if value.as_deref() == Some(b"W") {
                previous_format_as_absent();
                return Ok(None);
            }
            match codec::decode(value.as_deref()) {
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
            let redis_key = self.redis_key(key);
            let member = key.to_hex();
            let mut invocation = self.inner.scripts.write.prepare_invoke();
            invocation.key(&redis_key);
            if let Some(Some(user)) = &change.user {
                if self.inner.cluster {
                    // Index first, so a session never has a user it is not indexed under.
                    // The absolute deadline a key holds changes only with a new end time,
                    // which indexes the session again after the write.
                    let value = self.get_value(key).await?;
                    let Some(Ok((meta, _))) = value.as_deref().map(codec::decode_meta) else {
                        return Ok(Applied::Gone);
                    };
                    if !meta.is_live(now) {
                        return Ok(Applied::Gone);
                    }
                    self.index_add(user, &member, &meta, millis(now)).await?;
                } else {
                    invocation.key(self.user_index_key(user));
                }
            }
            change_args(
                &mut invocation,
                change,
                rules,
                now,
                &member,
                self.inner.cluster,
            );
            let answer: Value = self.invoke("write", &invocation).await?;
            Ok(match written(answer)? {
                Ok(meta) => {
                    if let (Some(_), Some(user)) = (change.expires_at, &meta.user) {
                        // A new end time moves the absolute deadline, which scores the
                        // owner's index entry: the entry must last as long as the session.
                        if let Err(error) = self.index_add(user, &member, &meta, millis(now)).await
                        {
                            // Not indexed for its new life: fail closed, as a rotation does.
                            self.best_effort_delete(key).await;
                            return Err(error);
                        }
                    }
                    Applied::Done(meta)
                }
                Err(other) => other,
            })
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
        StoreFuture::boxed(self.replicated(move |store| async move {
            if store.inner.cluster {
                store
                    .rotate_across_slots(old, new, change, rules, now)
                    .await
            } else {
                store.rotate_in_one_step(old, new, change, rules, now).await
            }
        }))
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
            let now = millis(now);
            let ended = store.end_owned(*key, None, user, now).await?;
            if !ended.members.is_empty() {
                store.prune(user, now, &ended.members).await?;
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

trait WrongTypeExt {
    fn source_is_wrong_type(&self) -> bool;
}

impl WrongTypeExt for StoreError {
    fn source_is_wrong_type(&self) -> bool {
        std::error::Error::source(self)
            .and_then(|s| s.downcast_ref::<redis::RedisError>())
            .is_some_and(wrong_type)
    }
}

/// The change arguments every write and rotation script reads (see `scripts.rs`).
fn change_args(
    invocation: &mut ScriptInvocation<'_>,
    change: &Change,
    rules: &WriteRules,
    now: OffsetDateTime,
    member: &str,
    cluster: bool,
) {
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
        .arg(millis(now))
        .arg(if change.clear { "1" } else { "0" })
        .arg(seen)
        .arg(idle)
        .arg(persistent)
        .arg(user_op)
        .arg(user)
        .arg(member)
        .arg(change.remove.len())
        .arg(change.set.len());
    invocation
        .arg(rules.limits.max_keys)
        .arg(rules.limits.max_bytes)
        .arg(later(now, rules.touch.idle_for(false)))
        .arg(later(now, rules.touch.idle_for(true)))
        .arg(whole_millis(rules.touch.step))
        .arg(NOTE_MS)
        .arg(if cluster { "1" } else { "0" });
    let (idle_op, idle) = match change.idle_timeout {
        None => ("", 0),
        Some(None) => ("0", 0),
        Some(Some(idle)) => ("1", whole_millis(idle)),
    };
    let (end_op, end) = match change.expires_at {
        None => ("", 0),
        Some(None) => ("0", 0),
        Some(Some(at)) => ("1", millis(at)),
    };
    invocation
        .arg(idle_op)
        .arg(idle)
        .arg(end_op)
        .arg(end)
        .arg(whole_millis(rules.lifetime))
        .arg(whole_millis(rules.max_lifetime));
    for key in &change.remove {
        invocation.arg(key.as_str());
    }
    for (key, value) in &change.set {
        invocation.arg(key.as_str()).arg(json(value));
    }
}

/// The note a rotation leaves under the old key of a record owned by `owner`.
fn note(owner: Option<&str>, new_member: &str) -> Vec<u8> {
    match owner {
        Some(owner) => {
            let mut out = format!("N{:010}", owner.len()).into_bytes();
            out.extend_from_slice(owner.as_bytes());
            out.extend_from_slice(new_member.as_bytes());
            out
        }
        None => Vec::new(),
    }
}

/// Where a walk through a user's index is.
struct Walk {
    index: String,
    cursor: Option<u64>,
    seen: HashSet<StorageKey>,
}

impl Walk {
    fn new(index: String) -> Self {
        Self {
            index,
            cursor: Some(0),
            seen: HashSet::new(),
        }
    }
}

/// What [`RedisStore::end_owned`] ended.
struct Ended {
    /// Whether a live session ended.
    live: bool,
    /// The index members whose records (or notes) it deleted, or found dead.
    members: Vec<String>,
}

impl RedisStore {
    /// Rotation on one server: one script moves the record, leaves the note and, when the
    /// change names the new owner, indexes it. A rotation that keeps an owner indexes the
    /// new key in a second call (the script cannot name an index it has not read the owner
    /// of); until then the note leads a revocation to it.
    async fn rotate_in_one_step(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        change: &Change,
        rules: &WriteRules,
        now: OffsetDateTime,
    ) -> Result<Rotated, StoreError> {
        let member = new.to_hex();
        let mut invocation = self.inner.scripts.rotate.prepare_invoke();
        invocation.key(self.redis_key(old)).key(self.redis_key(new));
        if let Some(Some(user)) = &change.user {
            invocation.key(self.user_index_key(user));
        }
        change_args(&mut invocation, change, rules, now, &member, false);
        let answer: Value = self.invoke("rotate", &invocation).await?;
        if matches!(&answer, Value::BulkString(c) if c == b"C") {
            return Ok(Rotated::Collision);
        }
        let meta = match written(answer)? {
            Ok(meta) => meta,
            Err(Applied::TooLarge(totals)) => return Ok(Rotated::TooLarge(totals)),
            Err(_) => return Ok(Rotated::Gone),
        };
        if let (None, Some(user)) = (&change.user, &meta.user) {
            if let Err(error) = self.index_add(user, &member, &meta, millis(now)).await {
                // Not indexed: fail closed rather than leave a session revocation misses.
                self.best_effort_delete(new).await;
                return Err(error);
            }
        }
        Ok(Rotated::Done(meta))
    }

    /// Rotation on a cluster, where the old key, the new key and the index live in
    /// different slots: take the record out of the old key (leaving the note), index the
    /// new key, store it there unless taken. A revocation that reaches the new key before
    /// it is stored leaves a marker there, and the store step then finds the session gone.
    async fn rotate_across_slots(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        change: &Change,
        rules: &WriteRules,
        now: OffsetDateTime,
    ) -> Result<Rotated, StoreError> {
        let member = new.to_hex();
        let old_key = self.redis_key(old);
        let mut invocation = self.inner.scripts.move_out.prepare_invoke();
        invocation.key(&old_key);
        change_args(&mut invocation, change, rules, now, &member, true);
        let answer: Value = self.invoke("rotate", &invocation).await?;
        let (value, head, ttl, old_value, old_ttl) = match answer {
            Value::Array(items) if items.len() == 5 => {
                let mut parts = items.into_iter().map(|v| match v {
                    Value::BulkString(b) => Ok(b),
                    _ => Err(corrupt(Malformed("a rotation answered in an unknown form"))),
                });
                let mut next = || parts.next().unwrap_or_else(|| Ok(Vec::new()));
                (next()?, next()?, next()?, next()?, next()?)
            }
            other => {
                return Ok(match written(other)? {
                    Err(Applied::TooLarge(totals)) => Rotated::TooLarge(totals),
                    _ => Rotated::Gone,
                })
            }
        };
        let number = |b: &[u8]| {
            std::str::from_utf8(b)
                .ok()
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or_else(|| corrupt(Malformed("a rotation answered in an unknown form")))
        };
        let head = usize::try_from(number(&head)?).unwrap_or(usize::MAX);
        let (ttl, old_ttl) = (number(&ttl)?, number(&old_ttl)?);
        let meta = value
            .get(..head)
            .ok_or(Malformed("a rotation answered in an unknown form"))
            .and_then(codec::decode_meta)
            .map_err(corrupt)?
            .0;
        let old_owner = codec::decode_meta(&old_value).map_err(corrupt)?.0.user;
        let stored = async {
            if let Some(user) = &meta.user {
                self.index_add(user, &member, &meta, millis(now)).await?;
            }
            if ttl <= 0 {
                return Ok(Some(String::new()));
            }
            self.query::<Option<String>>(
                "rotate",
                cmd("SET")
                    .arg(self.redis_key(new))
                    .arg(&value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl),
            )
            .await
        };
        match stored.await {
            Ok(Some(_)) => Ok(Rotated::Done(meta)),
            Ok(None) => {
                // Taken: by a revocation's marker (the session is gone) or by another
                // session (a collision: put the old record back as it was).
                let there: Option<Vec<u8>> = self
                    .query("rotate", cmd("GET").arg(self.redis_key(new)))
                    .await?;
                if there.as_deref().and_then(<[u8]>::first) == Some(&codec::TOMBSTONE) {
                    return Ok(Rotated::Gone);
                }
                let mut back = self.inner.scripts.move_back.prepare_invoke();
                back.key(&old_key)
                    .arg(note(old_owner.as_deref(), &member))
                    .arg(old_value)
                    .arg(old_ttl.max(1));
                Ok(match self.invoke::<i64>("rotate", &back).await? {
                    1 => Rotated::Collision,
                    _ => Rotated::Gone,
                })
            }
            Err(error) => {
                // Whether the store landed is unknown: fail closed. The old key holds only
                // the note, and the new one is removed if it can be.
                self.best_effort_delete(new).await;
                Err(error)
            }
        }
    }

    /// Deletes the session under `key` if `user` owns it, and, where a rotation moved it,
    /// the session under each key it moved to, stopping short of `except`.
    async fn end_owned(
        &self,
        mut key: StorageKey,
        except: Option<&StorageKey>,
        user: &str,
        now: i64,
    ) -> Result<Ended, StoreError> {
        let mut ended = Ended {
            live: false,
            members: Vec::new(),
        };
        let marker = if self.inner.cluster { "1" } else { "0" };
        for _ in 0..MAX_HOPS {
            let mut invocation = self.inner.scripts.delete_owned.prepare_invoke();
            invocation
                .key(self.redis_key(&key))
                .arg(user)
                .arg(now)
                .arg(NOTE_MS)
                .arg(marker);
            let outcome: Value = self.invoke("revoke", &invocation).await?;
            match outcome {
                Value::Int(-1) => return Ok(ended),
                Value::Int(live) => {
                    ended.live |= live == 1;
                    ended.members.push(key.to_hex());
                    return Ok(ended);
                }
                Value::BulkString(to) => {
                    ended.members.push(key.to_hex());
                    let next = std::str::from_utf8(&to).ok().and_then(StorageKey::from_hex);
                    match next {
                        // The caller's own session, reached through the note its own
                        // rotation left: "everyone else" does not include it.
                        Some(next) if Some(&next) == except => return Ok(ended),
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

    /// Drops `members` from the user's index, with every entry past its absolute deadline.
    async fn prune(&self, user: &str, now: i64, members: &[String]) -> Result<(), StoreError> {
        for chunk in members.chunks(PAGE) {
            let mut invocation = self.inner.scripts.index_prune.prepare_invoke();
            invocation
                .key(self.user_index_key(user))
                .arg(now)
                .arg(chunk);
            self.invoke::<i64>("index update", &invocation).await?;
        }
        if members.is_empty() {
            let mut invocation = self.inner.scripts.index_prune.prepare_invoke();
            invocation.key(self.user_index_key(user)).arg(now);
            self.invoke::<i64>("index update", &invocation).await?;
        }
        Ok(())
    }

    /// The next page of a walk through a user's index (`ZSCAN`, which returns every entry
    /// present for the whole walk, whatever is added or removed meanwhile): new entries
    /// only, or `None` when the walk is over.
    async fn next_page(&self, walk: &mut Walk) -> Result<Option<Vec<StorageKey>>, StoreError> {
        while let Some(cursor) = walk.cursor {
            let (next, found): (u64, Vec<(String, String)>) = self
                .query(
                    "list",
                    cmd("ZSCAN")
                        .arg(&walk.index)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(PAGE),
                )
                .await?;
            walk.cursor = (next != 0).then_some(next);
            let fresh: Vec<StorageKey> = found
                .iter()
                .filter_map(|(member, _)| StorageKey::from_hex(member))
                .filter(|key| walk.seen.insert(*key))
                .collect();
            if !fresh.is_empty() {
                return Ok(Some(fresh));
            }
        }
        Ok(None)
    }

    /// The values under `keys`, in order: one `MGET` on a server, one `GET` each (in
    /// parallel) on a cluster, whose keys lie in many slots.
    async fn read_values(&self, keys: &[StorageKey]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if !self.inner.cluster {
            let names: Vec<String> = keys.iter().map(|k| self.redis_key(k)).collect();
            return self.query("list", cmd("MGET").arg(names)).await;
        }
        let reads = keys.iter().map(|key| self.get_value(key));
        try_join_all(reads).await
    }

    async fn list_now(
        &self,
        user: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        let now_ms = millis(now);
        let mut out = Vec::new();
        let mut dead = Vec::new();
        let mut walk = Walk::new(self.user_index_key(user));
        while let Some(keys) = self.next_page(&mut walk).await? {
            {
                let values = self.read_values(&keys).await?;
                for (key, value) in keys.into_iter().zip(values) {
                    match value.as_deref() {
                        // Absent: dead on one server; on a cluster it may be a create
                        // still on its way, which a revocation (leaving its marker) prunes.
                        None => {
                            if !self.inner.cluster {
                                dead.push(key.to_hex());
                            }
                        }
                        // A rotation's note: the session is listed under its new key.
                        Some([codec::NOTE, ..]) => {}
                        Some(value) => match codec::decode_meta(value) {
                            // An expired one is left to Redis, which drops its key by
                            // its TTL (and the next walk drops its entry).
                            Ok((meta, _)) if meta.user.as_deref() == Some(user) => {
                                if meta.is_live(now) {
                                    out.push(SessionInfo::new(key, meta));
                                }
                            }
                            Ok(_) => dead.push(key.to_hex()),
                            Err(malformed) => malformed_as_absent(malformed),
                        },
                    }
                }
            }
        }
        self.prune(user, now_ms, &dead).await?;
        Ok(out)
    }

    async fn delete_by_user_now(
        &self,
        user: &str,
        except: Option<&StorageKey>,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let now_ms = millis(now);
        // The index is an ordinary key: a server that evicts keys can drop it. Revocation
        // must never quietly end nothing, so the caller's own session, which must be in
        // its user's index, is checked first.
        let damaged = match except {
            Some(own) => self.missing_from_index(own, user, now).await?,
            None => false,
        };
        let mut live = 0u64;
        let mut walk = Walk::new(self.user_index_key(user));
        while let Some(keys) = self.next_page(&mut walk).await? {
            {
                let targets = keys.into_iter().filter(|k| Some(k) != except);
                let outcomes =
                    try_join_all(targets.map(|key| self.end_owned(key, except, user, now_ms)))
                        .await?;
                // Only entries whose session was deleted (or that were already empty and,
                // on a cluster, now carry a marker) leave the index.
                let ended: Vec<String> = outcomes
                    .iter()
                    .flat_map(|o| o.members.iter().cloned())
                    .collect();
                live += outcomes.iter().filter(|o| o.live).count() as u64;
                self.prune(user, now_ms, &ended).await?;
            }
        }
        if damaged {
            return Err(StoreError::new(
                StoreErrorKind::Corrupt,
                "a user's session index in Redis has lost entries (evicted under memory \
                 pressure?), so other sessions of the user may still be signed in; run Redis \
                 with `maxmemory-policy noeviction`",
            ));
        }
        Ok(live)
    }

    /// Whether `own`, a live session of `user`, is missing from the user's index: the
    /// index was damaged (evicted, or deleted by hand).
    async fn missing_from_index(
        &self,
        own: &StorageKey,
        user: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let value = self.get_value(own).await?;
        let owned = value
            .as_deref()
            .and_then(|v| codec::decode_meta(v).ok())
            .is_some_and(|(meta, _)| meta.user.as_deref() == Some(user) && meta.is_live(now));
        if !owned {
            return Ok(false);
        }
        let score: Option<f64> = self
            .query(
                "revoke",
                cmd("ZSCORE")
                    .arg(self.user_index_key(user))
                    .arg(own.to_hex()),
            )
            .await?;
        Ok(score.is_none())
    }
}
