//! Why a token was not minted, why a key could not be used, why an issuer could not be
//! built.

use std::error::Error;
use std::fmt;

use session_layer::SessionError;
use time::OffsetDateTime;

/// A session could not mint a token. No token was made.
#[derive(Debug)]
#[non_exhaustive]
pub enum MintError {
    /// The session has no signed-in user: the request carried no session, or it was signed
    /// out (destroyed) in this request, or it ended before this request. A session revoked
    /// or expired before the request arrived is gone from the store, so the layer hands the
    /// request a new, anonymous one: to this crate it looks the same as never signed in.
    Anonymous,
    /// The session is new in this request and not stored yet: it has no handle until the
    /// layer saves it. Mint on a later request.
    NotSaved,
    /// The session has a user but is not live in the store under that user: revoked or
    /// expired since this request loaded it, destroyed and signed in again in this
    /// request, or its user was set in this request and is not saved yet (mint on a later
    /// request).
    Ended,
    /// The session could not be read.
    Session(SessionError),
    /// The audience asked for is not one the issuer was configured with.
    UnknownAudience,
    /// The lifetime asked for is longer than the issuer's maximum, or zero.
    BadLifetime,
    /// An application claim uses the name of a standard one (`iss`, `aud`, `sub`, `sid`,
    /// `iat`, `nbf`, `exp`, `jti`).
    ReservedClaim(String),
    /// The OS had no randomness for the token's `jti`.
    Random,
    /// Signing failed.
    Sign(jsonwebtoken::errors::Error),
}

impl MintError {
    /// Whether the error is the session's state (anonymous, not saved, ended) rather than a
    /// fault: the caller should answer `401`, not `500`.
    #[must_use]
    pub fn is_not_signed_in(&self) -> bool {
        matches!(self, Self::Anonymous | Self::NotSaved | Self::Ended)
    }
}

impl fmt::Display for MintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str(
                "no token: the session has no signed-in user (never signed in, signed out, or \
                 revoked or expired before this request)",
            ),
            Self::NotSaved => f.write_str(
                "no token: the session is not saved yet; mint on a request after sign-in",
            ),
            Self::Ended => f.write_str(
                "no token: the session is not live in the store (revoked, expired or destroyed \
                 during this request, or signed in during it and not saved yet)",
            ),
            Self::Session(_) => f.write_str("no token: the session could not be read"),
            Self::UnknownAudience => f.write_str(
                "no token: the audience is not one of the issuer's; add it with `with_audience`",
            ),
            Self::BadLifetime => {
                f.write_str("no token: the lifetime is zero or longer than the issuer's maximum")
            }
            Self::ReservedClaim(name) => write!(
                f,
                "no token: the application claim {name:?} has the name of a standard claim"
            ),
            Self::Random => f.write_str("no token: the OS random number generator failed"),
            Self::Sign(_) => f.write_str("no token: signing failed"),
        }
    }
}

impl Error for MintError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Session(e) => Some(e),
            Self::Sign(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SessionError> for MintError {
    fn from(e: SessionError) -> Self {
        Self::Session(e)
    }
}

/// A key could not be loaded, or a rotation step is not allowed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not an Ed25519 private key in PKCS#8 PEM.
    Pem,
    /// The OS had no randomness to generate a key.
    Random,
    /// A key ID must be 1 to 128 characters.
    BadKid,
    /// The set already has a key with this ID.
    DuplicateKid,
    /// The set already has a `next` key: rotate it in first.
    NextAlreadyPublished,
    /// There is no `next` key to make current: publish one first.
    NoNextKey,
    /// The `next` key has not been published for a whole JWKS cache time yet: verifiers
    /// may not know it. Rotate from `ready_at`, or use `rotate_now` if the current key is
    /// compromised.
    NextNotReady {
        /// From when the rotation is safe.
        ready_at: OffsetDateTime,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pem => f.write_str("not an Ed25519 private key in PKCS#8 PEM"),
            Self::Random => f.write_str("the OS random number generator failed"),
            Self::BadKid => f.write_str("a key ID must be 1 to 128 characters"),
            Self::DuplicateKid => f.write_str("the key set already has a key with this ID"),
            Self::NextAlreadyPublished => {
                f.write_str("a next key is already published; rotate it in first")
            }
            Self::NoNextKey => f.write_str("no next key to rotate in; publish one first"),
            Self::NextNotReady { ready_at } => write!(
                f,
                "the next key is not published long enough for verifiers' caches; rotate \
                 from {ready_at}, or use rotate_now if the current key is compromised"
            ),
        }
    }
}

impl Error for KeyError {}

/// A [`TokenIssuer`](crate::TokenIssuer) could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The issuer (`iss`) is empty.
    NoIssuer,
    /// No audience: call `with_audience` with the name of a service that will verify tokens.
    NoAudience,
    /// The default lifetime is zero or longer than the maximum.
    BadLifetime,
    /// No secret, or one shorter than 32 bytes, for the tokens' `sid`. Call
    /// `with_sid_secret` with 32 random bytes kept in your secret store, the same on every
    /// instance of the app.
    SidSecret,
    /// A key given at build could not be added.
    Key(KeyError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoIssuer => f.write_str("the issuer (`iss`) is empty"),
            Self::NoAudience => f.write_str(
                "no audience: call `with_audience` with the name of a service that verifies tokens",
            ),
            Self::BadLifetime => {
                f.write_str("the token lifetime is zero or longer than the maximum")
            }
            Self::SidSecret => f.write_str(
                "no sid secret of 32 bytes or more: call `with_sid_secret` with random bytes from \
                 your secret store, the same on every instance",
            ),
            Self::Key(e) => write!(f, "a key could not be added: {e}"),
        }
    }
}

impl Error for ConfigError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Key(e) => Some(e),
            _ => None,
        }
    }
}
