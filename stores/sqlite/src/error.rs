//! Turns sqlx errors into the core's [`StoreError`], by what the caller can do about them.

use session_layer::{StoreError, StoreErrorKind};

/// Classifies `error`, raised while `what` (for example "loading a session").
pub(crate) fn from_sqlx(what: &str, error: sqlx::Error) -> StoreError {
    let (kind, hint) = classify(&error);
    StoreError::with_source(kind, format!("{what} failed: {hint}"), error)
}

fn classify(error: &sqlx::Error) -> (StoreErrorKind, &'static str) {
    use StoreErrorKind::{Corrupt, Full, Other, Timeout, TooLarge, Unavailable};
    match error {
        sqlx::Error::PoolTimedOut => (
            Unavailable,
            "no SQLite connection became free in time; raise the query timeout or the number \
             of connections",
        ),
        sqlx::Error::PoolClosed => (Unavailable, "the connection pool was closed"),
        sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => (
            Unavailable,
            "the SQLite database could not be opened or read; check the path, its permissions \
             and the disk",
        ),
        sqlx::Error::Database(db) => {
            let code: i32 = db.code().and_then(|c| c.parse().ok()).unwrap_or(0);
            // Extended result codes keep the primary code in the low byte.
            match code & 0xff {
                5 => (
                    Timeout,
                    "the database stayed locked by another connection or process for longer \
                     than the busy timeout (SQLITE_BUSY); nothing was changed. Look for a \
                     long transaction elsewhere, or raise the busy timeout",
                ),
                6 => (
                    Unavailable,
                    "a table was locked by another statement (SQLITE_LOCKED); nothing was changed",
                ),
                13 => (Full, "the disk or the database file is full (SQLITE_FULL)"),
                18 => (
                    TooLarge,
                    "the session is larger than SQLite accepts (SQLITE_TOOBIG)",
                ),
                11 | 26 => (
                    Corrupt,
                    "the database file is corrupt or is not a SQLite database",
                ),
                8 | 10 | 14 | 15 => (
                    Unavailable,
                    "the database file could not be written or opened; check the path, its \
                     permissions and the disk",
                ),
                1 if db.message().contains("no such table") => (
                    Other,
                    "the sessions table does not exist; call SqliteStore::migrate() at start-up",
                ),
                _ => (Other, "SQLite reported an error"),
            }
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::TypeNotFound { .. } => (
            Corrupt,
            "a stored session could not be decoded; was the table changed by hand?",
        ),
        _ => (Other, "SQLite reported an error"),
    }
}

/// The statement did not finish within the query timeout.
pub(crate) fn timeout(what: &str) -> StoreError {
    StoreError::timeout(format!("{what} on SQLite"))
}

/// No connection could be had before the query timeout ran out.
pub(crate) fn no_connection(what: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Unavailable,
        format!(
            "{what} failed: no SQLite connection within the query timeout; the store is \
             overloaded or a statement hangs"
        ),
    )
}

pub(crate) fn corrupt(message: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, message)
}
