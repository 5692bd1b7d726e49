//! Names and settings the builder checks before anything reaches the database.

use std::fmt;

/// The longest schema or table name accepted, in bytes. The derived names
/// (`<table>_migrations`, `<table>_user_id_idx`) must still fit PostgreSQL's 63-byte limit.
pub const MAX_NAME_LEN: usize = 48;

/// A setting of [`PostgresStoreBuilder`](crate::PostgresStoreBuilder) that cannot work.
///
/// ```
/// use session_layer_postgres::PostgresStore;
///
/// let err = PostgresStore::builder().with_table("sessions; DROP TABLE users").unwrap_err();
/// assert!(err.to_string().contains("table name"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("session-layer-postgres: ")?;
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Accepts `^[a-z_][a-z0-9_]*$` up to [`MAX_NAME_LEN`] bytes and nothing else.
///
/// Names are spliced into SQL (PostgreSQL cannot bind identifiers), so only this shape gets
/// through. Lowercase only: the quoted name then equals the unquoted one, and a DBA can
/// type it without quotes.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), ConfigError> {
    let bytes = name.as_bytes();
    let shape_ok = !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && (bytes[0].is_ascii_lowercase() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
    if !shape_ok {
        return Err(ConfigError::new(format!(
            "the {what} name {name:?} is not accepted: use 1 to {MAX_NAME_LEN} lowercase ASCII \
             letters, digits and underscores, starting with a letter or an underscore"
        )));
    }
    if what == "schema" && name.starts_with("pg_") {
        return Err(ConfigError::new(format!(
            "the schema name {name:?} is reserved: PostgreSQL keeps names starting with pg_ \
             for system schemas"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lowercase_identifiers_pass() {
        for name in [
            "sessions",
            "_s",
            "app_sessions_2",
            &"a".repeat(MAX_NAME_LEN),
        ] {
            assert!(check_name("table", name).is_ok(), "{name} refused");
        }
    }

    #[test]
    fn anything_else_is_refused_with_a_message_that_says_what_to_use() {
        for name in [
            "",
            "Sessions",
            "1sessions",
            "sessions; DROP TABLE users",
            "sess\"ions",
            "sess-ions",
            "sessions ",
            "séssions",
            "a.b",
            &"a".repeat(MAX_NAME_LEN + 1),
        ] {
            let err = check_name("table", name).expect_err(name);
            assert!(err.to_string().contains("lowercase ASCII"), "{err}");
        }
        assert!(check_name("schema", "pg_temp").is_err());
        assert!(check_name("table", "pg_sessions").is_ok());
    }
}
