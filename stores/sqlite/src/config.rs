//! The table name, checked before anything reaches the database.

use std::fmt;

/// The longest table name accepted, in bytes (room for the derived `<table>_migrations`,
/// `<table>_expires_idx` and `<table>_user_id_idx`).
pub const MAX_NAME_LEN: usize = 48;

/// A setting of [`SqliteStoreBuilder`](crate::SqliteStoreBuilder) that cannot work.
///
/// ```
/// use session_layer_sqlite::SqliteStore;
///
/// let err = SqliteStore::builder().with_table("sessions; DROP TABLE users").unwrap_err();
/// assert!(err.to_string().contains("table name"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("session-layer-sqlite: ")?;
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Accepts `^[a-z_][a-z0-9_]*$` up to [`MAX_NAME_LEN`] bytes, not starting with `sqlite_`.
///
/// The name is spliced into SQL (SQLite cannot bind identifiers), so only this shape gets
/// through.
pub(crate) fn check_table_name(name: &str) -> Result<(), ConfigError> {
    let bytes = name.as_bytes();
    let shape_ok = !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && (bytes[0].is_ascii_lowercase() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
    if !shape_ok {
        return Err(ConfigError {
            message: format!(
                "the table name {name:?} is not accepted: use 1 to {MAX_NAME_LEN} lowercase \
                 ASCII letters, digits and underscores, starting with a letter or an underscore"
            ),
        });
    }
    if name.starts_with("sqlite_") {
        return Err(ConfigError {
            message: format!(
                "the table name {name:?} is reserved: SQLite keeps names starting with sqlite_ \
                 for itself"
            ),
        });
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
            assert!(check_table_name(name).is_ok(), "{name} refused");
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
            "main.sessions",
            &"a".repeat(MAX_NAME_LEN + 1),
        ] {
            let err = check_table_name(name).expect_err(name);
            assert!(err.to_string().contains("lowercase ASCII"), "{err}");
        }
        assert!(check_table_name("sqlite_sessions").is_err());
    }
}
