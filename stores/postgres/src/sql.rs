//! The SQL the store runs, built once from the checked schema and table names.

use std::sync::Arc;

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

/// The statements a [`PostgresStore`](crate::PostgresStore) runs, for a DBA to review or
/// `EXPLAIN`. Every statement is one round trip; none is built from client input (only the
/// schema and table names, which the builder checked, are spliced in; values are bound).
///
/// Liveness is always decided with the `now` the layer passes as a parameter
/// (`expires > $now`), never with the database's `now()`, so every backend and the layer
/// agree on when a session ends.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use session_layer_postgres::PostgresStore;
///
/// let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/app").await?;
/// println!("{}", store.statements().delete_expired);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Statements {
    /// Inserts a session unless its key is taken: `$1` key, `$2` user, `$3` created,
    /// `$4` last seen, `$5` idle deadline, `$6` absolute deadline, `$7` persistent, `$8` data,
    /// `$9` the session's own idle timeout in milliseconds or null.
    pub create: String,
    /// The live session under a key: `$1` key, `$2` now.
    pub load: String,
    /// Moves the idle deadline of a live session: `$1` key, `$2` seen (also "now"),
    /// `$3` idle deadline.
    pub touch: String,
    /// The session under a key, locked until the transaction ends: `$1` key.
    pub lock: String,
    /// Writes a session read with [`lock`](Self::lock) back, changed, under the key `$7`
    /// (the same key, or a new one for a rotation, which a taken key refuses with a unique
    /// violation): `$1` key, `$2` data, `$3` last seen, `$4` idle deadline, `$5` persistent,
    /// `$6` user, `$8` absolute deadline, `$9` the session's own idle timeout in milliseconds
    /// or null.
    pub write: String,
    /// Removes a session: `$1` key.
    pub delete: String,
    /// Removes a session if `$2` owns it, answering whether it was live at `$3`: `$1` key.
    pub delete_owned: String,
    /// A user's live sessions (uses the `<table>_user_id_idx` index): `$1` user, `$2` now.
    pub list_by_user: String,
    /// Deletes a user's sessions but one, counting the live ones (uses the
    /// `<table>_user_id_idx` index): `$1` user, `$2` key to keep or null, `$3` now.
    pub delete_by_user: String,
    /// Deletes one batch of expired sessions, oldest first, skipping rows another cleaner
    /// holds (uses the `<table>_expires_idx` index): `$1` now, `$2` batch size.
    pub delete_expired: String,
}

/// `"schema"."table"`, ready to splice into SQL.
pub(crate) fn qualified(schema: &str, table: &str) -> String {
    format!("\"{schema}\".\"{table}\"")
}

const META_COLUMNS: &str =
    "created, last_seen, idle_deadline, absolute_deadline, persistent, user_id, idle_timeout_ms";

impl Statements {
    pub(crate) fn new(schema: &str, table: &str) -> Self {
        let t = qualified(schema, table);
        Self {
            create: format!(
                "INSERT INTO {t} (key, user_id, created, last_seen, idle_deadline, \
                 absolute_deadline, persistent, data, format, idle_timeout_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9) ON CONFLICT (key) DO NOTHING"
            ),
            load: format!(
                "SELECT {META_COLUMNS}, data, format FROM {t} WHERE key = $1 AND expires > $2"
            ),
            touch: format!(
                "UPDATE {t} SET last_seen = $2, idle_deadline = LEAST($3, absolute_deadline) \
                 WHERE key = $1 AND expires > $2"
            ),
            lock: format!("SELECT {META_COLUMNS}, data, format FROM {t} WHERE key = $1 FOR UPDATE"),
            write: format!(
                "UPDATE {t} SET key = $7, data = $2, last_seen = $3, idle_deadline = $4, \
                 persistent = $5, user_id = $6, absolute_deadline = $8, idle_timeout_ms = $9 \
                 WHERE key = $1"
            ),
            delete: format!("DELETE FROM {t} WHERE key = $1"),
            delete_owned: format!(
                "DELETE FROM {t} WHERE key = $1 AND user_id = $2 RETURNING expires > $3"
            ),
            list_by_user: format!(
                "SELECT key, {META_COLUMNS} FROM {t} WHERE user_id = $1 AND expires > $2"
            ),
            delete_by_user: format!(
                "WITH gone AS (DELETE FROM {t} WHERE user_id = $1 \
                 AND ($2::bytea IS NULL OR key <> $2::bytea) RETURNING expires) \
                 SELECT count(*) FILTER (WHERE expires > $3) FROM gone"
            ),
            delete_expired: format!(
                "DELETE FROM {t} WHERE key IN (SELECT key FROM {t} WHERE expires <= $1 \
                 ORDER BY expires LIMIT $2 FOR UPDATE SKIP LOCKED)"
            ),
        }
    }
}

/// [`Statements`] as sqlx runs them: shared strings that each query clones without copying
/// the text. They pass sqlx's `AssertSqlSafe` because only the checked schema and table
/// names are spliced in; every value is bound.
pub(crate) struct Prepared {
    pub(crate) create: SqlStr,
    pub(crate) load: SqlStr,
    pub(crate) touch: SqlStr,
    pub(crate) lock: SqlStr,
    pub(crate) write: SqlStr,
    pub(crate) delete: SqlStr,
    pub(crate) delete_owned: SqlStr,
    pub(crate) list_by_user: SqlStr,
    pub(crate) delete_by_user: SqlStr,
    pub(crate) delete_expired: SqlStr,
}

impl Prepared {
    pub(crate) fn new(s: &Statements) -> Self {
        Self {
            create: shared(&s.create),
            load: shared(&s.load),
            touch: shared(&s.touch),
            lock: shared(&s.lock),
            write: shared(&s.write),
            delete: shared(&s.delete),
            delete_owned: shared(&s.delete_owned),
            list_by_user: shared(&s.list_by_user),
            delete_by_user: shared(&s.delete_by_user),
            delete_expired: shared(&s.delete_expired),
        }
    }
}

/// `sql`, built from checked names only, as a string sqlx shares between queries.
pub(crate) fn shared(sql: &str) -> SqlStr {
    AssertSqlSafe(Arc::<str>::from(sql)).into_sql_str()
}

/// One step of the schema's history. Steps are applied in order, each in its own
/// transaction, and never edited once released: a change is a new step.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) description: &'static str,
    /// The step's SQL, given the schema and the table name.
    pub(crate) sql: fn(&str, &str) -> String,
}

/// The data format the `format` column names: 1 is a JSON object of the session's keys.
pub(crate) const DATA_FORMAT: i16 = 1;

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "create the sessions table and its expiry and per-user indexes",
        sql: create_table,
    },
    Migration {
        version: 2,
        description: "add the idle timeout a session may have of its own",
        sql: add_idle_timeout,
    },
];

/// Existing rows get none: the layer's idle timeout keeps applying to them. A process of
/// the previous version neither reads nor writes the column, so it keeps serving during a
/// rolling upgrade (its writes leave the column as it is).
fn add_idle_timeout(schema: &str, table: &str) -> String {
    let t = qualified(schema, table);
    format!(
        r#"
ALTER TABLE {t} ADD COLUMN IF NOT EXISTS idle_timeout_ms BIGINT CHECK (idle_timeout_ms >= 0);
COMMENT ON COLUMN {t}.idle_timeout_ms IS
    'The idle timeout the session has of its own, in milliseconds; null: the layer''s.';
"#
    )
}

fn create_table(schema: &str, table: &str) -> String {
    let t = qualified(schema, table);
    format!(
        r#"
CREATE TABLE {t} (
    key               BYTEA       PRIMARY KEY CHECK (octet_length(key) = 32),
    user_id           TEXT,
    created           TIMESTAMPTZ NOT NULL,
    last_seen         TIMESTAMPTZ NOT NULL,
    idle_deadline     TIMESTAMPTZ NOT NULL,
    absolute_deadline TIMESTAMPTZ NOT NULL,
    expires           TIMESTAMPTZ NOT NULL
                      GENERATED ALWAYS AS (LEAST(idle_deadline, absolute_deadline)) STORED,
    persistent        BOOLEAN     NOT NULL DEFAULT FALSE,
    data              JSONB       NOT NULL DEFAULT '{{}}' CHECK (jsonb_typeof(data) = 'object'),
    format            SMALLINT    NOT NULL DEFAULT 1
);
CREATE INDEX "{table}_expires_idx" ON {t} (expires);
CREATE INDEX "{table}_user_id_idx" ON {t} (user_id) WHERE user_id IS NOT NULL;
COMMENT ON TABLE {t} IS
    'Sessions of session-layer. key is the SHA-256 of the session ID, never the ID itself; a session is live while expires (the earlier of its idle and absolute deadlines) lies in the future.';
COMMENT ON COLUMN {t}.key IS 'SHA-256 of the session ID (the cookie value is never stored).';
COMMENT ON COLUMN {t}.expires IS 'The earlier of idle_deadline and absolute_deadline.';
COMMENT ON COLUMN {t}.format IS 'Version of the data encoding (1: JSON object of the session keys).';
"#
    )
}
