//! The SQL the store runs, built once from the checked table name.

use std::sync::Arc;

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

/// The statements a [`SqliteStore`](crate::SqliteStore) runs, for review or
/// `EXPLAIN QUERY PLAN`. Only the table name, which the builder checked, is spliced in;
/// values are bound. Times are bound as UTC text `YYYY-MM-DD HH:MM:SS.SSS`.
///
/// Liveness is always decided with the `now` the layer passes (`expires > ?2`), never with
/// SQLite's clock.
///
/// ```
/// # async fn run() -> Result<(), session_layer::StoreError> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("sessions.db");
/// let store = session_layer_sqlite::SqliteStore::open(&path).await?;
/// assert!(store.statements().delete_expired.contains("expires <= ?1"));
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Statements {
    /// Inserts a session unless its key is taken: `?1` key, `?2` user, `?3` created,
    /// `?4` last seen, `?5` idle deadline, `?6` absolute deadline, `?7` persistent, `?8` data,
    /// `?9` the session's own idle timeout in milliseconds or null.
    pub create: String,
    /// The live session under a key: `?1` key, `?2` now.
    pub load: String,
    /// Applies a change to a live session: `?1` key, `?2` now, `?3` the new data or null
    /// to keep it, `?4` last seen, `?5` idle deadline, `?6` persistent, `?7` whether the
    /// user changes, `?8` user, `?9` absolute deadline, `?10` the session's own idle timeout
    /// in milliseconds or null. When the data changes, the store runs it inside
    /// `BEGIN IMMEDIATE` after reading the row, so the read and the write see one version.
    pub update: String,
    /// [`update`](Self::update) that also moves the session to the key `?11`.
    pub rotate: String,
    /// Moves the idle deadline of a live session: `?1` key, `?2` seen (also "now"),
    /// `?3` idle deadline.
    pub touch: String,
    /// Removes a session: `?1` key.
    pub delete: String,
    /// Removes a session if `?2` owns it, answering whether it was live at `?3`: `?1` key.
    pub delete_owned: String,
    /// A user's live sessions (uses the `<table>_user_id_idx` index): `?1` user, `?2` now.
    pub list_by_user: String,
    /// Deletes a user's sessions but one, returning for each whether it was live (uses the
    /// `<table>_user_id_idx` index): `?1` user, `?2` key to keep or null, `?3` now.
    pub delete_by_user: String,
    /// Deletes one batch of expired sessions, oldest first (uses the `<table>_expires_idx`
    /// index): `?1` now, `?2` batch size.
    pub delete_expired: String,
}

pub(crate) const META_COLUMNS: &str =
    "created, last_seen, idle_deadline, absolute_deadline, persistent, user_id, idle_timeout_ms";

impl Statements {
    pub(crate) fn new(table: &str) -> Self {
        let t = format!("\"{table}\"");
        let set_clause = "data = coalesce(?3, data), \
             last_seen = coalesce(?4, last_seen), \
             idle_deadline = CASE WHEN ?5 IS NULL THEN idle_deadline \
                 ELSE min(?5, coalesce(?9, absolute_deadline)) END, \
             persistent = coalesce(?6, persistent), \
             user_id = CASE WHEN ?7 THEN ?8 ELSE user_id END, \
             absolute_deadline = coalesce(?9, absolute_deadline), \
             idle_timeout_ms = ?10";
        Self {
            create: format!(
                "INSERT INTO {t} (key, user_id, created, last_seen, idle_deadline, \
                 absolute_deadline, persistent, data, format, idle_timeout_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?9) ON CONFLICT (key) DO NOTHING"
            ),
            load: format!(
                "SELECT {META_COLUMNS}, data, format FROM {t} WHERE key = ?1 AND expires > ?2"
            ),
            update: format!(
                "UPDATE {t} SET {set_clause} WHERE key = ?1 AND expires > ?2 \
                 RETURNING {META_COLUMNS}"
            ),
            // A taken `?11` fails the statement with a primary key violation, which the
            // store reports as a collision; nothing changed then.
            rotate: format!(
                "UPDATE {t} SET key = ?11, {set_clause} WHERE key = ?1 AND expires > ?2 \
                 RETURNING {META_COLUMNS}"
            ),
            touch: format!(
                "UPDATE {t} SET last_seen = ?2, idle_deadline = min(?3, absolute_deadline) \
                 WHERE key = ?1 AND expires > ?2"
            ),
            delete: format!("DELETE FROM {t} WHERE key = ?1"),
            delete_owned: format!(
                "DELETE FROM {t} WHERE key = ?1 AND user_id = ?2 RETURNING expires > ?3"
            ),
            list_by_user: format!(
                "SELECT key, {META_COLUMNS} FROM {t} WHERE user_id = ?1 AND expires > ?2"
            ),
            delete_by_user: format!(
                "DELETE FROM {t} WHERE user_id = ?1 AND (?2 IS NULL OR key <> ?2) \
                 RETURNING expires > ?3"
            ),
            delete_expired: format!(
                "DELETE FROM {t} WHERE key IN (SELECT key FROM {t} WHERE expires <= ?1 \
                 ORDER BY expires LIMIT ?2)"
            ),
        }
    }
}

/// [`Statements`] as sqlx runs them: shared strings that each query clones without copying
/// the text. They pass sqlx's `AssertSqlSafe` because only the checked table name is
/// spliced in; every value is bound.
pub(crate) struct Prepared {
    pub(crate) create: SqlStr,
    pub(crate) load: SqlStr,
    pub(crate) update: SqlStr,
    pub(crate) rotate: SqlStr,
    pub(crate) touch: SqlStr,
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
            update: shared(&s.update),
            rotate: shared(&s.rotate),
            touch: shared(&s.touch),
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
    /// The step's SQL, given the table name.
    pub(crate) sql: fn(&str) -> String,
}

/// The data format the `format` column names: 1 is a JSON object of the session's keys.
pub(crate) const DATA_FORMAT: i64 = 1;

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
/// rolling upgrade.
fn add_idle_timeout(table: &str) -> String {
    format!(
        r#"
-- The idle timeout the session has of its own, in milliseconds; null: the layer's.
ALTER TABLE "{table}" ADD COLUMN idle_timeout_ms INTEGER CHECK (idle_timeout_ms >= 0);
"#
    )
}

fn create_table(table: &str) -> String {
    format!(
        r#"
CREATE TABLE "{table}" (
    -- SHA-256 of the session ID; the cookie value is never stored.
    key               BLOB    NOT NULL PRIMARY KEY CHECK (length(key) = 32),
    user_id           TEXT,
    -- Times are UTC text 'YYYY-MM-DD HH:MM:SS.SSS': readable, and ordered as text.
    created           TEXT    NOT NULL,
    last_seen         TEXT    NOT NULL,
    idle_deadline     TEXT    NOT NULL,
    absolute_deadline TEXT    NOT NULL,
    -- The earlier deadline: the session is dead from then on.
    expires           TEXT    GENERATED ALWAYS AS (min(idle_deadline, absolute_deadline)) STORED,
    persistent        INTEGER NOT NULL DEFAULT 0 CHECK (persistent IN (0, 1)),
    data              TEXT    NOT NULL DEFAULT '{{}}' CHECK (json_type(data) = 'object'),
    -- Version of the data encoding (1: JSON object of the session keys).
    format            INTEGER NOT NULL DEFAULT 1
) STRICT;
CREATE INDEX "{table}_expires_idx" ON "{table}" (expires);
CREATE INDEX "{table}_user_id_idx" ON "{table}" (user_id) WHERE user_id IS NOT NULL;
"#
    )
}
