//! [`MySqlStore`] and its [`SessionStore`] implementation.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use session_layer::id::StorageKey;
use session_layer::record::{Change, Record};
use session_layer::store::{
    spawn_cleanup, Applied, CleanupHandle, Rotated, SessionInfo, StoreFuture, TouchRule, WriteRules,
};
use session_layer::{SessionStore, StoreError};
use sqlx::mysql::{MySqlArguments, MySqlPool, MySqlQueryResult};
use sqlx::pool::PoolConnection;
use sqlx::{Executor as _, MySql, Row};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::builder::MySqlStoreBuilder;
use crate::columns::{
    decode_key, decode_meta, decode_record, encode_data, idle_timeout_ms, user_bytes, utc,
};
use crate::error::{from_sqlx, is_deadlock, is_duplicate_key, no_connection, timeout};
use crate::sql::{Prepared, Statements};

/// A [`SessionStore`] in a MySQL or MariaDB table. Cloning it gives another handle to the
/// same pool.
///
/// See the [crate docs](crate) for the table, the rules it keeps and an example.
#[derive(Clone)]
pub struct MySqlStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: MySqlPool,
    pub(crate) statements: Statements,
    pub(crate) sql: Prepared,
    pub(crate) table: String,
    pub(crate) query_timeout: Duration,
    pub(crate) cleanup_batch: usize,
}

impl fmt::Debug for MySqlStore {
    // The pool's options hold the connection password: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlStore")
            .field("table", &self.inner.table)
            .field("pool_size", &self.inner.pool.size())
            .field("query_timeout", &self.inner.query_timeout)
            .finish_non_exhaustive()
    }
}

impl MySqlStore {
    /// A store with the default settings (table `sessions`, 10 connections, 5 s query
    /// timeout) on `url`. Call [`migrate`](Self::migrate) before serving.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] if the URL is malformed or the server cannot be reached.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), session_layer::StoreError> {
    /// let store = session_layer_mysql::MySqlStore::connect("mysql://app:secret@localhost/app").await?;
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder().connect(url).await
    }

    /// A store with the default settings (table `sessions`, 5 s query timeout) over a pool
    /// the application already has; see [`MySqlStoreBuilder::from_pool`] for what to set on
    /// the pool. Call [`migrate`](Self::migrate) before serving.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use session_layer_mysql::{sqlx::MySqlPool, MySqlStore};
    ///
    /// let pool = MySqlPool::connect("mysql://app:secret@localhost/app").await?;
    /// let store = MySqlStore::from_pool(pool);
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub fn from_pool(pool: MySqlPool) -> Self {
        Self::builder().from_pool(pool)
    }

    /// A builder, to choose the table, the pool and the timeouts.
    pub fn builder() -> MySqlStoreBuilder {
        MySqlStoreBuilder::default()
    }

    /// Creates the table and its indexes, or upgrades them, by applying the versioned steps
    /// that `<table>_migrations` does not list yet, under a named lock (`GET_LOCK`), so
    /// instances that start together apply each step once. Safe to call on every start.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] if the server cannot be reached, the user lacks the privilege to
    /// create the table, or another instance holds the migration lock for over two minutes.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        crate::migrate::run(&self.inner.pool, &self.inner.table).await
    }

    /// Starts a task that deletes expired sessions every `every`, in batches of the
    /// [configured size](MySqlStoreBuilder::with_cleanup_batch_size) until none is left.
    /// A failed pass is logged (`tracing`, target `session_layer_mysql`) and the next one
    /// runs as planned. Several instances may run it at once.
    ///
    /// Expired rows are never served in the meantime (every read checks the deadlines);
    /// cleaning only bounds the table's size. The task judges expiry by the system clock.
    ///
    /// # Panics
    ///
    /// Panics if called outside a Tokio runtime, or if `every` is zero.
    ///
    /// ```no_run
    /// # async fn run(store: session_layer_mysql::MySqlStore) {
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
    pub fn pool(&self) -> &MySqlPool {
        &self.inner.pool
    }

    /// A connection, waited for no later than `deadline`.
    async fn conn(
        &self,
        deadline: Instant,
        what: &str,
    ) -> Result<PoolConnection<MySql>, StoreError> {
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

/// What a read-modify-write in one transaction decided.
enum Step {
    /// Write the changed record back under this key, then answer.
    Write(Record, StorageKey),
    /// Write nothing.
    Stop,
}

/// How a read-modify-write ended, when it did not fail.
enum Outcome<T> {
    Answer(T),
    /// The new key of a rotation was taken; the transaction rolled back.
    Collided,
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

impl MySqlStore {
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
            .bind(utc(now));
        let Some(row) = timed(deadline, WHAT, query.fetch_optional(&mut *conn)).await? else {
            return Ok(None);
        };
        let mut record = decode_record(&row, WHAT)?;
        let Some(due) = touch.and_then(|rule| rule.due(&record.meta, now)) else {
            return Ok(Some(record));
        };
        // A touch is due at most once a step: the second statement is the exception.
        let query = sqlx::query(self.inner.sql.touch.clone())
            .bind(utc(due.seen))
            .bind(utc(due.idle_deadline))
            .bind(&key.as_bytes()[..])
            .bind(utc(due.seen));
        let done = timed(deadline, WHAT, query.execute(&mut *conn)).await?;
        if done.rows_affected() == 0 {
            // Ended between the read and the touch.
            return Ok(None);
        }
        due.apply_to(&mut record.meta);
        Ok(Some(record))
    }

    /// Reads the record under `key` with its row locked (`SELECT ... FOR UPDATE`), lets
    /// `decide` change it, and writes what it decides, all in one transaction: concurrent
    /// writes of the session wait for the lock, so each applies to what the one before
    /// left. A transaction InnoDB picks as a deadlock victim rolled back whole and runs
    /// again, until the query timeout.
    async fn read_modify_write<T>(
        &self,
        what: &'static str,
        key: &StorageKey,
        mut decide: impl FnMut(Option<Record>) -> (Step, T),
    ) -> Result<Outcome<T>, StoreError> {
        let deadline = self.deadline();
        let mut conn = self.conn(deadline, what).await?;
        loop {
            let attempt = self.transaction(&mut conn, what, key, &mut decide);
            match tokio::time::timeout_at(deadline, attempt).await {
                Err(_) => return Err(timeout(what)),
                Ok(Ok(outcome)) => return Ok(outcome),
                Ok(Err(Failure::Sql(e))) if is_deadlock(&e) && Instant::now() < deadline => {}
                Ok(Err(Failure::Sql(e))) => return Err(from_sqlx(what, e)),
                Ok(Err(Failure::Store(e))) => return Err(e),
            }
        }
    }

    async fn transaction<T>(
        &self,
        conn: &mut PoolConnection<MySql>,
        what: &str,
        key: &StorageKey,
        decide: &mut impl FnMut(Option<Record>) -> (Step, T),
    ) -> Result<Outcome<T>, Failure> {
        let mut tx = sqlx::Connection::begin(&mut **conn).await?;
        let row = sqlx::query(self.inner.sql.lock.clone())
            .bind(&key.as_bytes()[..])
            .fetch_optional(&mut *tx)
            .await?;
        let record = row
            .map(|row| decode_record(&row, what))
            .transpose()
            .map_err(Failure::Store)?;
        let (step, answer) = decide(record);
        if let Step::Write(record, to) = step {
            let meta = &record.meta;
            let data = encode_data(record.data()).map_err(Failure::Store)?;
            let user = user_bytes(meta.user.as_deref()).map_err(Failure::Store)?;
            let written = sqlx::query(self.inner.sql.write.clone())
                .bind(&to.as_bytes()[..])
                .bind(data)
                .bind(utc(meta.last_seen))
                .bind(utc(meta.idle_deadline))
                .bind(meta.persistent)
                .bind(user)
                .bind(utc(meta.absolute_deadline))
                .bind(idle_timeout_ms(meta))
                .bind(&key.as_bytes()[..])
                .execute(&mut *tx)
                .await;
            match written {
                Err(e) if is_duplicate_key(&e) => return Ok(Outcome::Collided),
                other => {
                    other?;
                }
            }
        }
        tx.commit().await?;
        Ok(Outcome::Answer(answer))
    }

    /// Runs the statement `make` builds on `conn`, again while InnoDB picks it as a
    /// deadlock victim, until `deadline`.
    async fn execute_retrying<'q>(
        &self,
        conn: &mut PoolConnection<MySql>,
        deadline: Instant,
        what: &str,
        make: impl Fn() -> Query<'q>,
    ) -> Result<MySqlQueryResult, StoreError> {
        loop {
            match tokio::time::timeout_at(deadline, make().execute(&mut **conn)).await {
                Err(_) => return Err(timeout(what)),
                Ok(Err(e)) if is_deadlock(&e) && Instant::now() < deadline => {}
                Ok(result) => return result.map_err(|e| from_sqlx(what, e)),
            }
        }
    }
}

type Query<'q> = sqlx::query::Query<'q, MySql, MySqlArguments>;

/// Applies to the next statement only (outside a transaction, the next statement is one).
const REPEATABLE_READ: &str = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ";

impl SessionStore for MySqlStore {
    fn create<'a>(&'a self, key: &'a StorageKey, record: &'a Record) -> StoreFuture<'a, bool> {
        StoreFuture::boxed(async move {
            const WHAT: &str = "creating a session";
            let meta = &record.meta;
            let data = encode_data(record.data())?;
            let user = user_bytes(meta.user.as_deref())?;
            let deadline = self.deadline();
            let mut conn = self.conn(deadline, WHAT).await?;
            let query = sqlx::query(self.inner.sql.create.clone())
                .bind(&key.as_bytes()[..])
                .bind(user)
                .bind(utc(meta.created))
                .bind(utc(meta.last_seen))
                .bind(utc(meta.idle_deadline))
                .bind(utc(meta.absolute_deadline))
                .bind(meta.persistent)
                .bind(data)
                .bind(idle_timeout_ms(meta));
            match tokio::time::timeout_at(deadline, query.execute(&mut *conn)).await {
                Err(_) => Err(timeout(WHAT)),
                Ok(Ok(_)) => Ok(true),
                // Never an overwrite: a taken key is a collision the layer answers with a new ID.
                Ok(Err(e)) if is_duplicate_key(&e) => Ok(false),
                Ok(Err(e)) => Err(from_sqlx(WHAT, e)),
            }
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
            Ok(match written {
                Outcome::Answer(applied) => applied,
                Outcome::Collided => Applied::Gone,
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
            Ok(match rotated {
                Outcome::Answer(rotated) => rotated,
                Outcome::Collided => Rotated::Collision,
            })
        })
    }

    fn delete<'a>(&'a self, key: &'a StorageKey) -> StoreFuture<'a, ()> {
        StoreFuture::boxed(async move {
            const WHAT: &str = "deleting a session";
            let deadline = self.deadline();
            let mut conn = self.conn(deadline, WHAT).await?;
            self.execute_retrying(&mut conn, deadline, WHAT, || {
                sqlx::query(self.inner.sql.delete.clone()).bind(&key.as_bytes()[..])
            })
            .await?;
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
            let done = self
                .execute_retrying(&mut conn, deadline, WHAT, || {
                    sqlx::query(self.inner.sql.delete_owned.clone())
                        .bind(&key.as_bytes()[..])
                        .bind(user.as_bytes())
                        .bind(utc(now))
                })
                .await?;
            Ok(done.rows_affected() > 0)
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
                .bind(user.as_bytes())
                .bind(utc(now));
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
            let deadline = self.deadline();
            let mut conn = self.conn(deadline, WHAT).await?;
            let except = except.map(|k| &k.as_bytes()[..]);
            // A rotation holds its row locked until it commits, then moves it to a new key.
            // At REPEATABLE READ the DELETE locks the whole range of the user's index it
            // scans, gaps included, so the moved row cannot land in a part already passed:
            // the rotation waits, or InnoDB ends one of the two as a deadlock victim, which
            // runs again (a rotation then finds its row gone). At READ COMMITTED, which a
            // pool may use, InnoDB takes no gap locks and the row could slip past the scan:
            // hence the level is set for this one statement.
            let deleted = loop {
                let attempt = async {
                    conn.execute(REPEATABLE_READ).await?;
                    sqlx::query(self.inner.sql.delete_by_user.clone())
                        .bind(user.as_bytes())
                        .bind(except)
                        .bind(except)
                        .bind(utc(now))
                        .execute(&mut *conn)
                        .await
                };
                match tokio::time::timeout_at(deadline, attempt).await {
                    Err(_) => return Err(timeout(WHAT)),
                    Ok(Err(e)) if is_deadlock(&e) && Instant::now() < deadline => {}
                    Ok(result) => break result.map_err(|e| from_sqlx(WHAT, e))?.rows_affected(),
                }
            };
            Ok(deleted)
        })
    }

    fn delete_expired(&self, now: OffsetDateTime, batch: usize) -> StoreFuture<'_, u64> {
        StoreFuture::boxed(async move {
            const WHAT: &str = "deleting expired sessions";
            let deadline = self.deadline();
            let mut conn = self.conn(deadline, WHAT).await?;
            let batch = u64::try_from(batch).unwrap_or(u64::MAX);
            let done = self
                .execute_retrying(&mut conn, deadline, WHAT, || {
                    sqlx::query(self.inner.sql.delete_expired.clone())
                        .bind(utc(now))
                        .bind(batch)
                })
                .await?;
            Ok(done.rows_affected())
        })
    }
}
