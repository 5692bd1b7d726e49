//! [`PostgresStore`] and its [`SessionStore`] implementation.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use session_layer::id::StorageKey;
use session_layer::record::{Change, Metadata, Record};
use session_layer::store::{Applied, Rotated, SessionInfo, StoreFuture, TouchRule, WriteRules};
use session_layer::{SessionStore, StoreError};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::types::Json;
use sqlx::{Postgres, Row};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::builder::PostgresStoreBuilder;
use crate::error::{corrupt, from_sqlx, no_connection, timeout};
use crate::sql::{Prepared, Statements, DATA_FORMAT};
use session_layer::store::{spawn_cleanup, CleanupHandle};

/// A [`SessionStore`] in a PostgreSQL table. Cloning it gives another handle to the same
/// pool.
///
/// See the [crate docs](crate) for the table, the rules it keeps and an example.
#[derive(Clone)]
pub struct PostgresStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: PgPool,
    pub(crate) statements: Statements,
    pub(crate) sql: Prepared,
    pub(crate) schema: String,
    pub(crate) table: String,
    pub(crate) query_timeout: Duration,
    pub(crate) cleanup_batch: usize,
}

impl fmt::Debug for PostgresStore {
    // The pool's options hold the connection password: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.inner.schema)
            .field("table", &self.inner.table)
            .field("pool_size", &self.inner.pool.size())
            .field("query_timeout", &self.inner.query_timeout)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// A store with the default settings (table `public.sessions`, 10 connections, 5 s
    /// query timeout) on `url`. Call [`migrate`](Self::migrate) before serving.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] if the URL is malformed or PostgreSQL cannot be reached.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), session_layer::StoreError> {
    /// let store = session_layer_postgres::PostgresStore::connect("postgres://app@localhost/app").await?;
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder().connect(url).await
    }

    /// A store with the default settings (table `public.sessions`, 5 s query timeout) over
    /// a pool the application already has; see [`PostgresStoreBuilder::from_pool`] for
    /// what to set on the pool. Call [`migrate`](Self::migrate) before serving.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use session_layer_postgres::{sqlx::PgPool, PostgresStore};
    ///
    /// let pool = PgPool::connect("postgres://app@localhost/app").await?;
    /// let store = PostgresStore::from_pool(pool);
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub fn from_pool(pool: PgPool) -> Self {
        Self::builder().from_pool(pool)
    }

    /// A builder, to choose the schema, the table, the pool and the timeouts.
    pub fn builder() -> PostgresStoreBuilder {
        PostgresStoreBuilder::default()
    }

    /// Creates the schema, the table and its indexes, or upgrades them, by applying the
    /// versioned steps that `<table>_migrations` does not list yet. Each step runs in its
    /// own transaction under an advisory lock, so instances that start together apply it
    /// once. Safe to call on every start.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] if PostgreSQL cannot be reached or the role lacks the privilege to
    /// create the schema or table.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        crate::migrate::run(&self.inner.pool, &self.inner.schema, &self.inner.table).await
    }

    /// Starts a task that deletes expired sessions every `every`, in batches of the
    /// [configured size](PostgresStoreBuilder::with_cleanup_batch_size) until none is left.
    /// A failed pass is logged (`tracing`, target `session_layer_postgres`) and the next
    /// one runs as planned. Several instances may run it at once: batches skip rows another
    /// cleaner holds.
    ///
    /// Expired rows are never served in the meantime (every read checks the deadlines);
    /// cleaning only bounds the table's size. The task judges expiry by the system clock.
    ///
    /// # Panics
    ///
    /// Panics if called outside a Tokio runtime, or if `every` is zero.
    ///
    /// ```no_run
    /// # async fn run(store: session_layer_postgres::PostgresStore) {
    /// use std::time::Duration;
    ///
    /// let cleanup = store.spawn_cleanup(Duration::from_secs(300));
    /// // ... serve ...
    /// cleanup.shutdown().await;
    /// # }
    /// ```
    pub fn spawn_cleanup(&self, every: Duration) -> CleanupHandle {
        spawn_cleanup(self.clone(), every, self.inner.cleanup_batch)
    }

    /// The statements this store runs, for review or `EXPLAIN`.
    #[must_use]
    pub fn statements(&self) -> &Statements {
        &self.inner.statements
    }

    /// The connection pool, for health checks or closing it at shutdown.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// A connection, waited for no later than `deadline`.
    async fn conn(
        &self,
        deadline: Instant,
        what: &str,
    ) -> Result<PoolConnection<Postgres>, StoreError> {
        match tokio::time::timeout_at(deadline, self.inner.pool.acquire()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(from_sqlx(what, e)),
            Err(_) => Err(no_connection(what)),
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.inner.query_timeout
    }
}

/// Runs `query` unless `deadline` passes first. A query cut off here is dropped; the pool
/// tests the connection before reusing it.
async fn timed<T>(
    deadline: Instant,
    what: &str,
    query: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout_at(deadline, query).await {
        Ok(result) => result.map_err(|e| from_sqlx(what, e)),
        Err(_) => Err(timeout(what)),
    }
}

fn decode_key(bytes: &[u8]) -> Result<StorageKey, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map(StorageKey::from_bytes)
        .map_err(|_| {
            corrupt("a stored session key is not 32 bytes; was the table changed by hand?")
        })
}

/// The `postgres_record` fuzz target: `data`, split at the first NUL byte into the `key`
/// column's bytes and the `data` column's JSONB as PostgreSQL sends it in binary (a version
/// byte, then JSON text), goes through the store's key decoder and the same `Json` decoding
/// `sqlx` runs for the data column. The metadata columns are typed (`timestamptz`,
/// `boolean`, `text`) and decoded by `sqlx` itself. Not part of the API.
///
/// # Panics
///
/// If a key decodes to other bytes, or data that decodes does not read back the same
/// after being written as the store writes it.
#[doc(hidden)]
pub fn fuzz_columns(data: &[u8]) {
    let (key, jsonb) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    if let Ok(decoded) = decode_key(key) {
        assert_eq!(decoded.as_bytes(), key, "a key decoded to other bytes");
    }
    if let [1, text @ ..] = jsonb {
        if let Ok(map) = serde_json::from_slice::<Map<String, Value>>(text) {
            let again = serde_json::to_vec(&Json(&map)).expect("decoded data encodes");
            let back: Map<String, Value> =
                serde_json::from_slice(&again).expect("encoded data decodes");
            assert_eq!(back, map, "data does not survive being written again");
        }
    }
}

/// Reads the metadata columns, in the order the statements return them.
fn decode_meta(row: &PgRow) -> Result<Metadata, sqlx::Error> {
    Ok(Metadata {
        created: row.try_get("created")?,
        last_seen: row.try_get("last_seen")?,
        idle_deadline: row.try_get("idle_deadline")?,
        absolute_deadline: row.try_get("absolute_deadline")?,
        persistent: row.try_get("persistent")?,
        user: row.try_get("user_id")?,
        idle_timeout: row
            .try_get::<Option<i64>, _>("idle_timeout_ms")?
            .map(time::Duration::milliseconds),
    })
}

/// A session's own idle timeout as the `idle_timeout_ms` column holds it.
fn idle_timeout_ms(meta: &Metadata) -> Option<i64> {
    meta.idle_timeout
        .map(|d| i64::try_from(d.whole_milliseconds()).unwrap_or(i64::MAX))
}

/// Decodes a row of [`Statements::load`] or [`Statements::lock`].
fn decode_record(row: &PgRow, what: &str) -> Result<Record, StoreError> {
    let decode = || -> Result<_, sqlx::Error> {
        let format: i16 = row.try_get("format")?;
        let Json(data): Json<Map<String, Value>> = row.try_get("data")?;
        Ok((format, data, decode_meta(row)?))
    };
    let (format, data, meta) = decode().map_err(|e| from_sqlx(what, e))?;
    if format != DATA_FORMAT {
        return Err(corrupt(format!(
            "a stored session has data format {format}, which this version does not read \
             (it reads {DATA_FORMAT}); upgrade session-layer-postgres"
        )));
    }
    Ok(Record::from_parts(data, meta))
}

/// What a read-modify-write in one transaction decided.
enum Step {
    /// Write the changed record back under this key, then answer.
    Write(Record, StorageKey),
    /// Write nothing.
    Stop,
}

impl PostgresStore {
    async fn load_now(
        &self,
        key: &StorageKey,
        touch: Option<&TouchRule>,
        now: OffsetDateTime,
    ) -> Result<Option<Record>, StoreError> {
        const WHAT: &str = "loading a session";
        let deadline = self.deadline();
        let mut conn = self.conn(deadline, WHAT).await?;
        let query = sqlx::query(self.inner.sql.load.clone())
            .bind(&key.as_bytes()[..])
            .bind(now);
        let Some(row) = timed(deadline, WHAT, query.fetch_optional(&mut *conn)).await? else {
            return Ok(None);
        };
        let mut record = decode_record(&row, WHAT)?;
        let Some(due) = touch.and_then(|rule| rule.due(&record.meta, now)) else {
            return Ok(Some(record));
        };
        // A touch is due at most once a step: the second statement is the exception.
        let query = sqlx::query(self.inner.sql.touch.clone())
            .bind(&key.as_bytes()[..])
            .bind(due.seen)
            .bind(due.idle_deadline);
        let done = timed(deadline, WHAT, query.execute(&mut *conn)).await?;
        if done.rows_affected() == 0 {
            // Ended between the read and the touch.
            return Ok(None);
        }
        due.apply_to(&mut record.meta);
        Ok(Some(record))
    }

    /// Reads the record under `key` with its row locked, lets `decide` change it, and writes
    /// what it decides, all in one transaction: concurrent writes of the session wait for
    /// the lock, so each applies to what the one before left.
    async fn read_modify_write<T>(
        &self,
        what: &'static str,
        key: &StorageKey,
        decide: impl FnOnce(Option<Record>) -> (Step, T),
    ) -> Result<Result<T, Collided>, StoreError> {
        let deadline = self.deadline();
        let mut conn = self.conn(deadline, what).await?;
        let mut tx = timed(deadline, what, sqlx::Connection::begin(&mut *conn)).await?;
        let query = sqlx::query(self.inner.sql.lock.clone()).bind(&key.as_bytes()[..]);
        let row = timed(deadline, what, query.fetch_optional(&mut *tx)).await?;
        let record = row.map(|row| decode_record(&row, what)).transpose()?;
        let (step, answer) = decide(record);
        if let Step::Write(record, to) = step {
            let meta = &record.meta;
            let query = sqlx::query(self.inner.sql.write.clone())
                .bind(&key.as_bytes()[..])
                .bind(Json(record.data()))
                .bind(meta.last_seen)
                .bind(meta.idle_deadline)
                .bind(meta.persistent)
                .bind(meta.user.as_deref())
                .bind(&to.as_bytes()[..])
                .bind(meta.absolute_deadline)
                .bind(idle_timeout_ms(meta));
            match tokio::time::timeout_at(deadline, query.execute(&mut *tx)).await {
                Err(_) => return Err(timeout(what)),
                Ok(Err(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                    return Ok(Err(Collided));
                }
                Ok(result) => {
                    result.map_err(|e| from_sqlx(what, e))?;
                }
            }
        }
        timed(deadline, what, tx.commit()).await?;
        Ok(Ok(answer))
    }
}

/// The new key of a rotation was taken; the transaction rolled back.
struct Collided;

impl SessionStore for PostgresStore {
    fn create<'a>(&'a self, key: &'a StorageKey, record: &'a Record) -> StoreFuture<'a, bool> {
        StoreFuture::boxed(async move {
            const WHAT: &str = "creating a session";
            let deadline = self.deadline();
            let mut conn = self.conn(deadline, WHAT).await?;
            let meta = &record.meta;
            let query = sqlx::query(self.inner.sql.create.clone())
                .bind(&key.as_bytes()[..])
                .bind(meta.user.as_deref())
                .bind(meta.created)
                .bind(meta.last_seen)
                .bind(meta.idle_deadline)
                .bind(meta.absolute_deadline)
                .bind(meta.persistent)
                .bind(Json(record.data()))
                .bind(idle_timeout_ms(meta));
            let done = timed(deadline, WHAT, query.execute(&mut *conn)).await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn load<'a>(
        &'a self,
        key: &'a StorageKey,
        touch: Option<&'a TouchRule>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<Record>> {
        StoreFuture::boxed(self.load_now(key, touch, now))
    }

    fn apply<'a>(
        &'a self,
        key: &'a StorageKey,
        change: &'a Change,
        rules: &'a WriteRules,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Applied> {
        StoreFuture::boxed(async move {
            let written = self
                .read_modify_write("saving a session", key, |record| {
                    let Some(mut record) = record else {
                        return (Step::Stop, Applied::Gone);
                    };
                    match rules.apply(&mut record, change, now) {
                        done @ Applied::Done(_) => (Step::Write(record, *key), done),
                        other => (Step::Stop, other),
                    }
                })
                .await?;
            Ok(written.unwrap_or(Applied::Gone))
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
        StoreFuture::boxed(async move {
            let rotated = self
                .read_modify_write("rotating a session ID", old, |record| {
                    let Some(mut record) = record else {
                        return (Step::Stop, Rotated::Gone);
                    };
                    match rules.apply(&mut record, change, now) {
                        Applied::Done(meta) => (Step::Write(record, *new), Rotated::Done(meta)),
                        Applied::TooLarge(totals) => (Step::Stop, Rotated::TooLarge(totals)),
                        _ => (Step::Stop, Rotated::Gone),
                    }
                })
                .await?;
            Ok(rotated.unwrap_or(Rotated::Collision))
        })
    }

    fn delete<'a>(&'a self, key: &'a StorageKey) -> StoreFuture<'a, ()> {
        StoreFuture::boxed(async move {
            const WHAT: &str = "deleting a session";
            let deadline = self.deadline();
            let mut conn = self.conn(deadline, WHAT).await?;
            let query = sqlx::query(self.inner.sql.delete.clone()).bind(&key.as_bytes()[..]);
            timed(deadline, WHAT, query.execute(&mut *conn)).await?;
            Ok(())
        })
    }

    fn delete_owned<'a>(
        &'a self,
        key: &'a StorageKey,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        StoreFuture::boxed(async move {
            const WHAT: &str = "deleting a session of a user";
            let deadline = self.deadline();
            let mut conn = self.conn(deadline, WHAT).await?;
            let query = sqlx::query_scalar::<_, bool>(self.inner.sql.delete_owned.clone())
                .bind(&key.as_bytes()[..])
                .bind(user)
                .bind(now);
            let live = timed(deadline, WHAT, query.fetch_optional(&mut *conn)).await?;
            Ok(live.unwrap_or(false))
        })
    }

    fn list_by_user<'a>(
        &'a self,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<SessionInfo>> {
        StoreFuture::boxed(async move {
            const WHAT: &str = "listing a user's sessions";
            let deadline = self.deadline();
            let mut conn = self.conn(deadline, WHAT).await?;
            let query = sqlx::query(self.inner.sql.list_by_user.clone())
                .bind(user)
                .bind(now);
            let rows = timed(deadline, WHAT, query.fetch_all(&mut *conn)).await?;
            rows.iter()
                .map(|row| {
                    let key: Vec<u8> = row.try_get("key").map_err(|e| from_sqlx(WHAT, e))?;
                    let meta = decode_meta(row).map_err(|e| from_sqlx(WHAT, e))?;
                    Ok(SessionInfo::new(decode_key(&key)?, meta))
                })
                .collect()
        })
    }

    fn delete_by_user<'a>(
        &'a self,
        user: &'a str,
        except: Option<&'a StorageKey>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, u64> {
        StoreFuture::boxed(async move {
            const WHAT: &str = "deleting a user's sessions";
            let deadline = self.deadline();
            let mut conn = self.conn(deadline, WHAT).await?;
            // A rotation holds its row locked until it commits; the DELETE waits for it and
            // then finds the row under its new key, still the user's: it cannot escape.
            let query = sqlx::query_scalar::<_, i64>(self.inner.sql.delete_by_user.clone())
                .bind(user)
                .bind(except.map(|k| &k.as_bytes()[..]))
                .bind(now);
            let live = timed(deadline, WHAT, query.fetch_one(&mut *conn)).await?;
            Ok(u64::try_from(live).unwrap_or(0))
        })
    }

    fn delete_expired(&self, now: OffsetDateTime, batch: usize) -> StoreFuture<'_, u64> {
        StoreFuture::boxed(async move {
            const WHAT: &str = "deleting expired sessions";
            let deadline = self.deadline();
            let mut conn = self.conn(deadline, WHAT).await?;
            let query = sqlx::query(self.inner.sql.delete_expired.clone())
                .bind(now)
                .bind(i64::try_from(batch).unwrap_or(i64::MAX));
            let done = timed(deadline, WHAT, query.execute(&mut *conn)).await?;
            Ok(done.rows_affected())
        })
    }
}
