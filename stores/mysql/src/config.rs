//! Names the builder checks before anything reaches the database.

use std::fmt;

/// The longest table name accepted, in bytes. The derived names (`<table>_migrations`,
/// `<table>_expires_idx`) must still fit MySQL's 64-byte limit.
pub const MAX_NAME_LEN: usize = 48;

/// A setting of [`MySqlStoreBuilder`](crate::MySqlStoreBuilder) that cannot work.
///
/// ```
/// use session_layer_mysql::MySqlStore;
///
/// let err = MySqlStore::builder().with_table("sessions; DROP TABLE users").unwrap_err();
/// assert!(err.to_string().contains("table name"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("session-layer-mysql: ")?;
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Accepts `^[a-z_][a-z0-9_]*$` up to [`MAX_NAME_LEN`] bytes and nothing else.
///
/// The name is spliced into SQL (MySQL cannot bind identifiers), so only this shape gets
/// through. Lowercase only: MySQL's `lower_case_table_names` then makes no difference
/// between servers, and a DBA can type the name without backticks.
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
            "sess`ions",
            "sess-ions",
            "sessions ",
            "séssions",
            "app.sessions",
            &"a".repeat(MAX_NAME_LEN + 1),
        ] {
            let err = check_table_name(name).expect_err(name);
            assert!(err.to_string().contains("lowercase ASCII"), "{err}");
        }
    }
}
