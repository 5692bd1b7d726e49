//! A minted [`Token`], and what a [`TokenRequest`] asks of one.

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};
use time::OffsetDateTime;

/// The claims the issuer sets itself; an application claim may not use their names.
pub(crate) const RESERVED: [&str; 8] = ["iss", "aud", "sub", "sid", "iat", "nbf", "exp", "jti"];

/// A minted token: a compact JWT for an `Authorization: Bearer` header.
///
/// `Debug` does not show it; [`Token::as_str`] does. Never log it.
#[derive(Clone)]
pub struct Token {
    value: String,
    expires_at: OffsetDateTime,
}

impl Token {
    pub(crate) fn new(value: String, expires_at: OffsetDateTime) -> Self {
        Self { value, expires_at }
    }

    /// The token text, to hand to the client.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The token text, owned.
    #[must_use]
    pub fn into_string(self) -> String {
        self.value
    }

    /// When the token expires (its `exp`).
    #[must_use]
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("value", &"REDACTED")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What a token should carry beyond the standard claims: its audience, lifetime and
/// application claims. The default is every configured audience, the default lifetime and
/// no application claims.
///
/// ```
/// use std::time::Duration;
/// use session_layer_tokens::TokenRequest;
///
/// let request = TokenRequest::new()
///     .with_audience("billing")
///     .with_lifetime(Duration::from_secs(60))
///     .with_claim("roles", serde_json::json!(["admin"]));
/// # let _ = request;
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct TokenRequest {
    pub(crate) audiences: Option<Vec<String>>,
    pub(crate) lifetime: Option<Duration>,
    pub(crate) claims: Map<String, Value>,
}

impl TokenRequest {
    /// A request for the defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Addresses the token to `audience`, which must be one of the issuer's. Call once per
    /// audience; without a call, the token is for all of the issuer's audiences.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences
            .get_or_insert_with(Vec::new)
            .push(audience.into());
        self
    }

    /// The token's lifetime, at most the issuer's maximum. Default: the issuer's lifetime.
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some(lifetime);
        self
    }

    /// Adds an application claim. The name may not be a standard claim's.
    pub fn with_claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.claims.insert(name.into(), value.into());
        self
    }
}
