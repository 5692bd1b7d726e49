//! Session IDs, the storage keys derived from them, and opaque handles.
//!
//! A [`SessionId`] is the secret the browser holds: 256 bits from the operating system's
//! CSPRNG, encoded base64url without padding (43 characters). Stores never see it. The layer
//! hashes it with SHA-256 into a [`StorageKey`], and that hash is all a backend keeps, so a
//! dump of Redis or of a sessions table holds no usable token.
//!
//! ```
//! use session_layer::id::{SessionId, StorageKey};
//!
//! let id = SessionId::generate();
//! let key: StorageKey = id.storage_key();
//! assert_eq!(key.to_hex().len(), 64);
//! // Debug output never shows the secret.
//! assert_eq!(format!("{id:?}"), "SessionId(REDACTED)");
//! ```

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::TryRngCore as _;
use sha2::{Digest, Sha256};

/// Random bytes in an ID: 256 bits, twice the 128 bits OWASP asks for.
const ID_BYTES: usize = 32;
/// Length of an encoded ID: 32 random bytes as base64url without padding.
pub const ID_LEN: usize = 43;

/// Each byte's value as a base64url digit, or `INVALID`.
const INVALID: u8 = 0xFF;
const DIGITS: [u8; 256] = {
    let mut table = [INVALID; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut i = 0;
    while i < alphabet.len() {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// The secret identifier of one session, as kept in the browser's cookie.
///
/// It is never printed: `Debug` says `REDACTED` and there is no `Display`. The only way to
/// get its text is [`SessionId::expose`], which the layer uses to write the cookie.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId([u8; ID_LEN]);

impl SessionId {
    /// A new ID from the operating system's CSPRNG.
    ///
    /// # Panics
    ///
    /// Panics if the operating system cannot supply random bytes; a server that cannot make
    /// unguessable IDs must not make guessable ones instead.
    #[must_use]
    pub fn generate() -> Self {
        Self(random_text::<ID_BYTES, ID_LEN>())
    }

    /// Parses the text of a cookie value, checking its shape first: exactly 43 characters of
    /// the base64url alphabet, the last of them one that 32 bytes can end with (so each ID
    /// has exactly one accepted spelling). Anything else is `None`, before any store sees it.
    ///
    /// ```
    /// use session_layer::id::SessionId;
    ///
    /// assert!(SessionId::parse(b"../x").is_none());
    /// assert!(SessionId::parse(b"' OR 1=1--").is_none());
    /// let id = SessionId::generate();
    /// assert_eq!(SessionId::parse(id.expose().as_bytes()), Some(id));
    /// ```
    #[must_use]
    pub fn parse(text: &[u8]) -> Option<Self> {
        let text: &[u8; ID_LEN] = text.try_into().ok()?;
        // The text is the ID: a shape check is all a cookie needs, and nothing is decoded.
        // The OR of every digit is INVALID's bit pattern only if some byte was not a digit.
        let seen = text.iter().fold(0u8, |seen, &b| seen | DIGITS[b as usize]);
        // 43 characters carry 258 bits: the last one's two low bits are padding, zero in
        // the one spelling `generate` writes.
        let last = DIGITS[text[ID_LEN - 1] as usize];
        (seen & 0xC0 == 0 && last & 0b11 == 0).then_some(Self(*text))
    }

    /// The cookie text of this ID. Handle it as a secret: never log it.
    #[must_use]
    pub fn expose(&self) -> String {
        self.text().to_owned()
    }

    /// The cookie text, borrowed.
    pub(crate) fn text(&self) -> &str {
        std::str::from_utf8(&self.0).expect("an ID is ASCII")
    }

    /// The key a store keeps this session under: SHA-256 of the ID.
    #[must_use]
    pub fn storage_key(&self) -> StorageKey {
        StorageKey(Sha256::digest(self.0).into())
    }
}

/// `B` bytes from the operating system's CSPRNG as their `T` characters of base64url
/// without padding.
///
/// # Panics
///
/// If the operating system cannot supply random bytes, or `T` is not `B`'s encoded length.
pub(crate) fn random_text<const B: usize, const T: usize>() -> [u8; T] {
    let mut bytes = [0u8; B];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random number generator failed");
    let mut text = [0u8; T];
    let written = URL_SAFE_NO_PAD
        .encode_slice(bytes, &mut text)
        .expect("T is long enough for B bytes");
    assert_eq!(written, T, "T is exactly B bytes' encoded length");
    text
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(REDACTED)")
    }
}

/// What a store keeps a session under: the SHA-256 of its [`SessionId`].
///
/// Knowing a storage key does not let anyone use the session: the layer only accepts the
/// ID, and hashes it itself. Stores may print it, index it and return it to users (as a
/// [`SessionHandle`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StorageKey([u8; 32]);

impl std::hash::Hash for StorageKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(&self.0);
    }
}

impl StorageKey {
    /// The 32 bytes of the hash, for stores that keep binary keys.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Builds a key from the 32 bytes a store kept.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Lowercase hex, 64 characters, for stores that keep text keys.
    #[must_use]
    pub fn to_hex(&self) -> String {
        use fmt::Write as _;
        let mut out = String::with_capacity(64);
        for b in self.0 {
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    /// Parses the output of [`StorageKey::to_hex`]; any other text is `None`.
    #[must_use]
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            if pair.iter().any(u8::is_ascii_uppercase) {
                return None;
            }
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(Self(out))
    }
}

impl fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorageKey({}…)", &self.to_hex()[..12])
    }
}

/// An opaque name for one of a user's sessions, safe to show in a page or put in a form.
///
/// It names a session for listing and revocation ("sign out that device") but cannot be
/// used as a cookie. It is the session's [`StorageKey`] in hex.
///
/// ```
/// use session_layer::id::{SessionHandle, SessionId};
///
/// let handle = SessionHandle::from(SessionId::generate().storage_key());
/// let text = handle.to_string();
/// assert_eq!(text.parse::<SessionHandle>().unwrap(), handle);
/// assert!("not a handle".parse::<SessionHandle>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionHandle(StorageKey);

impl SessionHandle {
    /// The storage key this handle names.
    #[must_use]
    pub fn storage_key(&self) -> StorageKey {
        self.0
    }
}

impl From<StorageKey> for SessionHandle {
    fn from(key: StorageKey) -> Self {
        Self(key)
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

impl std::str::FromStr for SessionHandle {
    type Err = InvalidHandle;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StorageKey::from_hex(s).map(Self).ok_or(InvalidHandle)
    }
}

impl serde::Serialize for SessionHandle {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The text given to [`SessionHandle::from_str`](std::str::FromStr) was not a handle.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InvalidHandle;

impl fmt::Display for InvalidHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a session handle: expected 64 lowercase hex characters")
    }
}

impl std::error::Error for InvalidHandle {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_ids_are_unique_well_formed_and_carry_256_bits() {
        let mut seen = std::collections::HashSet::with_capacity(1_000_000);
        for _ in 0..1_000_000 {
            let id = SessionId::generate();
            let text = id.expose();
            assert_eq!(text.len(), ID_LEN);
            assert!(text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            let decoded = URL_SAFE_NO_PAD.decode(&text).expect("base64url");
            assert_eq!(decoded.len(), ID_BYTES, "an ID carries 256 bits");
            assert!(seen.insert(id.0), "duplicate ID generated");
        }
    }

    #[test]
    fn parse_round_trips_and_rejects_every_other_shape() {
        let id = SessionId::generate();
        let text = id.expose();
        assert_eq!(SessionId::parse(text.as_bytes()), Some(id));
        for bad in [
            "",
            "*",
            "../x",
            "%00",
            "' OR 1=1--",
            "a*",
            "=",
            &"A".repeat(42),
            &"A".repeat(44),
        ] {
            assert!(
                SessionId::parse(bad.as_bytes()).is_none(),
                "{bad:?} accepted"
            );
        }
        assert!(SessionId::parse(&vec![b'a'; 10_000]).is_none());
        // Every byte outside the base64url alphabet, at the first, a middle and the last
        // place of an otherwise valid ID.
        let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        for bad in (0..=u8::MAX).filter(|b| !alphabet(*b)) {
            for at in [0, 21, 42] {
                let mut text = text.clone().into_bytes();
                text[at] = bad;
                assert!(SessionId::parse(&text).is_none(), "{bad:#x} at {at}");
            }
        }
        let mut with_nul = text.clone().into_bytes();
        with_nul[5] = 0;
        assert!(SessionId::parse(&with_nul).is_none());
        // A last character with non-zero trailing bits is a second spelling: refused.
        let mut alias = text.into_bytes();
        alias[42] = if alias[42] == b'B' { b'C' } else { b'B' };
        assert!(SessionId::parse(&alias).is_none());
    }

    #[test]
    fn storage_keys_round_trip_through_hex_and_never_equal_the_cookie() {
        let id = SessionId::generate();
        let key = id.storage_key();
        assert_eq!(StorageKey::from_hex(&key.to_hex()), Some(key));
        assert!(!key.to_hex().contains(&id.expose()));
        assert!(StorageKey::from_hex(&key.to_hex().to_uppercase()).is_none());
        assert!(!format!("{key:?}").contains(&key.to_hex()));
    }
}
