//! [`SqliteStoreBuilder`]: the table, connections and timeouts.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use session_layer::{StoreError, StoreErrorKind};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::config::{check_table_name, ConfigError};
use crate::error::from_sqlx;
use crate::sql::{Prepared, Statements};
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

    /// Opens (creating if needed) the database file at `path` in WAL mode. Run
    /// [`migrate`](SqliteStore::migrate) before serving.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] if the file cannot be created or opened, or `path` names an
    /// in-memory database (readers and the writer would each see a different one; use
    /// [`MemoryStore`](session_layer::MemoryStore) instead).
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
        let base = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(self.busy_timeout)
            .synchronous(self.synchronous);
        // The writer comes first: it creates the file and switches it to WAL, which is
        // persistent, so readers find it in WAL mode.
        // Connections to a local file do not go stale: testing each one before use would
        // only add a round trip to the connection's worker thread per store call.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(self.query_timeout)
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal),
            )
            .await
            .map_err(|e| from_sqlx("opening the SQLite database", e))?;
        let readers = SqlitePoolOptions::new()
            .max_connections(self.readers)
            .test_before_acquire(false)
            .acquire_timeout(self.query_timeout)
            .connect_with(base.pragma("query_only", "ON"))
            .await
            .map_err(|e| from_sqlx("opening the SQLite database", e))?;
        let statements = Statements::new(&self.table);
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                sql: Prepared::new(&statements),
                statements,
                table: self.table,
                path: path.to_owned(),
                writer,
                readers,
                query_timeout: self.query_timeout,
                cleanup_batch: self.cleanup_batch,
            }),
        })
    }
}
