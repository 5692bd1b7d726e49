//! [`Error`], what [`AuthSession`](crate::AuthSession) calls return.

use std::fmt;

use axum::response::{IntoResponse, Response};
use session_layer::SessionError;

use crate::AuthnBackend;

/// A sign-in, sign-out or user load failed: the session store or the user backend did.
///
/// As a response it is a server error (`500`, or `503` when the session store is
/// unreachable), never an anonymous success, so handlers can use `?` on it. The log line it
/// writes names the failure, never a session ID, a cookie or an auth hash.
#[non_exhaustive]
pub enum Error<Backend: AuthnBackend> {
    /// The session store failed (or a stored value could not be written).
    Session(SessionError),
    /// The user backend failed.
    Backend(Backend::Error),
}

impl<Backend: AuthnBackend> Error<Backend> {
    /// The HTTP status this error becomes as a response.
    #[must_use]
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::Session(e) => e.status(),
            Self::Backend(_) => http::StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl<Backend: AuthnBackend> fmt::Debug for Error<Backend> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Session(e) => f.debug_tuple("Session").field(e).finish(),
            Self::Backend(e) => f.debug_tuple("Backend").field(e).finish(),
        }
    }
}

impl<Backend: AuthnBackend> fmt::Display for Error<Backend> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Session(e) => e.fmt(f),
            Self::Backend(e) => write!(f, "user backend failed: {e}"),
        }
    }
}

impl<Backend: AuthnBackend> std::error::Error for Error<Backend>
where
    Backend::Error: 'static,
{
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Session(e) => Some(e),
            Self::Backend(e) => Some(e),
        }
    }
}

impl<Backend: AuthnBackend> From<SessionError> for Error<Backend> {
    fn from(e: SessionError) -> Self {
        Self::Session(e)
    }
}

impl<Backend: AuthnBackend> IntoResponse for Error<Backend> {
    fn into_response(self) -> Response {
        tracing::error!(target: "session_layer_auth", error = %self, "auth call failed");
        let status = self.status();
        (status, "authentication unavailable, try again later").into_response()
    }
}
