//! Signing keys and their states: `next` (published, not signing yet), `current` (signs),
//! `retired` (published, no longer signing).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{DecodingKey, EncodingKey};
use time::OffsetDateTime;

use crate::error::KeyError;

/// An Ed25519 signing key with its key ID (`kid`).
///
/// Generate one with [`SigningKey::generate`] and keep its PEM
/// ([`SigningKey::to_pkcs8_pem`]) in your secret store, or load one with
/// [`SigningKey::from_pkcs8_pem`] (`openssl genpkey -algorithm ed25519` makes one). Nothing
/// is written to disk by this crate. The key ID defaults to the public key's RFC 7638
/// thumbprint, so the same key always has the same `kid`.
///
/// The private key never appears in `Debug`, errors or logs:
///
/// ```
/// use session_layer_tokens::SigningKey;
///
/// let key = SigningKey::generate()?;
/// let pem = key.to_pkcs8_pem()?;
/// assert!(pem.expose().starts_with("-----BEGIN PRIVATE KEY-----"));
/// assert!(!format!("{key:?} {pem:?}").contains(pem.expose()));
///
/// let again = SigningKey::from_pkcs8_pem(pem.expose())?;
/// assert_eq!(again.kid(), key.kid());
/// # Ok::<(), session_layer_tokens::KeyError>(())
/// ```
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    secret: ed25519_dalek::SigningKey,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("private_key", &"REDACTED")
            .finish()
    }
}

impl SigningKey {
    /// A new key from the operating system's random number generator.
    ///
    /// # Errors
    ///
    /// [`KeyError::Random`] if the OS has no randomness to give.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut *bytes).map_err(|_| KeyError::Random)?;
        Self::from_secret(ed25519_dalek::SigningKey::from_bytes(&bytes))
    }

    /// Loads an Ed25519 private key from PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    ///
    /// # Errors
    ///
    /// [`KeyError::Pem`] if the text is not an Ed25519 PKCS#8 private key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let secret = ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map_err(|_| KeyError::Pem)?;
        Self::from_secret(secret)
    }

    fn from_secret(secret: ed25519_dalek::SigningKey) -> Result<Self, KeyError> {
        let der = secret.to_pkcs8_der().map_err(|_| KeyError::Pem)?;
        let encoding = EncodingKey::from_ed_der(der.as_bytes());
        let public = secret.verifying_key();
        let mut jwk = Jwk {
            common: CommonParameters {
                key_algorithm: Some(KeyAlgorithm::EdDSA),
                ..CommonParameters::default()
            },
            algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: URL_SAFE_NO_PAD.encode(public.as_bytes()),
            }),
        };
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| KeyError::Pem)?;
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_id = Some(kid.clone());
        let decoding = DecodingKey::from_ed_der(public.as_bytes());
        Ok(Self {
            kid,
            secret,
            encoding,
            decoding,
            jwk,
        })
    }

    /// The same key under another key ID.
    ///
    /// # Errors
    ///
    /// [`KeyError::BadKid`] for an empty ID or one longer than 128 characters.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Result<Self, KeyError> {
        let kid = kid.into();
        if kid.is_empty() || kid.len() > 128 {
            return Err(KeyError::BadKid);
        }
        self.jwk.common.key_id = Some(kid.clone());
        self.kid = kid;
        Ok(self)
    }

    /// The key ID tokens signed with this key carry in their header.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key as PKCS#8 PEM, to keep in your secret store.
    ///
    /// # Errors
    ///
    /// [`KeyError::Pem`] if encoding fails.
    pub fn to_pkcs8_pem(&self) -> Result<PrivateKeyPem, KeyError> {
        let pem = self
            .secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| KeyError::Pem)?;
        Ok(PrivateKeyPem(zeroize::Zeroizing::new(pem.to_string())))
    }

    /// The public half, as published in the key set.
    #[must_use]
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    pub(crate) fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    pub(crate) fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }
}

/// A private key in PKCS#8 PEM. `Debug` does not show it; [`PrivateKeyPem::expose`] does.
#[derive(Clone)]
pub struct PrivateKeyPem(zeroize::Zeroizing<String>);

impl PrivateKeyPem {
    /// The PEM text. Store it as a secret; never log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyPem(REDACTED)")
    }
}

/// Where a key is in its rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyState {
    /// Published, not signing yet: verifiers learn it before the first token it signs.
    Next,
    /// Signs every new token.
    Current,
    /// Published, no longer signing: the tokens it signed still verify until they expire.
    Retired,
}

/// One key of the issuer's set, as [`TokenIssuer::keys`](crate::TokenIssuer::keys) lists
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyStatus {
    /// The key ID.
    pub kid: String,
    /// Where the key is in its rotation.
    pub state: KeyState,
    /// When it entered that state.
    pub since: OffsetDateTime,
    /// For a `next` key, from when [`rotate`](crate::TokenIssuer::rotate) may make it
    /// current; for a `retired` key, from when [`prune`](crate::TokenIssuer::prune) removes
    /// it; `None` for the current key.
    pub ready_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) key: SigningKey,
    pub(crate) state: KeyState,
    pub(crate) since: OffsetDateTime,
}

/// The issuer's keys: one current, at most one next, any number retired.
#[derive(Debug, Clone)]
pub(crate) struct KeyRing {
    pub(crate) entries: Vec<Entry>,
}

impl KeyRing {
    pub(crate) fn current(&self) -> &Entry {
        self.entries
            .iter()
            .find(|e| e.state == KeyState::Current)
            .expect("a key ring always has a current key")
    }

    pub(crate) fn find(&self, kid: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key.kid() == kid)
    }

    pub(crate) fn add(&mut self, entry: Entry) -> Result<(), KeyError> {
        if self.find(entry.key.kid()).is_some() {
            return Err(KeyError::DuplicateKid);
        }
        if entry.state == KeyState::Next && self.entries.iter().any(|e| e.state == KeyState::Next) {
            return Err(KeyError::NextAlreadyPublished);
        }
        self.entries.push(entry);
        Ok(())
    }
}
