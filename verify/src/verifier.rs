//! [`Verifier`]: checks a token against the issuer's keys, its times, issuer and audience.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::claims::Claims;
use crate::clock::{unix_secs, Clock, SystemClock};
use crate::error::{BuildError, VerifyError};
use crate::keys::{CachePolicy, Keys, Remote, Source};

/// The longest token the verifier parses; session tokens are a few hundred bytes.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Checks tokens: the `EdDSA` signature against the issuer's published keys, `exp` and
/// `nbf` with a small leeway, `iss` and `aud`. Cheap to clone (clones share the key cache).
///
/// Checking offline is the trade you choose with it: no call to the issuing app per
/// request, but a token stays valid until its `exp` even if its session was revoked after
/// minting it (at most the issuer's configured lifetime, 5 minutes by default). A revoked
/// session mints no new token. Where a revocation must take effect at once, ask the
/// issuer's introspection endpoint about the token instead.
///
/// Build one per service with [`Verifier::builder`], then use it through
/// [`VerifyLayer`](crate::VerifyLayer), the [`Verified`](crate::Verified) extractor, or
/// [`Verifier::verify`] directly.
///
/// ```
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use session_layer_verify::{Verifier, VerifyError};
///
/// let jwks = r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1",
///     "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
/// let verifier = Verifier::builder("https://app.example")
///     .with_audience("billing")
///     .static_keys(jwks)
///     .build()
///     .await?;
/// let refused = verifier.verify("not.a.token").await;
/// assert!(matches!(refused, Err(VerifyError::Malformed)));
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audiences: Vec<String>,
    leeway: u64,
    source: Source,
    clock: Arc<dyn Clock>,
    validation: Validation,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.issuer)
            .field("audiences", &self.inner.audiences)
            .field("leeway_secs", &self.inner.leeway)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Starts a verifier for tokens whose `iss` is `issuer`.
    pub fn builder(issuer: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into(),
            audiences: Vec::new(),
            leeway: Duration::from_secs(10),
            jwks_url: None,
            static_keys: None,
            client: None,
            clock: Arc::new(SystemClock),
            policy: CachePolicy {
                default_max_age: Duration::from_secs(300),
                cooldown: Duration::from_secs(10),
                longest_max_age: Duration::from_secs(24 * 3600),
                max_stale: Duration::from_secs(3600),
                timeout: Duration::from_secs(5),
            },
        }
    }

    /// Verifies `token` and returns its claims, with the application claims as a JSON map.
    ///
    /// # Errors
    ///
    /// A [`VerifyError`] saying why the token was refused (see its variants), or
    /// [`VerifyError::KeysUnavailable`] when the key set could not be fetched for too long.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        self.verify_as(token).await
    }

    /// As [`verify`](Self::verify), with the application claims read into `T`.
    ///
    /// # Errors
    ///
    /// As [`verify`](Self::verify), and [`VerifyError::Claims`] if the application claims
    /// are not a `T`.
    pub async fn verify_as<T: DeserializeOwned>(
        &self,
        token: &str,
    ) -> Result<Claims<T>, VerifyError> {
        let claims = self.check(token).await.inspect_err(|e| {
            tracing::debug!(reason = e.reason(), "bearer token refused");
        })?;
        serde_json::from_value(Value::Object(claims)).map_err(VerifyError::Claims)
    }

    /// The whole check; the claims come back as the JSON the token carried.
    pub(crate) async fn check(&self, token: &str) -> Result<Map<String, Value>, VerifyError> {
        let inner = &*self.inner;
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => VerifyError::Algorithm,
            // `none` and names the JWT crate does not know fail to parse as a header at
            // all; say that the algorithm is the reason when it is.
            _ if names_another_algorithm(token) => VerifyError::Algorithm,
            _ => VerifyError::Malformed,
        })?;
        if header.alg != Algorithm::EdDSA {
            return Err(VerifyError::Algorithm);
        }
        let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
        let key = match &inner.source {
            Source::Static(keys) => keys.get(&kid).cloned().ok_or(VerifyError::UnknownKey)?,
            Source::Remote(remote) => remote.key(&kid, &*inner.clock).await?,
        };
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &inner.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => VerifyError::Signature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    VerifyError::Algorithm
                }
                _ => VerifyError::Malformed,
            })?;
        let claims = data.claims;
        let standard: Claims<serde::de::IgnoredAny> =
            serde_json::from_value(Value::Object(claims.clone()))
                .map_err(|_| VerifyError::Malformed)?;
        let now = unix_secs(inner.clock.now());
        if now >= standard.exp.saturating_add(inner.leeway) {
            return Err(VerifyError::Expired);
        }
        if now.saturating_add(inner.leeway) < standard.nbf {
            return Err(VerifyError::NotYetValid);
        }
        if standard.iss != inner.issuer {
            return Err(VerifyError::Issuer);
        }
        if !standard.aud.iter().any(|a| inner.audiences.contains(a)) {
            return Err(VerifyError::Audience);
        }
        Ok(claims)
    }
}

/// Whether the token's header, read as plain JSON, names an `alg` other than `EdDSA`.
fn names_another_algorithm(token: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Alg {
        alg: String,
    }
    let Some((header, _)) = token.split_once('.') else {
        return false;
    };
    URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|json| serde_json::from_slice::<Alg>(&json).ok())
        .is_some_and(|h| h.alg != "EdDSA")
}

/// Configures a [`Verifier`]; from [`Verifier::builder`].
#[must_use]
pub struct VerifierBuilder {
    issuer: String,
    audiences: Vec<String>,
    leeway: Duration,
    jwks_url: Option<String>,
    static_keys: Option<String>,
    client: Option<reqwest::Client>,
    clock: Arc<dyn Clock>,
    policy: CachePolicy,
}

impl fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("jwks_url", &self.jwks_url)
            .finish_non_exhaustive()
    }
}

impl VerifierBuilder {
    /// Accepts tokens whose `aud` holds `audience` (usually this service's name). Call it
    /// once per name accepted; at least once.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Fetches the key set from this JWKS URL (the issuer's `/.well-known/jwks.json`) at
    /// [`build`](Self::build), then again when its `Cache-Control: max-age` runs out.
    ///
    /// For an `https` URL, enable a TLS feature of `reqwest` in your own manifest (for
    /// example `reqwest = { version = "0.12", features = ["rustls-tls"] }`), or pass a
    /// client with [`with_http_client`](Self::with_http_client).
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// Uses this JWKS document and never fetches (for tests, or keys distributed by other
    /// means). Replaces [`jwks_url`](Self::jwks_url).
    pub fn static_keys(mut self, jwks_json: impl Into<String>) -> Self {
        self.static_keys = Some(jwks_json.into());
        self
    }

    /// The HTTP client for the JWKS fetches (its TLS, proxy and timeout settings). Default:
    /// a plain `reqwest::Client`.
    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// How far `exp` and `nbf` may be off, for clocks that differ a little. Default: 10
    /// seconds.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The least time between two fetches of the key set, whatever triggers them: a token
    /// naming an unknown `kid` refetches at most once per cooldown, so made-up `kid`s cannot
    /// flood the issuer. Default: 10 seconds.
    pub fn with_refetch_cooldown(mut self, cooldown: Duration) -> Self {
        self.policy.cooldown = cooldown;
        self
    }

    /// How long a fetched set is used when the response has no `Cache-Control: max-age`.
    /// Default: 5 minutes. A response's own `max-age` is used up to 24 hours.
    pub fn with_default_max_age(mut self, max_age: Duration) -> Self {
        self.policy.default_max_age = max_age;
        self
    }

    /// How long past its `max-age` the last good set is still used while fetches fail;
    /// after that, tokens cannot be checked ([`VerifyError::KeysUnavailable`]). Default: 1
    /// hour.
    pub fn with_max_stale(mut self, max_stale: Duration) -> Self {
        self.policy.max_stale = max_stale;
        self
    }

    /// The timeout of one fetch of the key set. Default: 5 seconds.
    pub fn with_fetch_timeout(mut self, timeout: Duration) -> Self {
        self.policy.timeout = timeout;
        self
    }

    /// Where the verifier gets the time. Default: [`SystemClock`].
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the verifier, fetching the key set a first time from the JWKS URL.
    ///
    /// # Errors
    ///
    /// [`BuildError`] for a missing issuer, audience or key source, a bad URL, a first
    /// fetch that failed, or static keys with no usable key.
    pub async fn build(self) -> Result<Verifier, BuildError> {
        if self.issuer.is_empty() {
            return Err(BuildError::NoIssuer);
        }
        if self.audiences.is_empty() {
            return Err(BuildError::NoAudience);
        }
        let source = match (self.static_keys, self.jwks_url) {
            (Some(json), _) => Source::Static(Arc::new(
                Keys::parse(json.as_bytes()).map_err(BuildError::StaticKeys)?,
            )),
            (None, Some(url)) => {
                let parsed = reqwest::Url::parse(&url).map_err(|_| BuildError::BadUrl)?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(BuildError::BadUrl);
                }
                let client = self.client.unwrap_or_default();
                Source::Remote(
                    Remote::start(url, client, self.policy, &*self.clock)
                        .await
                        .map_err(BuildError::Fetch)?,
                )
            }
            (None, None) => return Err(BuildError::NoKeySource),
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        // Times, issuer and audience are checked by `check`, against the verifier's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        Ok(Verifier {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                audiences: self.audiences,
                leeway: self.leeway.as_secs(),
                source,
                clock: self.clock,
                validation,
            }),
        })
    }
}
