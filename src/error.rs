//! The errors a handler sees from [`Session`](crate::Session) calls.

use std::error::Error;
use std::fmt;

use crate::store::{StoreError, StoreErrorKind};

/// A session call failed. Returned from the [`Session`](crate::Session) methods; with the
/// `axum` feature it is also a response (a `500`, or `503` when the store is unreachable), so
/// handlers can use `?` on it.
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionError {
    /// The store failed; the session is neither lost nor replaced by an empty one.
    Store(StoreError),
    /// A value could not be turned into JSON, or the stored JSON is not the type asked for.
    Serde {
        /// The key the value is stored under.
        key: String,
        /// What went wrong, as serde classified it ([`classify`](serde_json::Error::classify),
        /// [`line`](serde_json::Error::line), [`column`](serde_json::Error::column)), with a
        /// message that names the types involved and never the value: serde's own message
        /// often quotes it (`invalid type: string "…"`), and apps log errors.
        source: serde_json::Error,
    },
    /// The write would make the session larger than the layer's limit.
    TooLarge {
        /// What was exceeded, and by how much.
        detail: String,
    },
    /// An expiry given to one session ([`Session::set_idle_timeout`],
    /// [`Session::set_expires_at`]) that the layer cannot keep; nothing was changed.
    ///
    /// [`Session::set_idle_timeout`]: crate::Session::set_idle_timeout
    /// [`Session::set_expires_at`]: crate::Session::set_expires_at
    Expiry {
        /// What was refused, and the limit.
        detail: String,
    },
    /// In client-side mode, the write would make the session's cookie (name and sealed
    /// value) larger than the 4,096 bytes browsers keep; nothing was written.
    CookieTooLarge {
        /// How many bytes the cookie would have taken.
        bytes: usize,
    },
}

impl SessionError {
    /// The stored `value` under `key` is not a `T`.
    pub(crate) fn unreadable<T>(
        key: &str,
        value: &serde_json::Value,
        source: serde_json::Error,
    ) -> Self {
        let found = match value {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "boolean",
            serde_json::Value::Number(_) => "number",
            serde_json::Value::String(_) => "string",
            serde_json::Value::Array(_) => "array",
            serde_json::Value::Object(_) => "object",
        };
        Self::Serde {
            key: key.to_owned(),
            source: redacted(
                source,
                format_args!(
                    "the stored value is a JSON {found} that does not read as `{}`",
                    std::any::type_name::<T>()
                ),
            ),
        }
    }

    /// A `T` to store under `key` could not become JSON.
    pub(crate) fn unwritable<T: ?Sized>(key: &str, source: serde_json::Error) -> Self {
        Self::Serde {
            key: key.to_owned(),
            source: redacted(
                source,
                format_args!(
                    "the `{}` to store could not become JSON",
                    std::any::type_name::<T>()
                ),
            ),
        }
    }
}

/// `source` with its message replaced by `what`, when the message could quote a value.
///
/// Only a data error carries free text (serde's `invalid type: string "…"`, or whatever a
/// `Serialize` or `Deserialize` impl wrote); serde_json's other errors are fixed messages
/// ("key must be a string") and are kept as they are. A data error from a parsed value has
/// no position (line and column 0), which the replacement keeps.
fn redacted(source: serde_json::Error, what: std::fmt::Arguments<'_>) -> serde_json::Error {
    if source.classify() != serde_json::error::Category::Data {
        return source;
    }
    <serde_json::Error as serde::de::Error>::custom(format_args!(
        "{what} (serde's message is withheld, since it may quote the value)"
    ))
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => write!(f, "session unavailable: {e}"),
            Self::Serde { key, .. } => write!(
                f,
                "session value {key:?} could not be (de)serialized; check that it is read as \
                 the type it was written as"
            ),
            Self::TooLarge { detail } => write!(
                f,
                "session too large: {detail}; keep large data in your own tables and store \
                 only a reference in the session, or raise the layer's limit"
            ),
            Self::Expiry { detail } => write!(f, "session expiry refused: {detail}"),
            Self::CookieTooLarge { bytes } => write!(
                f,
                "client-side session too large: its cookie would take {bytes} bytes, over the \
                 4096 browsers keep; keep large data in your own tables, or use a server-side \
                 store (SessionLayer::new)"
            ),
        }
    }
}

impl Error for SessionError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Store(e) => Some(e),
            Self::Serde { source, .. } => Some(source),
            Self::TooLarge { .. } | Self::Expiry { .. } | Self::CookieTooLarge { .. } => None,
        }
    }
}

impl From<StoreError> for SessionError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl SessionError {
    /// The HTTP status this error becomes as a response.
    #[must_use]
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::Store(e)
                if matches!(
                    e.kind(),
                    StoreErrorKind::Unavailable | StoreErrorKind::Timeout | StoreErrorKind::Full
                ) =>
            {
                http::StatusCode::SERVICE_UNAVAILABLE
            }
            _ => http::StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for SessionError {
    fn into_response(self) -> axum::response::Response {
        tracing::error!(target: "session_layer", error = %self, "session call failed");
        (self.status(), "session unavailable").into_response()
    }
}
