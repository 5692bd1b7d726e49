//! [`SqliteStoreBuilder`]: the table, connections and timeouts.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use session_layer::{StoreError, StoreErrorKind};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::time::Instant;

use crate::config::{check_table_name, ConfigError};
use crate::error::from_sqlx;
use crate::sql::{Prepared, Statements};
use crate::startup::{create_private, retry_while_busy};
use crate::store::{Inner, SqliteStore};

/// The table when none is set.
pub const DEFAULT_TABLE: &str = "sessions";
/// The query timeout when none is set.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite's busy timeout when none is set.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(2);
/// How many connections read sessions when nothing else is set.
pub const DEFAULT_READERS: u32 = 4;
/// How many expired sessions one cleanup statement deletes when nothing else is set.
pub const DEFAULT_CLEANUP_BATCH: usize = 1_000;
/// How long opening and migrating may keep retrying when nothing else is set.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds a [`SqliteStore`]; start from [`SqliteStore::builder`].
///
/// ```
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("app.db");
/// use std::time::Duration;
/// use session_layer_sqlite::SqliteStore;
///
/// let store = SqliteStore::builder()
///     .with_table("web_sessions")?
///     .with_readers(8)
///     .with_busy_timeout(Duration::from_secs(1))
///     .open(&path)
///     .await?;
/// store.migrate().await?;
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct SqliteStoreBuilder {
    table: String,
    readers: u32,
    busy_timeout: Duration,
    query_timeout: Duration,
    synchronous: SqliteSynchronous,
    cleanup_batch: usize,
    startup_timeout: Duration,
}

impl Default for SqliteStoreBuilder {
    fn default() -> Self {
        Self {
            table: DEFAULT_TABLE.to_owned(),
            readers: DEFAULT_READERS,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
            synchronous: SqliteSynchronous::Normal,
            cleanup_batch: DEFAULT_CLEANUP_BATCH,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
        }
    }
}

impl SqliteStoreBuilder {
    /// The table that holds the sessions. Default: `sessions`. The migration ledger is
    /// `<table>_migrations` and the indexes `<table>_expires_idx` and `<table>_user_id_idx`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] unless the name is 1 to 48 lowercase ASCII letters, digits and
    /// underscores, starting with a letter or underscore, and not starting with `sqlite_`.
    pub fn with_table(mut self, name: impl Into<String>) -> Result<Self, ConfigError> {
        let name = name.into();
        check_table_name(&name)?;
        self.table = name;
        Ok(self)
    }

    /// How many connections read sessions at once. Default: 4. Zero is taken as one.
    ///
    /// Writes always go through one connection of their own: SQLite admits one writer at a
    /// time anyway, and queueing writers in the process is fairer and faster than letting
    /// them poll SQLite's lock. In WAL mode, readers never wait for the writer.
    pub fn with_readers(mut self, readers: u32) -> Self {
        self.readers = readers.max(1);
        self
    }

    /// How long SQLite waits for a lock another process (or a migration) holds before the
    /// statement fails with `SQLITE_BUSY`, reported as a
    /// [`Timeout`](session_layer::StoreErrorKind::Timeout) error that changed nothing.
    /// Default: 2 seconds.
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The most time one store call may take, waiting for a connection included. Past it
    /// the call fails with a [`Timeout`](session_layer::StoreErrorKind::Timeout) error (or
    /// [`Unavailable`](session_layer::StoreErrorKind::Unavailable) if no connection was
    /// had), which the layer answers with a 503. Default: 5 seconds.
    pub fn with_query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout;
        self
    }

    /// SQLite's `synchronous` setting. Default: `Normal`, which in WAL mode never corrupts
    /// the database but may lose the last commits on a power cut (those users sign in
    /// again); `Full` syncs every commit to disk, at a cost per write.
    pub fn with_synchronous(mut self, synchronous: SqliteSynchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// How many expired sessions one cleanup statement deletes at most (see
    /// [`spawn_cleanup`](SqliteStore::spawn_cleanup)). Default: 1,000. Zero is taken as one.
    pub fn with_cleanup_batch_size(mut self, batch: usize) -> Self {
        self.cleanup_batch = batch.max(1);
        self
    }

    /// How long [`open`](Self::open) and [`migrate`](SqliteStore::migrate) each keep
    /// retrying while another process holds the file locked, as happens when several
    /// instances start on one new file at once. Default: 10 seconds. Past it they fail with
    /// a [`Timeout`](session_layer::StoreErrorKind::Timeout) error.
    pub fn with_startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Opens (creating if needed) the database file at `path` in WAL mode. Run
    /// [`migrate`](SqliteStore::migrate) before serving.
    ///
    /// A file this creates is readable and writable by its owner only (mode 0600 on Unix),
    /// and so are the `-wal` and `-shm` files SQLite keeps beside it: sessions are
    /// credentials. An existing file keeps its permissions.
    ///
    /// Several processes may open one file at the same moment: while another one holds it
    /// locked (switching it to WAL mode, migrating), opening retries until the
    /// [start-up timeout](Self::with_startup_timeout).
    ///
    /// # Errors
    ///
    /// A [`StoreError`] if the file cannot be created or opened, stays locked past the
    /// start-up timeout, or `path` names an in-memory database (readers and the writer would
    /// each see a different one; use [`MemoryStore`](session_layer::MemoryStore) instead).
    pub async fn open(self, path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref();
        let text = path.to_string_lossy();
        if text.is_empty() || text == ":memory:" || text.contains("mode=memory") {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                "the SQLite store needs a database file, not an in-memory database; use \
                 MemoryStore for sessions that live in memory",
            ));
        }
        const WHAT: &str = "opening the SQLite database";
        let deadline = Instant::now() + self.startup_timeout;
        create_private(path)?;
        let base = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(self.busy_timeout)
            .synchronous(self.synchronous);
        // The writer comes first: it switches the file to WAL, which is persistent, so
        // readers find it in WAL mode.
        // Connections to a local file do not go stale: testing each one before use would
        // only add a round trip to the connection's worker thread per store call.
        let writer = retry_while_busy(deadline, WHAT, || {
            let options = base
                .clone()
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal);
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .acquire_timeout(self.query_timeout);
            async move {
                pool.connect_with(options)
                    .await
                    .map_err(|e| from_sqlx(WHAT, e))
            }
        })
        .await?;
        let readers = retry_while_busy(deadline, WHAT, || {
            let options = base.clone().pragma("query_only", "ON");
            let pool = SqlitePoolOptions::new()
                .max_connections(self.readers)
                .test_before_acquire(false)
                .acquire_timeout(self.query_timeout);
            async move {
                pool.connect_with(options)
                    .await
                    .map_err(|e| from_sqlx(WHAT, e))
            }
        })
        .await?;
        Ok(self.assemble(writer, readers, path.to_owned()))
    }

    /// A store over a pool the application already has, for example one it also keeps
    /// its own tables in. Run [`migrate`](SqliteStore::migrate) before serving.
    ///
    /// Reads and writes share this pool, and SQLite's own write lock orders the writes:
    /// each write waits for it up to the pool's busy timeout. The store does not change the
    /// pool's settings: open it in WAL mode (`journal_mode(SqliteJournalMode::Wal)`) so that
    /// reads never wait for a write. Of this builder's settings the table, the query
    /// timeout, the cleanup batch and the start-up timeout apply; the readers, busy timeout
    /// and `synchronous` settings are the pool's own. [`SqliteStore::close`] closes the pool.
    ///
    /// ```
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("app.db");
    /// use session_layer_sqlite::sqlx::{self, sqlite::*};
    /// use session_layer_sqlite::SqliteStore;
    ///
    /// let options = SqliteConnectOptions::new()
    ///     .filename(&path)
    ///     .create_if_missing(true)
    ///     .journal_mode(SqliteJournalMode::Wal);
    /// let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
    /// let store = SqliteStore::builder().with_table("web_sessions")?.from_pool(pool.clone());
    /// store.migrate().await?;
    /// // The application's own queries go through the same pool.
    /// let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_schema WHERE type = 'table'")
    ///     .fetch_one(&pool)
    ///     .await?;
    /// assert_eq!(tables, 2, "the sessions table and its migration ledger");
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
    /// ```
    pub fn from_pool(self, pool: SqlitePool) -> SqliteStore {
        let path = pool.connect_options().get_filename().to_owned();
        self.assemble(pool.clone(), pool, path)
    }

    fn assemble(
        self,
        writer: SqlitePool,
        readers: SqlitePool,
        path: std::path::PathBuf,
    ) -> SqliteStore {
        let statements = Statements::new(&self.table);
        SqliteStore {
            inner: Arc::new(Inner {
                sql: Prepared::new(&statements),
                statements,
                table: self.table,
                path,
                writer,
                readers,
                query_timeout: self.query_timeout,
                cleanup_batch: self.cleanup_batch,
                startup_timeout: self.startup_timeout,
            }),
        }
    }
}
