//! The SQL the store runs, built once from the checked table name.

use std::sync::Arc;

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

/// The statements a [`MySqlStore`](crate::MySqlStore) runs, for a DBA to review or
/// `EXPLAIN`. Every statement is one round trip; none is built from client input (only the
/// table name, which the builder checked, is spliced in; values are bound as `?`).
///
/// Liveness is always decided with the `now` the layer passes as a parameter
/// (`expires > ?`), never with the database's `NOW()`, so every backend and the layer agree
/// on when a session ends. Times are bound as UTC `DATETIME(3)` values.
///
/// ```
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use session_layer_mysql::MySqlStore;
///
/// let store = MySqlStore::builder().with_table("web_sessions")?.from_pool(
///     session_layer_mysql::sqlx::MySqlPool::connect_lazy("mysql://app@localhost/app")?,
/// );
/// assert!(store.statements().delete_expired.starts_with("DELETE FROM `web_sessions`"));
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Statements {
    /// Inserts a session, failing on a taken key (reported as a collision, nothing
    /// overwritten): key, user, created, last seen, idle deadline, absolute deadline,
    /// persistent, data, the session's own idle timeout in milliseconds or null.
    pub create: String,
    /// The live session under a key: key, now.
    pub load: String,
    /// Moves the idle deadline of a live session: seen, idle deadline, key, seen (as now).
    pub touch: String,
    /// The session under a key, locked until the transaction ends: key.
    pub lock: String,
    /// Writes a session read with [`lock`](Self::lock) back, changed, under a key (the same
    /// one, or a new one for a rotation, which a taken key refuses with a duplicate-key
    /// error): new key, data, last seen, idle deadline, persistent, user, absolute deadline,
    /// the session's own idle timeout in milliseconds or null, key.
    pub write: String,
    /// Removes a session: key.
    pub delete: String,
    /// Removes a session if it is live and the user owns it: key, user, now.
    pub delete_owned: String,
    /// A user's live sessions (uses the `<table>_user_id_idx` index): user, now.
    pub list_by_user: String,
    /// Deletes a user's live sessions but one (uses the `<table>_user_id_idx` index): user,
    /// key to keep or null (twice), now. The store runs it at `REPEATABLE READ`, whatever
    /// the pool's level (see the crate docs).
    pub delete_by_user: String,
    /// Deletes one batch of expired sessions, oldest first (uses the `<table>_expires_idx`
    /// index): now, batch size.
    pub delete_expired: String,
}

/// `` `table` ``, ready to splice into SQL.
pub(crate) fn quoted(table: &str) -> String {
    format!("`{table}`")
}

const META_COLUMNS: &str =
    "created, last_seen, idle_deadline, absolute_deadline, persistent, user_id, idle_timeout_ms";

/// The data as UTF-8 text: MariaDB's `JSON` is text already, MySQL's a binary format that
/// the server turns back into text here.
const DATA_AS_TEXT: &str = "CAST(data AS CHAR) AS data";

impl Statements {
    pub(crate) fn new(table: &str) -> Self {
        let t = quoted(table);
        Self {
            create: format!(
                "INSERT INTO {t} (`key`, user_id, created, last_seen, idle_deadline, \
                 absolute_deadline, persistent, data, format, idle_timeout_ms) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?)"
            ),
            load: format!(
                "SELECT {META_COLUMNS}, {DATA_AS_TEXT}, format FROM {t} \
                 WHERE `key` = ? AND expires > ?"
            ),
            touch: format!(
                "UPDATE {t} SET last_seen = ?, idle_deadline = LEAST(?, absolute_deadline) \
                 WHERE `key` = ? AND expires > ?"
            ),
            lock: format!(
                "SELECT {META_COLUMNS}, {DATA_AS_TEXT}, format FROM {t} WHERE `key` = ? \
                 FOR UPDATE"
            ),
            write: format!(
                "UPDATE {t} SET `key` = ?, data = ?, last_seen = ?, idle_deadline = ?, \
                 persistent = ?, user_id = ?, absolute_deadline = ?, idle_timeout_ms = ? \
                 WHERE `key` = ?"
            ),
            delete: format!("DELETE FROM {t} WHERE `key` = ?"),
            delete_owned: format!(
                "DELETE FROM {t} WHERE `key` = ? AND user_id = ? AND expires > ?"
            ),
            list_by_user: format!(
                "SELECT `key`, {META_COLUMNS} FROM {t} WHERE user_id = ? AND expires > ?"
            ),
            delete_by_user: format!(
                "DELETE FROM {t} WHERE user_id = ? AND (? IS NULL OR `key` <> ?) \
                 AND expires > ?"
            ),
            delete_expired: format!("DELETE FROM {t} WHERE expires <= ? ORDER BY expires LIMIT ?"),
        }
    }
}

/// [`Statements`] as sqlx runs them: shared strings that each query clones without copying
/// the text. They pass sqlx's `AssertSqlSafe` because only the checked table name is spliced
/// in; every value is bound.
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

/// One step of the schema's history. Steps are applied in order and never edited once
/// released: a change is a new step. MySQL commits each DDL statement at once (there is no
/// transactional DDL), so a step is one statement written to be safe to run again, in
/// case the process stopped between it and its line in the ledger.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) description: &'static str,
    /// The step's SQL, given the table name.
    pub(crate) sql: fn(&str) -> String,
}

/// The data format the `format` column names: 1 is a JSON object of the session's keys.
pub(crate) const DATA_FORMAT: i16 = 1;

/// The longest user ID the `user_id` column holds, in bytes of UTF-8.
pub(crate) const MAX_USER_BYTES: usize = 1020;

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
/// rolling upgrade (its writes leave the column as it is). Run again after the process
/// stopped before its ledger line, it fails with a duplicate column, which the migration
/// takes for done ([`DUPLICATE_COLUMN`]).
fn add_idle_timeout(table: &str) -> String {
    let t = quoted(table);
    format!(
        "ALTER TABLE {t} ADD COLUMN idle_timeout_ms BIGINT NULL \
         COMMENT 'The idle timeout the session has of its own, in milliseconds; null: the layer''s' \
         CHECK (idle_timeout_ms >= 0)"
    )
}

/// MySQL's and MariaDB's error number for a column added twice (`ER_DUP_FIELDNAME`).
pub(crate) const DUPLICATE_COLUMN: u16 = 1060;

fn create_table(table: &str) -> String {
    let t = quoted(table);
    format!(
        r#"
CREATE TABLE IF NOT EXISTS {t} (
    `key`             BINARY(32)     NOT NULL
                      COMMENT 'SHA-256 of the session ID (the cookie value is never stored)',
    user_id           VARBINARY({MAX_USER_BYTES}) NULL
                      COMMENT 'The owner as UTF-8, compared byte for byte',
    created           DATETIME(3)    NOT NULL COMMENT 'UTC',
    last_seen         DATETIME(3)    NOT NULL COMMENT 'UTC',
    idle_deadline     DATETIME(3)    NOT NULL COMMENT 'UTC',
    absolute_deadline DATETIME(3)    NOT NULL COMMENT 'UTC',
    expires           DATETIME(3)    AS (LEAST(idle_deadline, absolute_deadline)) STORED
                      COMMENT 'The earlier deadline: the session is dead from then on',
    persistent        BOOLEAN        NOT NULL DEFAULT FALSE,
    data              JSON           NOT NULL,
    format            SMALLINT       NOT NULL DEFAULT 1
                      COMMENT 'Version of the data encoding (1: JSON object of the session keys)',
    PRIMARY KEY (`key`),
    KEY `{table}_expires_idx` (expires),
    KEY `{table}_user_id_idx` (user_id),
    CONSTRAINT `{table}_data_chk` CHECK (JSON_TYPE(data) = 'OBJECT')
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
  COMMENT = 'Sessions of session-layer: live while expires lies in the future'
"#
    )
}
