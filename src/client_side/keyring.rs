//! [`KeyRing`]: the secret keys that seal and open client-side session cookies.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use rand::TryRngCore as _;

use crate::config::ConfigError;

/// The least key material accepted, in bytes: what a [`cookie::Key`] holds.
pub const MIN_KEY_LEN: usize = 64;
/// The most keys a ring holds. A cookie no key opens costs one attempt per key, so a long
/// ring makes forged cookies dearer to reject; retire keys once their cookies have expired.
pub const MAX_KEYS: usize = 16;

/// The secret keys of client-side sessions: the first key seals every cookie the layer
/// sends, and every key opens cookies the layer receives.
///
/// To rotate keys without signing anyone out, put the new key first and keep the old one
/// after it: cookies sealed with the old key still open, and each is resealed with the new
/// key in the response of the request that opened it. Remove the old key once the longest
/// session lifetime (the absolute timeout) has passed; cookies only it opens are then
/// rejected, and their requests are anonymous.
///
/// Keys are raw secret bytes, at least [`MIN_KEY_LEN`] of them, from a CSPRNG (for example
/// `openssl rand -base64 64`, loaded with [`KeyRing::from_base64`]). Every byte counts: the
/// layer derives its sealing keys from the whole of each key with HKDF-SHA256. A ring is
/// refused if it is empty, if a key appears twice, or if a key is too short or visibly not
/// random: one byte repeated (an all-zero placeholder), printable text (a passphrase, or a
/// key passed still in base64), the same byte more than seven times in a row, or fewer than
/// 32 distinct byte values. A real random key fails these checks with a chance below
/// 10^-15. There is no fallback key.
///
/// # When to rotate
///
/// Rotate the first key before it has sealed 2^32 (about 4.3 billion) cookies. Encrypted
/// cookies use AES-256-GCM with a random 96-bit nonce per seal, and past 2^32 seals under
/// one key the chance that two seals share a nonce passes the 2^-32 that NIST SP 800-38D
/// allows; a shared nonce lets an attacker forge cookies under that key. Every response
/// that sets the cookie is one seal: a new session, a write, a rotation, and a touch once
/// per touch step. At 1,000 seals a second the bound is reached in about 50 days; at 100 a
/// second, in about 16 months. The count is per key, per purpose and per cookie name (each
/// layer derives its own sealing key), and signed-only cookies (HMAC-SHA256) have no such
/// bound, but rotating at least that often costs nothing: old cookies keep opening.
///
/// A key ring is never printed: `Debug` shows only how many keys it holds.
///
/// ```
/// use session_layer::KeyRing;
///
/// # let new_key: Vec<u8> = (0u8..64).collect();
/// # let old_key: Vec<u8> = (64u8..128).collect();
/// // The new key seals; cookies sealed with the old one still open, and are resealed.
/// let ring = KeyRing::new([&new_key, &old_key])?;
/// assert_eq!(format!("{ring:?}"), "KeyRing { keys: 2, .. }");
///
/// let err = KeyRing::new([&new_key[..32]]).unwrap_err();
/// assert!(err.to_string().contains("at least 64 random bytes"));
/// # Ok::<(), session_layer::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<Box<[u8]>>,
}

impl KeyRing {
    /// A ring of `keys`, in order: the first seals, all of them open.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] if there is no key or more than [`MAX_KEYS`], if a key is shorter
    /// than [`MIN_KEY_LEN`] bytes or visibly not random (see [`KeyRing`]), or if two keys
    /// are equal. The message says which key, and never quotes it.
    ///
    /// ```
    /// use session_layer::KeyRing;
    ///
    /// # let (current, previous) = (
    /// #     (0u8..64).collect::<Vec<u8>>(),
    /// #     (64u8..128).collect::<Vec<u8>>(),
    /// # );
    /// let ring = KeyRing::new([current, previous])?;
    /// assert_eq!(ring.len(), 2);
    ///
    /// assert!(KeyRing::new(Vec::<Vec<u8>>::new()).is_err());
    /// assert!(KeyRing::new([[0u8; 64]]).is_err());
    /// // A passphrase is text, not random bytes.
    /// let passphrase = "correct horse battery staple, and then some more words to pad it";
    /// let err = KeyRing::new([passphrase]).unwrap_err();
    /// assert!(err.to_string().contains("openssl rand -base64 64"));
    /// # Ok::<(), session_layer::ConfigError>(())
    /// ```
    pub fn new<I>(keys: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let keys: Vec<Box<[u8]>> = keys.into_iter().map(|k| k.as_ref().into()).collect();
        let bad = |why: String| Err(ConfigError::new(format!("client-side session keys: {why}")));
        if keys.is_empty() {
            return bad(
                "no key given; pass at least one key of 64 random bytes (there is no fallback key)"
                    .into(),
            );
        }
        if keys.len() > MAX_KEYS {
            return bad(format!(
                "{} keys given, more than {MAX_KEYS}; remove keys whose cookies have expired",
                keys.len()
            ));
        }
        for (i, key) in keys.iter().enumerate() {
            let n = i + 1;
            if key.len() < MIN_KEY_LEN {
                return bad(format!(
                    "key {n} is {} bytes long; use at least {MIN_KEY_LEN} random bytes \
                     (for example `openssl rand -base64 64`)",
                    key.len()
                ));
            }
            if let Some(why) = not_random(key) {
                return bad(format!(
                    "key {n} {why}, so it is not random bytes; generate each key with \
                     `openssl rand -base64 64` and load that text with KeyRing::from_base64"
                ));
            }
            if keys[..i].iter().any(|earlier| earlier == key) {
                return bad(format!(
                    "key {n} repeats an earlier key; list each key once"
                ));
            }
        }
        Ok(Self { keys })
    }

    /// A ring from keys written in standard base64 (padding and whitespace, such as the
    /// line breaks `openssl rand -base64 64` prints, are allowed), as they are usually kept
    /// in environment variables or secret stores.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] if a key is not base64 (the message never quotes it), or for any
    /// reason [`KeyRing::new`] gives.
    ///
    /// ```
    /// use session_layer::KeyRing;
    ///
    /// // In an app: KeyRing::from_base64([std::env::var("SESSION_KEY")?])?
    /// let ring = KeyRing::from_base64([
    ///     "xBy82L2PRACm0o8c9IXEDaF2JJ64bVKOCIasxZzxJDKqutcul8iqsPZZaOakMCRp
    ///      dzd01npr/IeUKV/fjzBMtQ==",
    /// ])?;
    /// assert_eq!(ring.len(), 1);
    /// assert!(KeyRing::from_base64(["not base64!"]).is_err());
    /// # Ok::<(), session_layer::ConfigError>(())
    /// ```
    pub fn from_base64<I>(keys: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut decoded = Vec::new();
        for (i, text) in keys.into_iter().enumerate() {
            let compact: String = text
                .as_ref()
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            let bytes = STANDARD
                .decode(&compact)
                .or_else(|_| STANDARD_NO_PAD.decode(&compact))
                .map_err(|_| {
                    ConfigError::new(format!(
                        "client-side session keys: key {} is not standard base64; \
                         give the output of `openssl rand -base64 64`",
                        i + 1
                    ))
                })?;
            decoded.push(bytes);
        }
        Self::new(decoded)
    }

    /// A ring of one fresh random key of [`MIN_KEY_LEN`] bytes. Sessions sealed with it end
    /// when the process does: use it for tests and local development only.
    ///
    /// # Panics
    ///
    /// Panics if the operating system cannot supply random bytes.
    ///
    /// ```
    /// use session_layer::{KeyRing, SessionLayer};
    ///
    /// let layer = SessionLayer::client_side(KeyRing::generate());
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn generate() -> Self {
        let mut key = vec![0u8; MIN_KEY_LEN];
        loop {
            rand::rngs::OsRng
                .try_fill_bytes(&mut key)
                .expect("the operating system's random number generator failed");
            // Held to the checks of `new` like any other key; a draw that fails them is
            // rarer than one in 10^15.
            if not_random(&key).is_none() {
                return Self {
                    keys: vec![key.into()],
                };
            }
        }
    }

    /// How many keys the ring holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always `false`: a ring holds at least one key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The ring's keys, the sealing key first, each derived for one use: this sealing mode,
    /// this purpose and this cookie name. Keys for another mode, purpose or cookie name are
    /// unrelated, so a value sealed for one never opens as another.
    pub(crate) fn derive(&self, mode: &[u8], purpose: &str, cookie_name: &str) -> Vec<cookie::Key> {
        self.keys
            .iter()
            .map(|material| derive_key(material, mode, purpose, cookie_name))
            .collect()
    }
}

/// The same byte this many times in a row is refused: 64 random bytes hold such a run
/// with a chance of about 10^-15.
const LONGEST_RUN: usize = 7;
/// Fewer distinct byte values than this in a key is refused: 64 random bytes take about 56,
/// and fewer than 32 with a chance far below 10^-15.
const FEWEST_VALUES: usize = 32;

/// Why `key` is visibly not random bytes from a CSPRNG, if it is. Each test refuses a real
/// random key of at least [`MIN_KEY_LEN`] bytes with a chance far below 10^-15, and never
/// names the key's contents.
fn not_random(key: &[u8]) -> Option<String> {
    if key.iter().all(|b| *b == key[0]) {
        return Some("is one byte repeated (a placeholder?)".into());
    }
    // Random bytes are all printable ASCII with a chance of (95/256)^64, about 10^-28.
    if key.iter().all(|b| (b' '..=b'~').contains(b)) {
        return Some("is printable text (a passphrase, or a key still in base64 or hex?)".into());
    }
    let longest = key
        .chunk_by(|a, b| a == b)
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    if longest > LONGEST_RUN {
        return Some(format!("repeats one byte {longest} times in a row"));
    }
    let mut seen = [false; 256];
    for b in key {
        seen[usize::from(*b)] = true;
    }
    let values = seen.iter().filter(|s| **s).count();
    if values < FEWEST_VALUES.min(key.len() / 2) {
        return Some(format!("uses only {values} distinct byte values"));
    }
    None
}

/// HKDF-SHA256 (RFC 5869) of `material`, with the use spelled out, length-prefixed, in the
/// `info` input. `cookie::Key::derive_from` takes no such context, hence `hkdf` here.
fn derive_key(material: &[u8], mode: &[u8], purpose: &str, cookie_name: &str) -> cookie::Key {
    const SALT: &[u8] = b"session-layer client-side sessions";
    let purpose_len = u32::try_from(purpose.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes();
    let name_len = u32::try_from(cookie_name.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes();
    let mut okm = [0u8; MIN_KEY_LEN];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(SALT), material)
        .expand_multi_info(
            &[
                b"v1;",
                mode,
                b";",
                &purpose_len,
                purpose.as_bytes(),
                &name_len,
                cookie_name.as_bytes(),
            ],
            &mut okm,
        )
        .expect("64 bytes is a valid HKDF-SHA256 output length");
    cookie::Key::try_from(&okm[..]).expect("64 bytes make a cookie::Key")
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}
