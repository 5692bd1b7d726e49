//! [`SqliteStore`] and its [`SessionStore`] implementation.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use session_layer::id::StorageKey;
use session_layer::record::{Change, Metadata, Record};
use session_layer::store::{
    Applied, Rotated, SessionInfo, StoreFuture, Totals, TouchRule, WriteRules,
};
use session_layer::{SessionStore, StoreError};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteArguments, SqlitePool, SqliteRow};
use sqlx::{Connection, Row, SqlStr, Sqlite, SqliteConnection};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::builder::SqliteStoreBuilder;
use crate::error::{corrupt, from_sqlx, no_connection, timeout};
use crate::sql::{Prepared, Statements, DATA_FORMAT};
use crate::time_text::{from_text, to_text};
use session_layer::store::{spawn_cleanup, CleanupHandle};

/// A [`SessionStore`] in a SQLite database file. Cloning it gives another handle to the
/// same connections.
///
/// See the [crate docs](crate) for the table, the rules it keeps and an example.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) statements: Statements,
    pub(crate) sql: Prepared,
    pub(crate) table: String,
    pub(crate) path: PathBuf,
    /// One connection: every write queues here rather than on SQLite's lock.
    pub(crate) writer: SqlitePool,
    /// Read-only connections; in WAL mode they never wait for the writer.
    pub(crate) readers: SqlitePool,
    pub(crate) query_timeout: Duration,
    pub(crate) cleanup_batch: usize,
    pub(crate) startup_timeout: Duration,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("table", &self.inner.table)
            .field("readers", &self.inner.readers.size())
            .field("query_timeout", &self.inner.query_timeout)
            .finish_non_exhaustive()
    }
}

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments>;

impl SqliteStore {
    /// A store with the default settings (table `sessions`, WAL mode, 4 readers, 2 s busy
    /// timeout, 5 s query timeout) in the file at `path`, created if missing. Call
    /// [`migrate`](Self::migrate) before serving.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] if the file cannot be created or opened.
    ///
    /// ```
    /// # async fn run() -> Result<(), session_layer::StoreError> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("sessions.db");
    /// let store = session_layer_sqlite::SqliteStore::open(&path).await?;
    /// store.migrate().await?;
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
    /// ```
    pub async fn open(path: impl AsRef<std::path::Path>) -> Result<Self, StoreError> {
        Self::builder().open(path).await
    }

    /// A store with the default settings (table `sessions`) over a pool the application
    /// already has; see [`SqliteStoreBuilder::from_pool`] for what it shares and what to set
    /// on the pool. Call [`migrate`](Self::migrate) before serving.
    ///
    /// ```
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
    /// use session_layer_sqlite::{sqlx::SqlitePool, SqliteStore};
    ///
    /// let pool = SqlitePool::connect(&url).await?;
    /// let store = SqliteStore::from_pool(pool);
    /// store.migrate().await?;
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
    /// ```
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self::builder().from_pool(pool)
    }

    /// A builder, to choose the table, the connections and the timeouts.
    pub fn builder() -> SqliteStoreBuilder {
        SqliteStoreBuilder::default()
    }

    /// Creates the table and its indexes, or upgrades them, by applying the versioned steps
    /// that `<table>_migrations` does not list yet, each in its own `BEGIN IMMEDIATE`
    /// transaction. Safe to call on every start, from several processes at once: while
    /// another one holds the file locked past the busy timeout, it retries until the
    /// [start-up timeout](SqliteStoreBuilder::with_startup_timeout).
    ///
    /// # Errors
    ///
    /// A [`StoreError`] if the file cannot be written or stays locked past the start-up
    /// timeout.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        const WHAT: &str = "migrating the sessions table";
        let deadline = Instant::now() + self.inner.startup_timeout;
        crate::startup::retry_while_busy(deadline, WHAT, || async {
            let mut conn = self
                .inner
                .writer
                .acquire()
                .await
                .map_err(|e| from_sqlx(WHAT, e))?;
            crate::migrate::run(&mut conn, &self.inner.table).await
        })
        .await
    }

    /// Starts a task that deletes expired sessions every `every`, in batches of the
    /// [configured size](SqliteStoreBuilder::with_cleanup_batch_size) until none is left.
    /// A failed pass is logged (`tracing`, target `session_layer_sqlite`) and the next one
    /// runs as planned.
    ///
    /// Expired rows are never served in the meantime (every read checks the deadlines);
    /// cleaning only bounds the file's size. The task judges expiry by the system clock.
    ///
    /// # Panics
    ///
    /// Panics if called outside a Tokio runtime, or if `every` is zero.
    ///
    /// ```
    /// # async fn run() -> Result<(), session_layer::StoreError> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = session_layer_sqlite::SqliteStore::open(dir.path().join("s.db")).await?;
    /// # store.migrate().await?;
    /// use std::time::Duration;
    ///
    /// let cleanup = store.spawn_cleanup(Duration::from_secs(300));
    /// // ... serve ...
    /// cleanup.shutdown().await;
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
    /// ```
    pub fn spawn_cleanup(&self, every: Duration) -> CleanupHandle {
        spawn_cleanup(self.clone(), every, self.inner.cleanup_batch)
    }

    /// The statements this store runs, for review or `EXPLAIN QUERY PLAN`.
    #[must_use]
    pub fn statements(&self) -> &Statements {
        &self.inner.statements
    }

    /// Closes every connection, waiting for running statements to finish. Store calls
    /// fail afterwards.
    pub async fn close(&self) {
        self.inner.writer.close().await;
        self.inner.readers.close().await;
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.inner.query_timeout
    }
}

/// A connection from `pool`, waited for no later than `deadline`.
async fn conn(
    pool: &SqlitePool,
    deadline: Instant,
    what: &str,
) -> Result<PoolConnection<Sqlite>, StoreError> {
    match tokio::time::timeout_at(deadline, pool.acquire()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(from_sqlx(what, e)),
        Err(_) => Err(no_connection(what)),
    }
}

/// Runs `query` unless `deadline` passes first. A transaction cut off here is rolled back
/// when the connection returns to the pool.
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

fn decode_meta(row: &SqliteRow, what: &str) -> Result<Metadata, StoreError> {
    let text = |column: &str| -> Result<OffsetDateTime, StoreError> {
        let value: String = row.try_get(column).map_err(|e| from_sqlx(what, e))?;
        from_text(&value)
    };
    Ok(Metadata {
        created: text("created")?,
        last_seen: text("last_seen")?,
        idle_deadline: text("idle_deadline")?,
        absolute_deadline: text("absolute_deadline")?,
        persistent: row.try_get("persistent").map_err(|e| from_sqlx(what, e))?,
        user: row.try_get("user_id").map_err(|e| from_sqlx(what, e))?,
        idle_timeout: row
            .try_get::<Option<i64>, _>("idle_timeout_ms")
            .map_err(|e| from_sqlx(what, e))?
            .map(time::Duration::milliseconds),
    })
}

/// A session's own idle timeout as the `idle_timeout_ms` column holds it.
fn idle_timeout_ms(meta: &Metadata) -> Option<i64> {
    meta.idle_timeout
        .map(|d| i64::try_from(d.whole_milliseconds()).unwrap_or(i64::MAX))
}

fn decode_data(text: &str) -> Result<Map<String, Value>, StoreError> {
    serde_json::from_str(text).map_err(|e| {
        StoreError::with_source(
            session_layer::StoreErrorKind::Corrupt,
            "a stored session's data is not a JSON object; was the table changed by hand?",
            e,
        )
    })
}

fn encode_data(data: &Map<String, Value>) -> Result<String, StoreError> {
    serde_json::to_string(data).map_err(|e| {
        StoreError::with_source(
            session_layer::StoreErrorKind::Other,
            "the session's data could not be written as JSON",
            e,
        )
    })
}

fn decode_record(row: &SqliteRow, what: &str) -> Result<Record, StoreError> {
    let format: i64 = row.try_get("format").map_err(|e| from_sqlx(what, e))?;
    if format != DATA_FORMAT {
        return Err(corrupt(format!(
            "a stored session has data format {format}, which this version does not read (it \
             reads {DATA_FORMAT}); upgrade session-layer-sqlite"
        )));
    }
    let data: String = row.try_get("data").map_err(|e| from_sqlx(what, e))?;
    Ok(Record::from_parts(
        decode_data(&data)?,
        decode_meta(row, what)?,
    ))
}

/// The `sqlite_record` fuzz target: `data`, split at NUL bytes into the `key`, `data`,
/// `created`, `last_seen`, `idle_deadline` and `absolute_deadline` columns as a row holds
/// them, goes through the store's own column decoders. Not part of the API.
///
/// # Panics
///
/// If a column that decodes does not encode back to what decodes the same (for times, to
/// the very same text), or on any panic of a decoder.
#[doc(hidden)]
pub fn fuzz_columns(data: &[u8]) {
    let mut pieces = data.split(|b| *b == 0);
    if let Some(key) = pieces.next() {
        if let Ok(decoded) = decode_key(key) {
            assert_eq!(decoded.as_bytes(), key, "a key decoded to other bytes");
        }
    }
    if let Some(Ok(text)) = pieces.next().map(std::str::from_utf8) {
        if let Ok(map) = decode_data(text) {
            let again = encode_data(&map).expect("decoded data encodes");
            let back = decode_data(&again).expect("encoded data decodes");
            assert_eq!(back, map, "data does not survive being written again");
        }
    }
    for piece in pieces.take(4) {
        if let Ok(text) = std::str::from_utf8(piece) {
            if let Ok(time) = crate::time_text::from_text(text) {
                let again = crate::time_text::to_text(time).expect("a decoded time encodes");
                assert_eq!(again, text, "a time has a second spelling");
            }
        }
    }
}

/// The parameters `?3`..`?10` that [`Statements::update`] and [`Statements::rotate`] share,
/// as owned values (times as text): the whole record, as the store's rules left it.
struct Bound {
    data: String,
    seen: String,
    idle: String,
    persistent: bool,
    user: Option<String>,
    absolute: String,
    idle_timeout_ms: Option<i64>,
}

impl Bound {
    fn new(record: &Record) -> Result<Self, StoreError> {
        Ok(Self {
            data: encode_data(record.data())?,
            seen: to_text(record.meta.last_seen)?,
            idle: to_text(record.meta.idle_deadline)?,
            persistent: record.meta.persistent,
            user: record.meta.user.clone(),
            absolute: to_text(record.meta.absolute_deadline)?,
            idle_timeout_ms: idle_timeout_ms(&record.meta),
        })
    }

    fn bind<'q>(&'q self, query: Query<'q>) -> Query<'q> {
        query
            .bind(&self.data)
            .bind(&self.seen)
            .bind(&self.idle)
            .bind(self.persistent)
            .bind(true)
            .bind(self.user.as_deref())
            .bind(&self.absolute)
            .bind(self.idle_timeout_ms)
    }
}

/// What a write found.
enum Written {
    Done(Metadata),
    Gone,
    TooLarge(Totals),
    Collision,
}

impl SqliteStore {
    /// Applies `change` within `rules` to the record under `key` and writes it back, under
    /// `new` for a rotation: the row is read and written inside `BEGIN IMMEDIATE`, which
    /// holds SQLite's write lock from the read on, so no other write lands in between; the
    /// change itself is the core's [`WriteRules::apply`].
    async fn write(
        &self,
        what: &str,
        key: &StorageKey,
        new: Option<&StorageKey>,
        change: &Change,
        rules: &WriteRules,
        now: OffsetDateTime,
    ) -> Result<Written, StoreError> {
        let deadline = self.deadline();
        let mut conn = conn(&self.inner.writer, deadline, what).await?;
        let now_text = to_text(now)?;
        let sql = if new.is_some() {
            &self.inner.sql.rotate
        } else {
            &self.inner.sql.update
        };
        let work = async {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            let row = sqlx::query(self.inner.sql.load.clone())
                .bind(&key.as_bytes()[..])
                .bind(&now_text)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Ok(Written::Gone);
            };
            let mut record = decode_record(&row, what).map_err(Failure::Store)?;
            match rules.apply(&mut record, change, now) {
                Applied::Done(_) => {}
                Applied::TooLarge(totals) => return Ok(Written::TooLarge(totals)),
                _ => return Ok(Written::Gone),
            }
            let bound = Bound::new(&record).map_err(Failure::Store)?;
            let written = run_write(&mut tx, sql, key, new, &now_text, &bound, what).await?;
            if matches!(written, Written::Done(_)) {
                tx.commit().await?;
            }
            Ok(written)
        };
        match tokio::time::timeout_at(deadline, work).await {
            Err(_) => Err(timeout(what)),
            Ok(Ok(written)) => Ok(written),
            Ok(Err(Failure::Sql(e))) => Err(from_sqlx(what, e)),
            Ok(Err(Failure::Store(e))) => Err(e),
        }
    }

    async fn load_now(
        &self,
        key: &StorageKey,
        touch: Option<&TouchRule>,
        now: OffsetDateTime,
    ) -> Result<Option<Record>, StoreError> {
        const WHAT: &str = "loading a session";
        let now_text = to_text(now)?;
        let deadline = self.deadline();
        let row = {
            let mut conn = conn(&self.inner.readers, deadline, WHAT).await?;
            let query = sqlx::query(self.inner.sql.load.clone())
                .bind(&key.as_bytes()[..])
                .bind(&now_text);
            timed(deadline, WHAT, query.fetch_optional(&mut *conn)).await?
        };
        let Some(mut record) = row.map(|row| decode_record(&row, WHAT)).transpose()? else {
            return Ok(None);
        };
        let Some(due) = touch.and_then(|rule| rule.due(&record.meta, now)) else {
            return Ok(Some(record));
        };
        // A touch is due at most once a step: the write is the exception.
        let (seen, idle_deadline) = (to_text(due.seen)?, to_text(due.idle_deadline)?);
        let mut conn = conn(&self.inner.writer, deadline, WHAT).await?;
        let query = sqlx::query(self.inner.sql.touch.clone())
            .bind(&key.as_bytes()[..])
            .bind(&seen)
            .bind(&idle_deadline);
        let done = timed(deadline, WHAT, query.execute(&mut *conn)).await?;
        if done.rows_affected() == 0 {
            // Ended between the read and the touch.
            return Ok(None);
        }
        due.apply_to(&mut record.meta);
        Ok(Some(record))
    }
}

/// A database error, still to be classified, or a store error that already is.
enum Failure {
    Sql(sqlx::Error),
    Store(StoreError),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Self::Sql(e)
    }
}

async fn run_write(
    conn: &mut SqliteConnection,
    sql: &SqlStr,
    key: &StorageKey,
    new: Option<&StorageKey>,
    now: &str,
    bound: &Bound,
    what: &str,
) -> Result<Written, Failure> {
    let mut query = bound.bind(sqlx::query(sql.clone()).bind(&key.as_bytes()[..]).bind(now));
    if let Some(new) = new {
        query = query.bind(&new.as_bytes()[..]);
    }
    match query.fetch_optional(conn).await {
        Ok(Some(row)) => Ok(Written::Done(
            decode_meta(&row, what).map_err(Failure::Store)?,
        )),
        Ok(None) => Ok(Written::Gone),
        Err(sqlx::Error::Database(e)) if new.is_some() && e.is_unique_violation() => {
            Ok(Written::Collision)
        }
        Err(e) => Err(Failure::Sql(e)),
    }
}

impl SessionStore for SqliteStore {
    fn create<'a>(&'a self, key: &'a StorageKey, record: &'a Record) -> StoreFuture<'a, bool> {
        StoreFuture::boxed(async move {
            const WHAT: &str = "creating a session";
            let meta = &record.meta;
            let data = encode_data(record.data())?;
            let times = [
                to_text(meta.created)?,
                to_text(meta.last_seen)?,
                to_text(meta.idle_deadline)?,
                to_text(meta.absolute_deadline)?,
            ];
            let deadline = self.deadline();
            let mut conn = conn(&self.inner.writer, deadline, WHAT).await?;
            let query = sqlx::query(self.inner.sql.create.clone())
                .bind(&key.as_bytes()[..])
                .bind(meta.user.as_deref())
                .bind(&times[0])
                .bind(&times[1])
                .bind(&times[2])
                .bind(&times[3])
                .bind(meta.persistent)
                .bind(data)
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
            Ok(
                match self
                    .write("saving a session", key, None, change, rules, now)
                    .await?
                {
                    Written::Done(meta) => Applied::Done(meta),
                    Written::TooLarge(totals) => Applied::TooLarge(totals),
                    Written::Gone | Written::Collision => Applied::Gone,
                },
            )
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
            Ok(
                match self
                    .write("rotating a session ID", old, Some(new), change, rules, now)
                    .await?
                {
                    Written::Done(meta) => Rotated::Done(meta),
                    Written::TooLarge(totals) => Rotated::TooLarge(totals),
                    Written::Gone => Rotated::Gone,
                    Written::Collision => Rotated::Collision,
                },
            )
        })
    }

    fn delete<'a>(&'a self, key: &'a StorageKey) -> StoreFuture<'a, ()> {
        StoreFuture::boxed(async move {
            const WHAT: &str = "deleting a session";
            let deadline = self.deadline();
            let mut conn = conn(&self.inner.writer, deadline, WHAT).await?;
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
            let now = to_text(now)?;
            let deadline = self.deadline();
            let mut conn = conn(&self.inner.writer, deadline, WHAT).await?;
            let query = sqlx::query_scalar::<_, bool>(self.inner.sql.delete_owned.clone())
                .bind(&key.as_bytes()[..])
                .bind(user)
                .bind(&now);
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
            let now = to_text(now)?;
            let deadline = self.deadline();
            let mut conn = conn(&self.inner.readers, deadline, WHAT).await?;
            let query = sqlx::query(self.inner.sql.list_by_user.clone())
                .bind(user)
                .bind(&now);
            let rows = timed(deadline, WHAT, query.fetch_all(&mut *conn)).await?;
            rows.iter()
                .map(|row| {
                    let key: Vec<u8> = row.try_get("key").map_err(|e| from_sqlx(WHAT, e))?;
                    Ok(SessionInfo::new(decode_key(&key)?, decode_meta(row, WHAT)?))
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
            let now = to_text(now)?;
            let deadline = self.deadline();
            // Every write, rotations included, runs on the one writer connection: a rotation
            // is wholly before or wholly after this statement.
            let mut conn = conn(&self.inner.writer, deadline, WHAT).await?;
            let query = sqlx::query_scalar::<_, bool>(self.inner.sql.delete_by_user.clone())
                .bind(user)
                .bind(except.map(|k| &k.as_bytes()[..]))
                .bind(&now);
            let deleted = timed(deadline, WHAT, query.fetch_all(&mut *conn)).await?;
            Ok(deleted.into_iter().filter(|live| *live).count() as u64)
        })
    }

    fn delete_expired(&self, now: OffsetDateTime, batch: usize) -> StoreFuture<'_, u64> {
        StoreFuture::boxed(async move {
            const WHAT: &str = "deleting expired sessions";
            let now = to_text(now)?;
            let deadline = self.deadline();
            let mut conn = conn(&self.inner.writer, deadline, WHAT).await?;
            let query = sqlx::query(self.inner.sql.delete_expired.clone())
                .bind(&now)
                .bind(i64::try_from(batch).unwrap_or(i64::MAX));
            let done = timed(deadline, WHAT, query.execute(&mut *conn)).await?;
            Ok(done.rows_affected())
        })
    }
}
