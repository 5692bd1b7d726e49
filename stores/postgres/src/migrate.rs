//! Versioned migrations in `<table>_migrations`, applied one transaction per step.
//!
//! sqlx's `migrate!` keeps one fixed `_sqlx_migrations` table and cannot take the
//! configurable schema and table name, so the store keeps its own short list
//! ([`MIGRATIONS`]). Every step runs under a transaction-scoped advisory lock named after
//! the table, so several app instances starting at once apply each step exactly once.

use sqlx::{Acquire, AssertSqlSafe, Executor as _, PgConnection, PgPool};

use crate::error::from_sqlx;
use crate::sql::{qualified, MIGRATIONS};
use session_layer::StoreError;

const WHAT: &str = "migrating the sessions table";

pub(crate) async fn run(pool: &PgPool, schema: &str, table: &str) -> Result<(), StoreError> {
    let err = |e| from_sqlx(WHAT, e);
    let mut conn = pool.acquire().await.map_err(err)?;
    let ledger = qualified(schema, &format!("{table}_migrations"));
    let lock_name = format!("session-layer-postgres:{schema}.{table}");

    // Bootstrap: the schema and the ledger, under the lock.
    {
        let mut tx = conn.begin().await.map_err(err)?;
        // Tables of one new schema may be migrated at once: the schema needs a lock too.
        lock(&mut tx, &format!("session-layer-postgres:{schema}"))
            .await
            .map_err(err)?;
        lock(&mut tx, &lock_name).await.map_err(err)?;
        // Checked first so that an existing schema needs no CREATE privilege on the database.
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(schema)
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
        if !exists {
            let create = format!("CREATE SCHEMA \"{schema}\"");
            tx.execute(AssertSqlSafe(create)).await.map_err(err)?;
        }
        // Checked rather than IF NOT EXISTS, which logs a notice on every start.
        let ledger_exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&ledger)
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
        if !ledger_exists {
            let create = format!(
                "CREATE TABLE {ledger} (\
                     version BIGINT PRIMARY KEY, \
                     description TEXT NOT NULL, \
                     applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            );
            tx.execute(AssertSqlSafe(create)).await.map_err(err)?;
        }
        let current = current_version(&mut tx, &ledger).await.map_err(err)?;
        tx.commit().await.map_err(err)?;
        let known = MIGRATIONS.last().map_or(0, |m| m.version);
        if current > known {
            // An older instance restarting during a rolling upgrade: keep serving.
            tracing::warn!(
                target: "session_layer_postgres",
                schema, table, current, known,
                "the sessions table was migrated by a newer session-layer-postgres; \
                 this version leaves it as it is"
            );
        }
    }

    // Plain values only across the awaits below: `Migration::sql` is a higher-ranked
    // `fn(&str, &str)`, which keeps the compiler from proving this future `Send`.
    let steps: Vec<(i64, &'static str, String)> = MIGRATIONS
        .iter()
        .map(|m| (m.version, m.description, (m.sql)(schema, table)))
        .collect();
    for (version, description, sql) in steps {
        let mut tx = conn.begin().await.map_err(err)?;
        lock(&mut tx, &lock_name).await.map_err(err)?;
        // Read again under the lock: another instance may have applied the step meanwhile.
        let current = current_version(&mut tx, &ledger).await.map_err(err)?;
        if current >= version {
            tx.commit().await.map_err(err)?;
            continue;
        }
        // `Executor::execute` with plain text runs it unprepared, like `raw_sql`, but its
        // future is provably `Send`; `raw_sql(..).execute(..)`'s is not.
        tx.execute(AssertSqlSafe(sql)).await.map_err(err)?;
        let insert = format!("INSERT INTO {ledger} (version, description) VALUES ($1, $2)");
        sqlx::query(AssertSqlSafe(insert))
            .bind(version)
            .bind(description)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        tracing::info!(
            target: "session_layer_postgres",
            schema, table, version, description,
            "applied a sessions table migration"
        );
    }
    Ok(())
}

/// Takes the migration lock for the rest of the transaction, which is not bound by the
/// store's statement timeout (a step may build an index on a large table).
async fn lock(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    conn.execute("SET LOCAL statement_timeout = 0").await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(name)
        .execute(conn)
        .await
        .map(drop)
}

async fn current_version(conn: &mut PgConnection, ledger: &str) -> Result<i64, sqlx::Error> {
    let sql = format!("SELECT COALESCE(max(version), 0) FROM {ledger}");
    sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(conn).await
}
