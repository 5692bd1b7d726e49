//! [`PostgresStore`] and its [`SessionStore`] implementation.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use session_layer::id::StorageKey;
use session_layer::record::{Change, Metadata, Record};
use session_layer::store::{Rotated, SessionInfo};
use session_layer::{SessionStore, StoreError};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::types::Json;
use sqlx::{Postgres, Row};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::builder::PostgresStoreBuilder;
use crate::error::{corrupt, from_sqlx, no_connection, timeout};
use crate::sql::{Statements, DATA_FORMAT};
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
    })
}

/// Binds a change to the parameters `$3`..`$11` that [`Statements::update`] and
/// [`Statements::rotate`] share.
fn bind_change<'q>(
    query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    change: &'q Change,
    set: Map<String, Value>,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    let (user_changes, user) = match &change.user {
        Some(user) => (true, user.as_deref()),
        None => (false, None),
    };
    query
        .bind(change.touches_data())
        .bind(change.clear)
        .bind(&change.remove[..])
        .bind(Json(set))
        .bind(change.touch.map(|t| t.seen))
        .bind(change.touch.map(|t| t.idle_deadline))
        .bind(change.persistent)
        .bind(user_changes)
        .bind(user)
}

fn set_object(change: &Change) -> Map<String, Value> {
    change.set.iter().cloned().collect()
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create(&self, key: &StorageKey, record: &Record) -> Result<bool, StoreError> {
        const WHAT: &str = "creating a session";
        let deadline = self.deadline();
        let mut conn = self.conn(deadline, WHAT).await?;
        let meta = &record.meta;
        let query = sqlx::query(&self.inner.statements.create)
            .bind(&key.as_bytes()[..])
            .bind(meta.user.as_deref())
            .bind(meta.created)
            .bind(meta.last_seen)
            .bind(meta.idle_deadline)
            .bind(meta.absolute_deadline)
            .bind(meta.persistent)
            .bind(Json(record.data()));
        let done = timed(deadline, WHAT, query.execute(&mut *conn)).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn load(
        &self,
        key: &StorageKey,
        now: OffsetDateTime,
    ) -> Result<Option<Record>, StoreError> {
        const WHAT: &str = "loading a session";
        let deadline = self.deadline();
        let mut conn = self.conn(deadline, WHAT).await?;
        let query = sqlx::query(&self.inner.statements.load)
            .bind(&key.as_bytes()[..])
            .bind(now);
        let Some(row) = timed(deadline, WHAT, query.fetch_optional(&mut *conn)).await? else {
            return Ok(None);
        };
        let decode = || -> Result<_, sqlx::Error> {
            let format: i16 = row.try_get("format")?;
            let Json(data): Json<Map<String, Value>> = row.try_get("data")?;
            Ok((format, data, decode_meta(&row)?))
        };
        let (format, data, meta) = decode().map_err(|e| from_sqlx(WHAT, e))?;
        if format != DATA_FORMAT {
            return Err(corrupt(format!(
                "a stored session has data format {format}, which this version does not read \
                 (it reads {DATA_FORMAT}); upgrade session-layer-postgres"
            )));
        }
        Ok(Some(Record::from_parts(data, meta)))
    }

    async fn update(
        &self,
        key: &StorageKey,
        change: &Change,
        now: OffsetDateTime,
    ) -> Result<Option<Metadata>, StoreError> {
        const WHAT: &str = "saving a session";
        let deadline = self.deadline();
        let mut conn = self.conn(deadline, WHAT).await?;
        let query = sqlx::query(&self.inner.statements.update)
            .bind(&key.as_bytes()[..])
            .bind(now);
        let query = bind_change(query, change, set_object(change));
        let row = timed(deadline, WHAT, query.fetch_optional(&mut *conn)).await?;
        row.map(|row| decode_meta(&row))
            .transpose()
            .map_err(|e| from_sqlx(WHAT, e))
    }

    async fn touch(
        &self,
        key: &StorageKey,
        seen: OffsetDateTime,
        idle_deadline: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        const WHAT: &str = "extending a session";
        let deadline = self.deadline();
        let mut conn = self.conn(deadline, WHAT).await?;
        let query = sqlx::query(&self.inner.statements.touch)
            .bind(&key.as_bytes()[..])
            .bind(seen)
            .bind(idle_deadline);
        let done = timed(deadline, WHAT, query.execute(&mut *conn)).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn rotate(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        change: &Change,
        now: OffsetDateTime,
    ) -> Result<Rotated, StoreError> {
        const WHAT: &str = "rotating a session ID";
        let deadline = self.deadline();
        let mut conn = self.conn(deadline, WHAT).await?;
        let query = sqlx::query(&self.inner.statements.rotate)
            .bind(&old.as_bytes()[..])
            .bind(now);
        let query = bind_change(query, change, set_object(change)).bind(&new.as_bytes()[..]);
        let row = match tokio::time::timeout_at(deadline, query.fetch_optional(&mut *conn)).await {
            Err(_) => return Err(timeout(WHAT)),
            Ok(Err(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                return Ok(Rotated::Collision)
            }
            Ok(result) => result.map_err(|e| from_sqlx(WHAT, e))?,
        };
        match row {
            Some(row) => Ok(Rotated::Done(
                decode_meta(&row).map_err(|e| from_sqlx(WHAT, e))?,
            )),
            None => Ok(Rotated::Gone),
        }
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StoreError> {
        const WHAT: &str = "deleting a session";
        let deadline = self.deadline();
        let mut conn = self.conn(deadline, WHAT).await?;
        let query = sqlx::query(&self.inner.statements.delete).bind(&key.as_bytes()[..]);
        timed(deadline, WHAT, query.execute(&mut *conn)).await?;
        Ok(())
    }

    async fn list_by_user(
        &self,
        user: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        const WHAT: &str = "listing a user's sessions";
        let deadline = self.deadline();
        let mut conn = self.conn(deadline, WHAT).await?;
        let query = sqlx::query(&self.inner.statements.list_by_user)
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
    }

    async fn delete_by_user(
        &self,
        user: &str,
        except: Option<&StorageKey>,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        const WHAT: &str = "deleting a user's sessions";
        let deadline = self.deadline();
        let mut conn = self.conn(deadline, WHAT).await?;
        let query = sqlx::query_scalar::<_, i64>(&self.inner.statements.delete_by_user)
            .bind(user)
            .bind(except.map(|k| &k.as_bytes()[..]))
            .bind(now);
        let live = timed(deadline, WHAT, query.fetch_one(&mut *conn)).await?;
        Ok(u64::try_from(live).unwrap_or(0))
    }

    async fn delete_expired(&self, now: OffsetDateTime, batch: usize) -> Result<u64, StoreError> {
        const WHAT: &str = "deleting expired sessions";
        let deadline = self.deadline();
        let mut conn = self.conn(deadline, WHAT).await?;
        let query = sqlx::query(&self.inner.statements.delete_expired)
            .bind(now)
            .bind(i64::try_from(batch).unwrap_or(i64::MAX));
        let done = timed(deadline, WHAT, query.execute(&mut *conn)).await?;
        Ok(done.rows_affected())
    }
}
