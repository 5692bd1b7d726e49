//! [`TokenIssuer`]: mints tokens from live sessions and keeps the rotating key set.

use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, Header};
use serde_json::Value;
use session_layer::clock::{Clock, SystemClock};
use session_layer::id::SessionHandle;
use session_layer::Session;
use sha2::Sha256;
use time::OffsetDateTime;

use crate::error::{ConfigError, KeyError, MintError};
use crate::keys::{Entry, KeyRing, KeyState, KeyStatus, SigningKey};
use crate::token::{Token, TokenRequest, RESERVED};

/// What tells a `sid` of this crate apart from any other use of the same secret.
const SID_CONTEXT: &[u8] = b"session-layer-tokens sid v1\0";

/// Mints short-lived tokens from live, signed-in sessions, and holds the key set they are
/// signed with. Configure it once with [`TokenIssuer::builder`]; clones share the key set.
///
/// ```
/// use session_layer_tokens::{SigningKey, TokenIssuer};
///
/// let issuer = TokenIssuer::builder("https://app.example", SigningKey::generate()?)
///     .with_audience("billing")
///     .with_sid_secret([7u8; 32]) // from your secret store in a real app
///     .build()?;
/// assert_eq!(issuer.jwks().keys.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TokenIssuer {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audiences: Vec<String>,
    lifetime: Duration,
    max_lifetime: Duration,
    jwks_max_age: Duration,
    removal_margin: Duration,
    sid_mac: Hmac<Sha256>,
    keys: RwLock<KeyRing>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("TokenIssuer")
            .field("issuer", &inner.issuer)
            .field("audiences", &inner.audiences)
            .field("lifetime", &inner.lifetime)
            .field("max_lifetime", &inner.max_lifetime)
            .field("jwks_max_age", &inner.jwks_max_age)
            .field("keys", &self.keys())
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// Starts an issuer whose tokens carry `iss: issuer` and are signed with `current`.
    pub fn builder(issuer: impl Into<String>, current: SigningKey) -> TokenIssuerBuilder {
        TokenIssuerBuilder {
            issuer: issuer.into(),
            audiences: Vec::new(),
            lifetime: Duration::from_secs(300),
            max_lifetime: Duration::from_secs(900),
            jwks_max_age: Duration::from_secs(300),
            removal_margin: Duration::from_secs(60),
            sid_secret: None,
            current,
            others: Vec::new(),
            clock: Arc::new(SystemClock),
        }
    }

    fn ring(&self) -> RwLockReadGuard<'_, KeyRing> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn ring_mut(&self) -> RwLockWriteGuard<'_, KeyRing> {
        self.inner
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now(&self) -> OffsetDateTime {
        session_layer::clock::to_millis(self.inner.clock.now())
    }

    /// The issuer (`iss`) of every token.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The `Cache-Control: max-age` the JWKS endpoint sends.
    #[must_use]
    pub fn jwks_max_age(&self) -> Duration {
        self.inner.jwks_max_age
    }

    /// The lifetime of a token whose request names none.
    #[must_use]
    pub fn lifetime(&self) -> Duration {
        self.inner.lifetime
    }

    /// The longest lifetime a token may have: the most a token outlives the revocation of
    /// the session that minted it.
    #[must_use]
    pub fn max_lifetime(&self) -> Duration {
        self.inner.max_lifetime
    }

    /// Mints a token for every configured audience with the default lifetime.
    ///
    /// # Errors
    ///
    /// As [`mint_with`](Self::mint_with).
    pub async fn mint(&self, session: &Session) -> Result<Token, MintError> {
        self.mint_with(session, TokenRequest::new()).await
    }

    /// Mints a token from `session`, which must be live in its store and signed in.
    ///
    /// The token carries `iss`, `aud`, `sub` (the session's user), `sid` (an opaque handle
    /// of the session: a keyed hash of it, never its ID), `iat`, `nbf`, `exp`, `jti` and the
    /// request's application claims. Its `exp` is the request's lifetime from now, but never
    /// after the session's own deadline.
    ///
    /// Mint on a request after the one that signed the user in (or rotated the session's
    /// ID): until the layer saves the session under its new ID, it is not live in the store.
    ///
    /// Once minted, the token is out of the session's hands: revoking the session stops
    /// further mints, but this token stays valid until its `exp` (at most
    /// [`max_lifetime`](Self::max_lifetime)). Services that must see a revocation at once
    /// use the [introspection endpoint](crate::introspection_router).
    ///
    /// # Errors
    ///
    /// [`MintError::Anonymous`], [`MintError::NotSaved`] or [`MintError::Ended`] for a
    /// session that may not mint (see [`MintError::is_not_signed_in`]);
    /// [`MintError::Session`] if the store failed; [`MintError::UnknownAudience`],
    /// [`MintError::BadLifetime`] or [`MintError::ReservedClaim`] for a request the issuer
    /// does not allow.
    pub async fn mint_with(
        &self,
        session: &Session,
        request: TokenRequest,
    ) -> Result<Token, MintError> {
        let minted = self.try_mint(session, request).await;
        match &minted {
            Ok(_) => tracing::debug!("minted a session token"),
            Err(error) => tracing::debug!(%error, "no session token minted"),
        }
        minted
    }

    async fn try_mint(&self, session: &Session, request: TokenRequest) -> Result<Token, MintError> {
        let inner = &*self.inner;
        let audiences = match request.audiences {
            Some(asked) => {
                if asked.is_empty() || asked.iter().any(|a| !inner.audiences.contains(a)) {
                    return Err(MintError::UnknownAudience);
                }
                asked
            }
            None => inner.audiences.clone(),
        };
        let lifetime = request.lifetime.unwrap_or(inner.lifetime);
        if lifetime.is_zero() || lifetime > inner.max_lifetime {
            return Err(MintError::BadLifetime);
        }
        if let Some(name) = request
            .claims
            .keys()
            .find(|k| RESERVED.contains(&k.as_str()))
        {
            return Err(MintError::ReservedClaim(name.clone()));
        }

        let user = session.user().await?.ok_or(MintError::Anonymous)?;
        let handle = session.handle().ok_or(MintError::NotSaved)?;
        let meta = session.metadata().await?;
        // The store is the judge of whether the session still lives: a revocation from
        // another request shows here, not in this request's loaded copy.
        let stored = session
            .user_sessions()
            .await?
            .into_iter()
            .find(|info| info.handle == handle)
            .ok_or(MintError::Ended)?;
        let now = self.now();
        // A session destroyed in this request and signed in again is a new session that
        // is not saved yet, though its old record is still listed.
        if stored.meta.created != meta.created || !stored.meta.is_live(now) {
            return Err(MintError::Ended);
        }

        let iat = now.unix_timestamp();
        let exp = (now + lifetime).min(stored.meta.expires()).unix_timestamp();
        if exp <= iat {
            return Err(MintError::Ended);
        }
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|_| MintError::Random)?;
        let jti = URL_SAFE_NO_PAD.encode(jti);

        let mut claims = request.claims;
        claims.insert("iss".into(), Value::from(inner.issuer.clone()));
        claims.insert(
            "aud".into(),
            match <[String; 1]>::try_from(audiences) {
                Ok([one]) => Value::from(one),
                Err(many) => Value::from(many),
            },
        );
        claims.insert("sub".into(), Value::from(user));
        claims.insert("sid".into(), Value::from(self.sid(&handle)));
        claims.insert("iat".into(), Value::from(iat));
        claims.insert("nbf".into(), Value::from(iat));
        claims.insert("exp".into(), Value::from(exp));
        claims.insert("jti".into(), Value::from(jti));

        let value = {
            let ring = self.ring();
            let key = &ring.current().key;
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = Some(key.kid().to_owned());
            jsonwebtoken::encode(&header, &claims, key.encoding()).map_err(MintError::Sign)?
        };
        Ok(Token::new(
            value,
            OffsetDateTime::from_unix_timestamp(exp).expect("a deadline in range"),
        ))
    }

    /// The `sid` tokens minted from the session under `handle` carry: HMAC-SHA256, under the
    /// issuer's sid secret, of the handle. It names the session without revealing its ID
    /// or storage key, and is the same on every instance that shares the secret.
    #[must_use]
    pub fn sid(&self, handle: &SessionHandle) -> String {
        let mut mac = self.inner.sid_mac.clone();
        mac.update(SID_CONTEXT);
        mac.update(handle.to_string().as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// The public key set, as the JWKS endpoint serves it: every `next`, `current` and
    /// `retired` key.
    #[must_use]
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self
                .ring()
                .entries
                .iter()
                .map(|e| e.key.public_jwk().clone())
                .collect(),
        }
    }

    /// Every key with its state, oldest first.
    #[must_use]
    pub fn keys(&self) -> Vec<KeyStatus> {
        let inner = &*self.inner;
        self.ring()
            .entries
            .iter()
            .map(|e| KeyStatus {
                kid: e.key.kid().to_owned(),
                state: e.state,
                since: e.since,
                ready_at: match e.state {
                    KeyState::Next => Some(e.since + inner.jwks_max_age),
                    KeyState::Current => None,
                    KeyState::Retired => Some(e.since + self.retired_for()),
                },
            })
            .collect()
    }

    /// How long a retired key stays published: every token it signed has expired, and so
    /// has every verifier's cached copy of the set that still promised it.
    fn retired_for(&self) -> Duration {
        let inner = &*self.inner;
        inner.max_lifetime + inner.jwks_max_age + inner.removal_margin
    }

    /// Publishes `key` as the `next` key: it appears in the key set now and signs from the
    /// next [`rotate`](Self::rotate).
    ///
    /// # Errors
    ///
    /// [`KeyError::NextAlreadyPublished`] if there is a next key already,
    /// [`KeyError::DuplicateKid`] if its ID is taken.
    pub fn publish_next(&self, key: SigningKey) -> Result<(), KeyError> {
        let now = self.now();
        self.ring_mut().add(Entry {
            key,
            state: KeyState::Next,
            since: now,
        })?;
        tracing::info!("published the next token signing key");
        Ok(())
    }

    /// Makes the `next` key current and retires the current one, once the next key has been
    /// published for a whole JWKS cache time ([`jwks_max_age`](Self::jwks_max_age)), so
    /// every verifier already has it.
    ///
    /// # Errors
    ///
    /// [`KeyError::NoNextKey`] without a next key, [`KeyError::NextNotReady`] before it
    /// has been published long enough.
    pub fn rotate(&self) -> Result<(), KeyError> {
        self.rotate_inner(false)
    }

    /// As [`rotate`](Self::rotate), without waiting for verifiers' caches: for a compromised
    /// current key. Verifiers that have not seen the next key yet refetch the set on its
    /// first token (at most once per their cooldown).
    ///
    /// # Errors
    ///
    /// [`KeyError::NoNextKey`] without a next key.
    pub fn rotate_now(&self) -> Result<(), KeyError> {
        self.rotate_inner(true)
    }

    fn rotate_inner(&self, now_anyway: bool) -> Result<(), KeyError> {
        let now = self.now();
        let mut ring = self.ring_mut();
        let next = ring
            .entries
            .iter()
            .position(|e| e.state == KeyState::Next)
            .ok_or(KeyError::NoNextKey)?;
        let ready_at = ring.entries[next].since + self.inner.jwks_max_age;
        if !now_anyway && now < ready_at {
            return Err(KeyError::NextNotReady { ready_at });
        }
        for entry in &mut ring.entries {
            if entry.state == KeyState::Current {
                entry.state = KeyState::Retired;
                entry.since = now;
            }
        }
        ring.entries[next].state = KeyState::Current;
        ring.entries[next].since = now;
        tracing::info!("rotated the token signing key");
        Ok(())
    }

    /// Removes the retired keys that no token still needs: retired for longer than the
    /// maximum token lifetime plus the JWKS cache time plus a margin for verifiers' leeway.
    /// Returns the IDs of the keys removed. Call it now and then (a timer, or next to
    /// [`rotate`](Self::rotate)).
    pub fn prune(&self) -> Vec<String> {
        let now = self.now();
        let keep_for = self.retired_for();
        let mut removed = Vec::new();
        self.ring_mut().entries.retain(|e| {
            let gone = e.state == KeyState::Retired && now >= e.since + keep_for;
            if gone {
                removed.push(e.key.kid().to_owned());
            }
            !gone
        });
        if !removed.is_empty() {
            tracing::info!(count = removed.len(), "removed retired token signing keys");
        }
        removed
    }

    /// The public key of `kid`, in any state, for the introspection endpoint.
    pub(crate) fn decoding_key(&self, kid: &str) -> Option<jsonwebtoken::DecodingKey> {
        self.ring().find(kid).map(|e| e.key.decoding().clone())
    }

    pub(crate) fn now_for_store(&self) -> OffsetDateTime {
        self.now()
    }
}

/// Configures a [`TokenIssuer`]; from [`TokenIssuer::builder`].
#[must_use]
pub struct TokenIssuerBuilder {
    issuer: String,
    audiences: Vec<String>,
    lifetime: Duration,
    max_lifetime: Duration,
    jwks_max_age: Duration,
    removal_margin: Duration,
    sid_secret: Option<Vec<u8>>,
    current: SigningKey,
    others: Vec<(SigningKey, KeyState, Option<OffsetDateTime>)>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for TokenIssuerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuerBuilder")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl TokenIssuerBuilder {
    /// A service that verifies the tokens (`aud`). Call once per service; at least once.
    /// [`mint`](TokenIssuer::mint) addresses tokens to all of them,
    /// [`TokenRequest::with_audience`] to some.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The lifetime of a token when the request names none. Default: 5 minutes.
    ///
    /// This is the trade you choose here: a revoked session mints no new token, but a token
    /// it already minted stays valid until its `exp`, up to this long after the revocation
    /// (never past the session's own deadline). Services that need a revocation to take
    /// effect at once ask the [introspection endpoint](crate::introspection_router)
    /// instead of relying on the token alone.
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The longest lifetime a [`TokenRequest`] may ask for; it also decides how long a
    /// retired key stays published. Default: 15 minutes.
    ///
    /// It bounds how long any token outlives a revocation of its session: a revoked session
    /// mints nothing more, but each token already minted stays valid until its `exp`.
    pub fn with_max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = max;
        self
    }

    /// How long verifiers may cache the key set (`Cache-Control: max-age` of the JWKS
    /// endpoint). A next key signs no sooner, and a retired key is removed no sooner, than
    /// this after its change. Default: 5 minutes.
    pub fn with_jwks_max_age(mut self, max_age: Duration) -> Self {
        self.jwks_max_age = max_age;
        self
    }

    /// The secret the tokens' `sid` is keyed with: 32 bytes or more, random, kept in your
    /// secret store and the same on every instance of the app (otherwise `sid`s differ
    /// between instances and across restarts). Required.
    pub fn with_sid_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.sid_secret = Some(secret.as_ref().to_vec());
        self
    }

    /// A key already published as `next` (after a restart).
    pub fn with_next_key(mut self, key: SigningKey) -> Self {
        self.others.push((key, KeyState::Next, None));
        self
    }

    /// A key retired at `retired_at`, still published until [`TokenIssuer::prune`] removes
    /// it (after a restart).
    pub fn with_retired_key(mut self, key: SigningKey, retired_at: OffsetDateTime) -> Self {
        self.others.push((key, KeyState::Retired, Some(retired_at)));
        self
    }

    /// Where the issuer gets the time. Default: the system clock.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the issuer.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for an empty issuer, no audience, a lifetime that is zero or over the
    /// maximum, a missing or short sid secret, or keys that clash.
    pub fn build(self) -> Result<TokenIssuer, ConfigError> {
        if self.issuer.is_empty() {
            return Err(ConfigError::NoIssuer);
        }
        if self.audiences.is_empty() {
            return Err(ConfigError::NoAudience);
        }
        if self.lifetime.is_zero() || self.lifetime > self.max_lifetime {
            return Err(ConfigError::BadLifetime);
        }
        let secret = self
            .sid_secret
            .filter(|s| s.len() >= 32)
            .ok_or(ConfigError::SidSecret)?;
        let sid_mac = Hmac::<Sha256>::new_from_slice(&secret).expect("HMAC takes any key length");
        let now = session_layer::clock::to_millis(self.clock.now());
        let mut ring = KeyRing {
            entries: vec![Entry {
                key: self.current,
                state: KeyState::Current,
                since: now,
            }],
        };
        for (key, state, since) in self.others {
            ring.add(Entry {
                key,
                state,
                since: since.unwrap_or(now),
            })
            .map_err(ConfigError::Key)?;
        }
        Ok(TokenIssuer {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                audiences: self.audiences,
                lifetime: self.lifetime,
                max_lifetime: self.max_lifetime,
                jwks_max_age: self.jwks_max_age,
                removal_margin: self.removal_margin,
                sid_mac,
                keys: RwLock::new(ring),
                clock: self.clock,
            }),
        })
    }
}
