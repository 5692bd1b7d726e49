//! Turns sqlx errors into the core's [`StoreError`], by what the caller can do about them.

use session_layer::{StoreError, StoreErrorKind};
use sqlx::mysql::MySqlDatabaseError;

/// Classifies `error`, raised while `what` (for example "loading a session"), into the
/// kinds the layer answers differently (`Unavailable` and `Timeout` become a 503).
pub(crate) fn from_sqlx(what: &str, error: sqlx::Error) -> StoreError {
    let (kind, hint) = classify(&error);
    StoreError::with_source(kind, format!("{what} failed: {hint}"), error)
}

/// The server's error number, for a database error.
pub(crate) fn number(error: &sqlx::Error) -> Option<u16> {
    match error {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number),
        _ => None,
    }
}

/// InnoDB chose the statement's transaction as a deadlock victim and rolled it back: it
/// changed nothing and may simply run again.
pub(crate) fn is_deadlock(error: &sqlx::Error) -> bool {
    number(error) == Some(ER_LOCK_DEADLOCK)
}

/// The key of a row was taken (`ER_DUP_ENTRY`): nothing was written.
pub(crate) fn is_duplicate_key(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

const ER_LOCK_DEADLOCK: u16 = 1213;

fn classify(error: &sqlx::Error) -> (StoreErrorKind, &'static str) {
    use StoreErrorKind::{Corrupt, Full, Other, Timeout, TooLarge, Unavailable};
    match error {
        sqlx::Error::PoolTimedOut => (
            Unavailable,
            "no MySQL connection within the acquire timeout: the server is down or \
             unreachable (refused connections are retried until then), or every pooled \
             connection is busy (raise max connections)",
        ),
        sqlx::Error::PoolClosed => (Unavailable, "the connection pool was closed"),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => (
            Unavailable,
            "MySQL could not be reached; check that the server is up and reachable",
        ),
        sqlx::Error::Protocol(_) => (
            Unavailable,
            "the connection to MySQL broke; check the server's log",
        ),
        sqlx::Error::Database(_) => match number(error).unwrap_or(0) {
            // Too many connections, server shutdown, connection killed, read-only server.
            1040 | 1053 | 1077 | 1927 | 1290 | 1836 => (
                Unavailable,
                "MySQL refused the statement: it is shutting down, out of connections, or \
                 read-only (a replica?)",
            ),
            ER_LOCK_DEADLOCK => (
                Timeout,
                "InnoDB kept choosing this statement as a deadlock victim until the query \
                 timeout; nothing was changed",
            ),
            // Lock wait timeout, MariaDB's max_statement_time, MySQL's max_execution_time.
            1205 | 1969 | 3024 => (
                Timeout,
                "MySQL abandoned the statement at the query timeout; check for long \
                 transactions holding locks, or raise the timeout",
            ),
            1153 | 1301 => (
                TooLarge,
                "the session is larger than MySQL accepts; raise max_allowed_packet",
            ),
            1021 | 1114 => (Full, "MySQL's disk or table is full"),
            1146 => (
                Other,
                "the sessions table does not exist; call MySqlStore::migrate() at start-up",
            ),
            1054 => (
                Other,
                "the sessions table lacks a column this version uses; call \
                 MySqlStore::migrate() at start-up",
            ),
            1049 => (
                Other,
                "the database named in the URL does not exist; create it first",
            ),
            1046 => (
                Other,
                "no database is selected; name one in the URL (mysql://user@host/database)",
            ),
            1044 | 1045 | 1142 | 1143 => (
                Other,
                "MySQL refused access; check the user, its password and its privileges on \
                 the sessions table",
            ),
            1292 | 1441 => (
                Other,
                "a time lies outside the years 1000 to 9999 that MySQL's DATETIME holds",
            ),
            1366 => (
                Other,
                "MySQL could not store the text; the sessions table should use utf8mb4 (as \
                 migrate() creates it)",
            ),
            _ => (Other, "MySQL reported an error"),
        },
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::TypeNotFound { .. } => (
            Corrupt,
            "a stored session could not be decoded; was the table changed by hand?",
        ),
        _ => (Other, "MySQL reported an error"),
    }
}

/// The database was reached, but the statement did not finish within the query timeout.
pub(crate) fn timeout(what: &str) -> StoreError {
    StoreError::timeout(format!("{what} on MySQL"))
}

/// No connection could be had before the query timeout ran out.
pub(crate) fn no_connection(what: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Unavailable,
        format!(
            "{what} failed: no MySQL connection within the query timeout: the server is down \
             or unreachable, or every pooled connection is busy (raise max connections)"
        ),
    )
}

pub(crate) fn corrupt(message: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, message)
}
