//! Turns sqlx errors into the core's [`StoreError`], by what the caller can do about them.

use session_layer::{StoreError, StoreErrorKind};

/// Classifies `error`, raised while `what` (for example "loading a session"), into the
/// kinds the layer answers differently (`Unavailable` and `Timeout` become a 503).
pub(crate) fn from_sqlx(what: &str, error: sqlx::Error) -> StoreError {
    let (kind, hint) = classify(&error);
    StoreError::with_source(kind, format!("{what} failed: {hint}"), error)
}

fn classify(error: &sqlx::Error) -> (StoreErrorKind, &'static str) {
    use StoreErrorKind::{Corrupt, Other, Timeout, TooLarge, Unavailable};
    match error {
        sqlx::Error::PoolTimedOut => (
            Unavailable,
            "no PostgreSQL connection within the acquire timeout: the server is down or \
             unreachable (refused connections are retried until then), or every pooled \
             connection is busy (raise max connections)",
        ),
        sqlx::Error::PoolClosed => (Unavailable, "the connection pool was closed"),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => (
            Unavailable,
            "PostgreSQL could not be reached; check that the server is up and reachable",
        ),
        sqlx::Error::Protocol(_) => (
            Unavailable,
            "the connection to PostgreSQL broke; check the server's log",
        ),
        sqlx::Error::Database(db) => match db.code().as_deref().unwrap_or("") {
            // connection_exception, insufficient_resources, operator intervention (shutdown)
            code if code.starts_with("08") || code.starts_with("53") => (
                Unavailable,
                "PostgreSQL refused the connection or ran out of resources",
            ),
            "57P01" | "57P02" | "57P03" => {
                (Unavailable, "PostgreSQL is shutting down or starting up")
            }
            "57014" => (
                Timeout,
                "PostgreSQL cancelled the statement (statement_timeout); check for locks or \
                 raise the timeout",
            ),
            "22P05" => (
                Other,
                "PostgreSQL's JSONB cannot hold the character U+0000 in a string or key; \
                 strip it before storing the value in the session",
            ),
            "54000" => (TooLarge, "the session is larger than PostgreSQL accepts"),
            "42P01" | "3F000" => (
                Other,
                "the sessions table does not exist; call PostgresStore::migrate() at start-up",
            ),
            "42703" => (
                Other,
                "the sessions table lacks a column this version uses; call \
                 PostgresStore::migrate() at start-up",
            ),
            _ => (Other, "PostgreSQL reported an error"),
        },
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::TypeNotFound { .. } => (
            Corrupt,
            "a stored session could not be decoded; was the table changed by hand?",
        ),
        _ => (Other, "PostgreSQL reported an error"),
    }
}

/// The database was reached, but the statement did not finish within the query timeout.
pub(crate) fn timeout(what: &str) -> StoreError {
    StoreError::timeout(format!("{what} on PostgreSQL"))
}

/// No connection could be had before the query timeout ran out.
pub(crate) fn no_connection(what: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Unavailable,
        format!(
            "{what} failed: no PostgreSQL connection within the query timeout: the server is \
             down or unreachable, or every pooled connection is busy (raise max connections)"
        ),
    )
}

pub(crate) fn corrupt(message: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, message)
}
