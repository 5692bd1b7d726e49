//! Versioned migrations in `<table>_migrations`, one `BEGIN IMMEDIATE` transaction per step.
//!
//! sqlx's `migrate!` keeps one fixed `_sqlx_migrations` table and cannot take the
//! configurable table name, so the store keeps its own short list ([`MIGRATIONS`]).
//! `BEGIN IMMEDIATE` takes SQLite's write lock before the ledger is read, so processes that
//! start together apply each step exactly once.

use session_layer::StoreError;
use sqlx::{AssertSqlSafe, Connection, Executor as _, SqliteConnection};

use crate::error::from_sqlx;
use crate::sql::MIGRATIONS;
use crate::time_text::to_text;

const WHAT: &str = "migrating the sessions table";

pub(crate) async fn run(conn: &mut SqliteConnection, table: &str) -> Result<(), StoreError> {
    let err = |e| from_sqlx(WHAT, e);
    let ledger = format!("\"{table}_migrations\"");
    {
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {ledger} (\
                 version INTEGER PRIMARY KEY, \
                 description TEXT NOT NULL, \
                 applied_at TEXT NOT NULL) STRICT"
        );
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        // `Executor::execute` with plain text runs it unprepared, like `raw_sql`, but its
        // future is provably `Send`; `raw_sql(..).execute(..)`'s is not.
        tx.execute(AssertSqlSafe(create)).await.map_err(err)?;
        let current = current_version(&mut tx, &ledger).await.map_err(err)?;
        tx.commit().await.map_err(err)?;
        let known = MIGRATIONS.last().map_or(0, |m| m.version);
        if current > known {
            // An older process restarting during a rolling upgrade: keep serving.
            tracing::warn!(
                target: "session_layer_sqlite",
                table, current, known,
                "the sessions table was migrated by a newer session-layer-sqlite; this \
                 version leaves it as it is"
            );
        }
    }
    // Plain values only across the awaits below: holding a `&Migration` (whose `sql` is a
    // higher-ranked `fn(&str)`) would make this future non-`Send` to the compiler.
    let steps: Vec<(i64, &'static str, String)> = MIGRATIONS
        .iter()
        .map(|m| (m.version, m.description, (m.sql)(table)))
        .collect();
    for (version, description, sql) in steps {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        if current_version(&mut tx, &ledger).await.map_err(err)? >= version {
            tx.commit().await.map_err(err)?;
            continue;
        }
        tx.execute(AssertSqlSafe(sql)).await.map_err(err)?;
        let insert =
            format!("INSERT INTO {ledger} (version, description, applied_at) VALUES (?1, ?2, ?3)");
        sqlx::query(AssertSqlSafe(insert))
            .bind(version)
            .bind(description)
            .bind(to_text(time::OffsetDateTime::now_utc())?)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        tracing::info!(
            target: "session_layer_sqlite",
            table, version, description,
            "applied a sessions table migration"
        );
    }
    Ok(())
}

async fn current_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    ledger: &str,
) -> Result<i64, sqlx::Error> {
    let sql = format!("SELECT coalesce(max(version), 0) FROM {ledger}");
    sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_one(&mut **tx)
        .await
}
