//! [`MySqlStoreBuilder`]: the table, pool settings and timeouts.

use std::sync::Arc;
use std::time::Duration;

use session_layer::StoreError;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, Executor as _};

use crate::config::{check_table_name, ConfigError};
use crate::error::from_sqlx;
use crate::sql::{Prepared, Statements};
use crate::store::{Inner, MySqlStore};

/// The table when none is set.
pub const DEFAULT_TABLE: &str = "sessions";
/// The query timeout when none is set.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a store call waits for a pooled connection when nothing else is set.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// The pool's size when nothing else is set.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// How many expired sessions one cleanup statement deletes when nothing else is set.
pub const DEFAULT_CLEANUP_BATCH: usize = 1_000;

/// Builds a [`MySqlStore`]; start from [`MySqlStore::builder`].
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use session_layer_mysql::MySqlStore;
///
/// let store = MySqlStore::builder()
///     .with_table("web_sessions")?
///     .with_max_connections(20)
///     .with_query_timeout(Duration::from_secs(2))
///     .connect("mysql://app:secret@db.internal/app")
///     .await?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct MySqlStoreBuilder {
    table: String,
    pool: MySqlPoolOptions,
    query_timeout: Duration,
    cleanup_batch: usize,
}

impl Default for MySqlStoreBuilder {
    fn default() -> Self {
        Self {
            table: DEFAULT_TABLE.to_owned(),
            pool: MySqlPoolOptions::new()
                .max_connections(DEFAULT_MAX_CONNECTIONS)
                .acquire_timeout(DEFAULT_ACQUIRE_TIMEOUT),
            query_timeout: DEFAULT_QUERY_TIMEOUT,
            cleanup_batch: DEFAULT_CLEANUP_BATCH,
        }
    }
}

impl MySqlStoreBuilder {
    /// The table that holds the sessions, in the database the URL names. Default:
    /// `sessions`. The migration ledger is `<table>_migrations` and the indexes
    /// `<table>_expires_idx` and `<table>_user_id_idx`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] unless the name is 1 to 48 lowercase ASCII letters, digits and
    /// underscores, starting with a letter or underscore.
    pub fn with_table(mut self, name: impl Into<String>) -> Result<Self, ConfigError> {
        let name = name.into();
        check_table_name(&name)?;
        self.table = name;
        Ok(self)
    }

    /// The most connections the pool opens. Default: 10.
    pub fn with_max_connections(mut self, max: u32) -> Self {
        self.pool = self.pool.max_connections(max);
        self
    }

    /// How many connections the pool keeps open even when idle. Default: 0.
    pub fn with_min_connections(mut self, min: u32) -> Self {
        self.pool = self.pool.min_connections(min);
        self
    }

    /// How long the pool tries to hand out a connection (opening one if it may) before a
    /// store call fails as [`Unavailable`](session_layer::StoreErrorKind::Unavailable).
    /// Default: 3 seconds. A store call never waits longer than the
    /// [query timeout](Self::with_query_timeout) in total, whatever this says.
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.pool = self.pool.acquire_timeout(timeout);
        self
    }

    /// Replaces every pool setting with `options`, for settings this builder does not
    /// name (idle timeout, lifetime). Later `with_*_connections` and
    /// [`with_acquire_timeout`](Self::with_acquire_timeout) calls change these options.
    /// [`connect`](Self::connect) adds its own `after_connect` hook (see
    /// [`with_query_timeout`](Self::with_query_timeout)), replacing one set here.
    pub fn with_pool_options(mut self, options: MySqlPoolOptions) -> Self {
        self.pool = options;
        self
    }

    /// The most time one store call may take, waiting for a connection included. Past it
    /// the call fails with a [`Timeout`](session_layer::StoreErrorKind::Timeout) error (or
    /// [`Unavailable`](session_layer::StoreErrorKind::Unavailable) if no connection was
    /// had), which the layer answers with a 503. Default: 5 seconds.
    ///
    /// Pools opened by [`connect`](Self::connect) also set the server's
    /// `innodb_lock_wait_timeout` (whole seconds, at least one) and, on MariaDB,
    /// `max_statement_time` to it, so the server abandons what the store stopped waiting
    /// for. After a timeout the outcome is still unknown, as after any lost connection: the
    /// statement may have committed just before. [`migrate`](MySqlStore::migrate) is not
    /// bound by it.
    pub fn with_query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout;
        self
    }

    /// How many expired sessions one cleanup statement deletes at most (see
    /// [`spawn_cleanup`](MySqlStore::spawn_cleanup)). Default: 1,000. Zero is taken as one.
    pub fn with_cleanup_batch_size(mut self, batch: usize) -> Self {
        self.cleanup_batch = batch.max(1);
        self
    }

    /// Opens a pool on `url` (`mysql://user:password@host:port/database?...`, which also
    /// reaches MariaDB) and checks that one connection works. Run
    /// [`migrate`](MySqlStore::migrate) before serving.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] if the URL is malformed or the server cannot be reached.
    pub async fn connect(self, url: &str) -> Result<MySqlStore, StoreError> {
        let options: MySqlConnectOptions = url
            .parse()
            .map_err(|e| from_sqlx("parsing the MySQL URL", e))?;
        self.connect_with(options).await
    }

    /// Like [`connect`](Self::connect), with connection options built in code.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] if the server cannot be reached.
    pub async fn connect_with(
        self,
        options: MySqlConnectOptions,
    ) -> Result<MySqlStore, StoreError> {
        // The server gives up on a statement when the store does: a statement the store
        // stopped waiting for must not commit much later (a rotation that lands after the
        // client was told it failed would log the user out). `/*M! */` runs on MariaDB only;
        // MySQL's own `max_execution_time` bounds reads alone, so there the lock wait is the
        // bound that matters.
        let settings: Arc<str> = Arc::from(session_settings(self.query_timeout));
        let pool = self
            .pool
            .clone()
            .after_connect(move |conn, _| {
                let settings = settings.clone();
                Box::pin(async move {
                    conn.execute(AssertSqlSafe(settings)).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| from_sqlx("connecting to MySQL", e))?;
        Ok(self.from_pool(pool))
    }

    /// A store over a pool the application already has, for example the one its own
    /// queries use. Run [`migrate`](MySqlStore::migrate) before serving.
    ///
    /// The pool settings of this builder are ignored; the table, query timeout and cleanup
    /// batch apply. Unlike [`connect`](Self::connect), this does not change the
    /// connections' `innodb_lock_wait_timeout` or `max_statement_time`: set them in the
    /// pool's `after_connect` hook (as below) so that the server, too, gives up on
    /// statements the store no longer waits for.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use session_layer_mysql::sqlx::{mysql::MySqlPoolOptions, Executor as _};
    /// use session_layer_mysql::MySqlStore;
    ///
    /// let pool = MySqlPoolOptions::new()
    ///     .max_connections(20)
    ///     .after_connect(|conn, _| {
    ///         Box::pin(async move {
    ///             conn.execute("SET SESSION innodb_lock_wait_timeout = 5").await?;
    ///             Ok(())
    ///         })
    ///     })
    ///     .connect("mysql://app:secret@localhost/app")
    ///     .await?;
    /// let store = MySqlStore::builder().with_table("web_sessions")?.from_pool(pool.clone());
    /// store.migrate().await?;
    /// // `pool` keeps serving the application's own queries.
    /// # Ok(()) }
    /// ```
    pub fn from_pool(self, pool: MySqlPool) -> MySqlStore {
        let statements = Statements::new(&self.table);
        MySqlStore {
            inner: Arc::new(Inner {
                pool,
                sql: Prepared::new(&statements),
                statements,
                table: self.table,
                query_timeout: self.query_timeout,
                cleanup_batch: self.cleanup_batch,
            }),
        }
    }
}

/// The `SET SESSION` statement that bounds a connection's statements by `timeout`.
fn session_settings(timeout: Duration) -> String {
    let lock_wait = timeout.as_secs_f64().ceil().clamp(1.0, 1_073_741_824.0);
    let statement = timeout.as_secs_f64().max(0.001);
    format!(
        "SET SESSION innodb_lock_wait_timeout = {lock_wait:.0} \
         /*M!, max_statement_time = {statement:.3} */"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_settings_round_the_lock_wait_up_to_whole_seconds() {
        assert_eq!(
            session_settings(Duration::from_millis(500)),
            "SET SESSION innodb_lock_wait_timeout = 1 /*M!, max_statement_time = 0.500 */"
        );
        assert_eq!(
            session_settings(Duration::from_millis(2_100)),
            "SET SESSION innodb_lock_wait_timeout = 3 /*M!, max_statement_time = 2.100 */"
        );
    }
}
