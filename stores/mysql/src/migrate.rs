//! Versioned migrations in `<table>_migrations`, applied under a named lock.
//!
//! sqlx's `migrate!` keeps one fixed `_sqlx_migrations` table and cannot take the
//! configurable table name, so the store keeps its own short list ([`MIGRATIONS`]). The
//! whole run holds `GET_LOCK` on a name derived from the database and the table, so several
//! app instances starting at once apply each step exactly once: the others wait, then find
//! it in the ledger.

use session_layer::{StoreError, StoreErrorKind};
use sqlx::mysql::MySqlDatabaseError;
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, Executor as _, MySql, MySqlConnection, MySqlPool};

use crate::error::from_sqlx;
use crate::sql::{quoted, DUPLICATE_COLUMN, MIGRATIONS};

const WHAT: &str = "migrating the sessions table";

/// How long one instance waits for another's migration to finish, in seconds.
const LOCK_WAIT_SECS: i64 = 120;

pub(crate) async fn run(pool: &MySqlPool, table: &str) -> Result<(), StoreError> {
    let err = |e| from_sqlx(WHAT, e);
    let mut conn = pool.acquire().await.map_err(err)?;
    // Steps may build indexes on large tables: no per-statement limit on this connection,
    // which is closed afterwards rather than handed back to the pool with these settings.
    conn.execute("SET SESSION innodb_lock_wait_timeout = DEFAULT /*M!, max_statement_time = 0 */")
        .await
        .map_err(err)?;
    // Lock names are limited to 64 characters: the database and table go in as a hash.
    let lock: String = sqlx::query_scalar(
        "SELECT CONCAT('session-layer-mysql:', SHA1(CONCAT(COALESCE(DATABASE(), ''), '.', ?)))",
    )
    .bind(table)
    .fetch_one(&mut *conn)
    .await
    .map_err(err)?;
    let result = locked(&mut conn, &lock, table).await;
    // Closing the connection releases the lock too, should RELEASE_LOCK not get through.
    let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
        .bind(&lock)
        .execute(&mut *conn)
        .await;
    let _ = PoolConnection::<MySql>::close(conn).await;
    result
}

async fn locked(conn: &mut MySqlConnection, lock: &str, table: &str) -> Result<(), StoreError> {
    let err = |e| from_sqlx(WHAT, e);
    let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
        .bind(lock)
        .bind(LOCK_WAIT_SECS)
        .fetch_one(&mut *conn)
        .await
        .map_err(err)?;
    if got != Some(1) {
        return Err(StoreError::new(
            StoreErrorKind::Timeout,
            format!(
                "{WHAT} failed: another instance held the migration lock for over \
                 {LOCK_WAIT_SECS} seconds; look for a migration that hangs"
            ),
        ));
    }

    let ledger = quoted(&format!("{table}_migrations"));
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {ledger} (\
             version BIGINT NOT NULL PRIMARY KEY, \
             description VARCHAR(255) NOT NULL, \
             applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)\
         ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4"
    );
    conn.execute(AssertSqlSafe(create)).await.map_err(err)?;
    let current_sql = format!("SELECT COALESCE(MAX(version), 0) FROM {ledger}");
    let current: i64 = sqlx::query_scalar(AssertSqlSafe(current_sql))
        .fetch_one(&mut *conn)
        .await
        .map_err(err)?;
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if current > known {
        // An older instance restarting during a rolling upgrade: keep serving.
        tracing::warn!(
            target: "session_layer_mysql",
            table, current, known,
            "the sessions table was migrated by a newer session-layer-mysql; this version \
             leaves it as it is"
        );
    }
    // Plain values only across the awaits below: `Migration::sql` is a higher-ranked
    // `fn(&str)`, which keeps the compiler from proving this future `Send`.
    let steps: Vec<(i64, &'static str, String)> = MIGRATIONS
        .iter()
        .filter(|m| m.version > current)
        .map(|m| (m.version, m.description, (m.sql)(table)))
        .collect();
    for (version, description, sql) in steps {
        match conn.execute(AssertSqlSafe(sql)).await {
            // Applied by a run that stopped before its ledger line: MySQL has no
            // `ADD COLUMN IF NOT EXISTS` (MariaDB has), so the step's error says it is done.
            Err(sqlx::Error::Database(e))
                if e.try_downcast_ref::<MySqlDatabaseError>()
                    .is_some_and(|e| e.number() == DUPLICATE_COLUMN) => {}
            other => {
                other.map_err(err)?;
            }
        }
        let insert = format!("INSERT INTO {ledger} (version, description) VALUES (?, ?)");
        sqlx::query(AssertSqlSafe(insert))
            .bind(version)
            .bind(description)
            .execute(&mut *conn)
            .await
            .map_err(err)?;
        tracing::info!(
            target: "session_layer_mysql",
            table, version, description,
            "applied a sessions table migration"
        );
    }
    Ok(())
}
