//! Why a token was refused, why the key set could not be fetched, and why a verifier could
//! not be built.

use std::error::Error;
use std::fmt;

use http::{header, HeaderValue, StatusCode};

/// A request's token was refused, or could not be checked.
///
/// Every variant but [`KeysUnavailable`](Self::KeysUnavailable) and
/// [`NotConfigured`](Self::NotConfigured) is the client's problem and becomes a `401` with
/// `WWW-Authenticate: Bearer` (and `error="invalid_token"` when a token was sent), as
/// RFC 6750 asks. Neither the token nor any key is ever part of the message.
#[derive(Debug)]
#[non_exhaustive]
pub enum VerifyError {
    /// The request has no `Authorization: Bearer` token.
    Missing,
    /// The token is not a well-formed JWT of the expected shape (header, claims or
    /// encoding), or it is too long.
    Malformed,
    /// The token's `alg` is not `EdDSA` (`none`, `HS256` and every other algorithm are
    /// refused).
    Algorithm,
    /// The token names a key (`kid`) the issuer does not publish, even after the one
    /// refetch the cooldown allows.
    UnknownKey,
    /// The signature does not match the token under the key it names.
    Signature,
    /// The token's `exp` has passed (beyond the leeway).
    Expired,
    /// The token's `nbf` lies in the future (beyond the leeway).
    NotYetValid,
    /// The token's `iss` is not the issuer this verifier trusts.
    Issuer,
    /// None of the token's `aud` values is an audience this verifier accepts.
    Audience,
    /// The application claims do not have the shape the handler asked for.
    Claims(serde_json::Error),
    /// The key set could not be fetched for longer than the verifier keeps a stale one; the
    /// token could not be checked. A `503`: the client's token may well be good.
    KeysUnavailable(FetchError),
    /// The extractor found neither a `VerifyLayer` nor a `Verifier` in the request's
    /// extensions. A `500`: add the layer, or `Extension(verifier)`.
    NotConfigured,
}

impl VerifyError {
    /// The HTTP status this error becomes as a response: `401`, except `503` for
    /// [`KeysUnavailable`](Self::KeysUnavailable) and `500` for
    /// [`NotConfigured`](Self::NotConfigured).
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::KeysUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// A short, fixed reason, for logs and the `error_description` of the response.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "no bearer token",
            Self::Malformed => "malformed token",
            Self::Algorithm => "algorithm not allowed",
            Self::UnknownKey => "unknown signing key",
            Self::Signature => "bad signature",
            Self::Expired => "token expired",
            Self::NotYetValid => "token not yet valid",
            Self::Issuer => "wrong issuer",
            Self::Audience => "wrong audience",
            Self::Claims(_) => "unexpected claims",
            Self::KeysUnavailable(_) => "signing keys unavailable",
            Self::NotConfigured => "no verifier configured",
        }
    }

    /// The `WWW-Authenticate` value for a `401`, or `None` for the other statuses.
    #[must_use]
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        match self {
            Self::Missing => Some(HeaderValue::from_static("Bearer")),
            _ if self.status() == StatusCode::UNAUTHORIZED => Some(
                HeaderValue::try_from(format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    self.reason()
                ))
                .expect("fixed ASCII text"),
            ),
            _ => None,
        }
    }

    /// This error as a response: the status, `WWW-Authenticate` where it applies, and the
    /// reason as plain text.
    #[must_use]
    pub fn to_response<B: From<&'static str>>(&self) -> http::Response<B> {
        let mut res = http::Response::new(B::from(self.reason()));
        *res.status_mut() = self.status();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(value) = self.www_authenticate() {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        res
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => {
                f.write_str("no bearer token: send it as `Authorization: Bearer <token>`")
            }
            Self::UnknownKey => f.write_str(
                "token signed by a key the issuer does not publish: it was made up, or its key \
                 was removed after every token it signed had expired",
            ),
            Self::Claims(_) => f.write_str(
                "token verified, but its application claims are not the type the handler asked \
                 for",
            ),
            Self::KeysUnavailable(_) => f.write_str(
                "the issuer's key set could not be fetched and the last one is too old to use; \
                 check that the JWKS URL is reachable",
            ),
            Self::NotConfigured => f.write_str(
                "no verifier for this request: add `VerifyLayer` or `Extension(verifier)` to the \
                 router",
            ),
            _ => write!(f, "token refused: {}", self.reason()),
        }
    }
}

impl Error for VerifyError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Claims(e) => Some(e),
            Self::KeysUnavailable(e) => Some(e),
            _ => None,
        }
    }
}

/// Fetching the key set from its JWKS URL failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum FetchError {
    /// The request failed (connection, timeout, body).
    Http(reqwest::Error),
    /// The server answered with a status other than `200`.
    Status(StatusCode),
    /// The body is larger than the verifier reads.
    TooLarge,
    /// The body is not a JWKS document (`{"keys": [...]}`).
    Json(serde_json::Error),
    /// The document holds no Ed25519 signing key with a `kid`.
    NoUsableKeys,
    /// The last fetch failed and the cooldown has not passed yet: no new fetch was tried.
    RecentlyFailed,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(_) => f.write_str("fetching the key set failed"),
            Self::Status(status) => write!(f, "the key set URL answered {status}"),
            Self::TooLarge => f.write_str("the key set document is too large"),
            Self::Json(_) => f.write_str("the key set is not a JWKS document"),
            Self::NoUsableKeys => {
                f.write_str("the key set holds no Ed25519 (OKP) key with a `kid`")
            }
            Self::RecentlyFailed => f.write_str(
                "the last fetch of the key set failed; the next one is tried after the cooldown",
            ),
        }
    }
}

impl Error for FetchError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Http(e) => Some(e),
            Self::Json(e) => Some(e),
            _ => None,
        }
    }
}

/// A [`Verifier`](crate::Verifier) could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// No issuer, or an empty one: every token's `iss` must be checked.
    NoIssuer,
    /// No audience: every token's `aud` must be checked. Call `with_audience`.
    NoAudience,
    /// Neither `jwks_url` nor `static_keys` was given.
    NoKeySource,
    /// The JWKS URL does not parse as an `http` or `https` URL.
    BadUrl,
    /// The first fetch of the key set failed; the verifier would refuse every token.
    Fetch(FetchError),
    /// The static key set is not usable.
    StaticKeys(FetchError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoIssuer => f.write_str("no issuer: pass the `iss` the tokens carry"),
            Self::NoAudience => {
                f.write_str("no audience: call `with_audience` with this service's name")
            }
            Self::NoKeySource => f.write_str("no key set: call `jwks_url` or `static_keys`"),
            Self::BadUrl => f.write_str("the JWKS URL is not an http(s) URL"),
            Self::Fetch(e) => write!(f, "the first fetch of the key set failed: {e}"),
            Self::StaticKeys(e) => write!(f, "the static key set is not usable: {e}"),
        }
    }
}

impl Error for BuildError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Fetch(e) | Self::StaticKeys(e) => Some(e),
            _ => None,
        }
    }
}
