//! [`PostgresStoreBuilder`]: names, pool settings and timeouts.

use std::sync::Arc;
use std::time::Duration;

use session_layer::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::config::{check_name, ConfigError};
use crate::error::from_sqlx;
use crate::sql::{Prepared, Statements};
use crate::store::{Inner, PostgresStore};

/// The schema when none is set.
pub const DEFAULT_SCHEMA: &str = "public";
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

/// Builds a [`PostgresStore`]; start from [`PostgresStore::builder`].
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use session_layer_postgres::PostgresStore;
///
/// let store = PostgresStore::builder()
///     .with_schema("auth")?
///     .with_table("web_sessions")?
///     .with_max_connections(20)
///     .with_query_timeout(Duration::from_secs(2))
///     .connect("postgres://app@db.internal/app")
///     .await?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct PostgresStoreBuilder {
    schema: String,
    table: String,
    pool: PgPoolOptions,
    query_timeout: Duration,
    cleanup_batch: usize,
}

impl Default for PostgresStoreBuilder {
    fn default() -> Self {
        Self {
            schema: DEFAULT_SCHEMA.to_owned(),
            table: DEFAULT_TABLE.to_owned(),
            pool: PgPoolOptions::new()
                .max_connections(DEFAULT_MAX_CONNECTIONS)
                .acquire_timeout(DEFAULT_ACQUIRE_TIMEOUT),
            query_timeout: DEFAULT_QUERY_TIMEOUT,
            cleanup_batch: DEFAULT_CLEANUP_BATCH,
        }
    }
}

impl PostgresStoreBuilder {
    /// The schema that holds the table. Default: `public`. Created by
    /// [`migrate`](PostgresStore::migrate) if missing.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] unless the name is 1 to 48 lowercase ASCII letters, digits and
    /// underscores, starting with a letter or underscore, and not starting with `pg_`.
    pub fn with_schema(mut self, name: impl Into<String>) -> Result<Self, ConfigError> {
        let name = name.into();
        check_name("schema", &name)?;
        self.schema = name;
        Ok(self)
    }

    /// The table that holds the sessions. Default: `sessions`. The migration ledger is
    /// `<table>_migrations` and the indexes `<table>_expires_idx` and `<table>_user_id_idx`,
    /// all in the same schema.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] unless the name is 1 to 48 lowercase ASCII letters, digits and
    /// underscores, starting with a letter or underscore.
    pub fn with_table(mut self, name: impl Into<String>) -> Result<Self, ConfigError> {
        let name = name.into();
        check_name("table", &name)?;
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
    /// name (idle timeout, lifetime, connect hooks). Later `with_*_connections` and
    /// [`with_acquire_timeout`](Self::with_acquire_timeout) calls change these options.
    pub fn with_pool_options(mut self, options: PgPoolOptions) -> Self {
        self.pool = options;
        self
    }

    /// The most time one store call may take, waiting for a connection included. Past it
    /// the call fails with a [`Timeout`](session_layer::StoreErrorKind::Timeout) error (or
    /// [`Unavailable`](session_layer::StoreErrorKind::Unavailable) if no connection was
    /// had), which the layer answers with a 503. Default: 5 seconds.
    ///
    /// Pools opened by [`connect`](Self::connect) also set PostgreSQL's `statement_timeout`
    /// to it, so the server abandons what the store stopped waiting for. After a timeout the
    /// outcome is still unknown, as after any lost connection: the statement may have
    /// committed just before. [`migrate`](PostgresStore::migrate) is not bound by it.
    pub fn with_query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout;
        self
    }

    /// How many expired sessions one cleanup statement deletes at most (see
    /// [`spawn_cleanup`](PostgresStore::spawn_cleanup)). Default: 1,000. Zero is taken
    /// as one.
    pub fn with_cleanup_batch_size(mut self, batch: usize) -> Self {
        self.cleanup_batch = batch.max(1);
        self
    }

    /// Opens a pool on `url` (`postgres://user:password@host:port/database?...`) and
    /// checks that one connection works. Run [`migrate`](PostgresStore::migrate) before
    /// serving.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] if the URL is malformed or PostgreSQL cannot be reached.
    pub async fn connect(self, url: &str) -> Result<PostgresStore, StoreError> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| from_sqlx("parsing the PostgreSQL URL", e))?;
        self.connect_with(options).await
    }

    /// Like [`connect`](Self::connect), with connection options built in code.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] if PostgreSQL cannot be reached.
    pub async fn connect_with(
        self,
        options: PgConnectOptions,
    ) -> Result<PostgresStore, StoreError> {
        // The server gives up on a statement when the store does: a statement the store
        // stopped waiting for must not commit much later (a rotation that lands after the
        // client was told it failed would log the user out).
        let millis = self.query_timeout.as_millis().clamp(1, i32::MAX as u128);
        let options = options.options([("statement_timeout", format!("{millis}ms"))]);
        let pool = self
            .pool
            .clone()
            .connect_with(options)
            .await
            .map_err(|e| from_sqlx("connecting to PostgreSQL", e))?;
        Ok(self.from_pool(pool))
    }

    /// A store over a pool the application already has, for example the one its own
    /// queries use. Run [`migrate`](PostgresStore::migrate) before serving.
    ///
    /// The pool settings of this builder are ignored; the names, query timeout and cleanup
    /// batch apply. Unlike [`connect`](Self::connect), this does not set the connections'
    /// `statement_timeout`: set it on the pool's connect options (as below) so that the
    /// server, too, gives up on statements the store no longer waits for.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use session_layer_postgres::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    /// use session_layer_postgres::PostgresStore;
    ///
    /// let options: PgConnectOptions = "postgres://app@localhost/app".parse()?;
    /// let pool = PgPoolOptions::new()
    ///     .max_connections(20)
    ///     .connect_with(options.options([("statement_timeout", "5s")]))
    ///     .await?;
    /// let store = PostgresStore::builder().with_schema("auth")?.from_pool(pool.clone());
    /// store.migrate().await?;
    /// // `pool` keeps serving the application's own queries.
    /// # Ok(()) }
    /// ```
    pub fn from_pool(self, pool: PgPool) -> PostgresStore {
        let statements = Statements::new(&self.schema, &self.table);
        PostgresStore {
            inner: Arc::new(Inner {
                pool,
                sql: Prepared::new(&statements),
                statements,
                schema: self.schema,
                table: self.table,
                query_timeout: self.query_timeout,
                cleanup_batch: self.cleanup_batch,
            }),
        }
    }
}
