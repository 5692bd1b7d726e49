//! Sealing a session record into a cookie value and opening it again.
//!
//! The record becomes a small text payload that carries its own format version, a random
//! session nonce, the times and the persistence flag as plain fields, then the data as JSON
//! (data only, never code), paired with the owner when the session has one:
//!
//! ```text
//! 5.<nonce>.<created>.<last seen - created>.<idle deadline - last seen>.<absolute deadline - created>.<signed in - created>.<idle timeout>.<0|1>.{<data>}
//! 5.<nonce>.<created>.<last seen - created>.<idle deadline - last seen>.<absolute deadline - created>.<signed in - created>.<idle timeout>.<0|1>.["<user>",{<data>}]
//! ```
//!
//! Times are milliseconds: `created` since the Unix epoch, the others as the differences
//! above, which take about half the digits. "Signed in" is when the session was created or
//! last rotated (a sign-in rotates it): the time the not-before checks compare, so the
//! first sign-in after a user's "sign out everywhere" lives although the session it rotated
//! is older. Every byte of the payload is paid for on every request that opens or seals it
//! (encryption, authentication, base64 both ways), so fixed fields before the JSON keep it
//! short and cheap to read. The idle timeout is the session's own, in milliseconds, and
//! empty when it has none (the layer's applies). Format 4 (no idle timeout field), format 3
//! (no sign-in time either: it is the creation time) and format 2 (every time since the
//! epoch, the owner always written as `[<user|null>,{<data>}]`, no sign-in time) are still
//! read.
//!
//! The `cookie` crate seals the payload: its private jar (AES-256-GCM, with the cookie name
//! as associated data) by default, or its signed jar (HMAC-SHA256) in signed-only mode,
//! where the payload is base64url so the value stays a legal cookie value. Keys come from
//! the [`KeyRing`], derived per mode, purpose and cookie name.
//!
//! [`KeyRing`]: super::KeyRing

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cookie::{Cookie, CookieJar, Key};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::clock::millis;
use crate::record::{Change, Metadata, Record};

/// The format of the sealed payload this crate writes.
const FORMAT_TEXT: &str = "5";
/// Earlier formats, still read so that sessions sealed before an upgrade stay valid: 4 has
/// no idle timeout of the session's own; 3 has no sign-in time either; 2 has none either,
/// writes times as absolute milliseconds and always writes the owner. A cookie of any
/// other version is rejected.
const FORMAT_4_TEXT: &str = "4";
const FORMAT_3_TEXT: &str = "3";
const FORMAT_2_TEXT: &str = "2";
/// Browsers keep a cookie only while its name and value together fit in this many bytes.
pub const MAX_COOKIE_BYTES: usize = 4096;
/// Random bytes of the session nonce: new at creation and at every rotation.
const NONCE_BYTES: usize = 16;
/// AES-GCM nonce and tag the private jar adds around the payload.
const PRIVATE_OVERHEAD: usize = 12 + 16;
/// The signed jar's prefix: an HMAC-SHA256 tag in padded base64.
const SIGNED_PREFIX: usize = 44;

/// How cookies are sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Authenticated encryption: the client can neither read nor change the session.
    Private,
    /// Authentication only: the client can read the session, not change it.
    Signed,
}

impl Mode {
    /// Names the mode in key derivation, so the two modes never share keys.
    pub(crate) fn label(self) -> &'static [u8] {
        match self {
            Self::Private => b"private:aes-256-gcm",
            Self::Signed => b"signed:hmac-sha256",
        }
    }

    /// The length of a sealed value holding `json` bytes of payload.
    pub(crate) fn sealed_len(self, json: usize) -> usize {
        match self {
            Self::Private => (json + PRIVATE_OVERHEAD).div_ceil(3) * 4,
            Self::Signed => SIGNED_PREFIX + (json * 4).div_ceil(3),
        }
    }

    /// Whether `value` could be a sealed value of this mode at all: checked before any
    /// decoding or cryptography, so junk costs next to nothing.
    pub(crate) fn has_shape(self, value: &[u8], max_len: usize) -> bool {
        let min = self.sealed_len(1);
        if value.len() < min || value.len() > max_len {
            return false;
        }
        match self {
            Self::Private => {
                let body = value
                    .strip_suffix(b"==")
                    .or_else(|| value.strip_suffix(b"="))
                    .unwrap_or(value);
                value.len().is_multiple_of(4) && all_in(body, STANDARD_ALPHABET)
            }
            Self::Signed => {
                let (tag, payload) = value.split_at(SIGNED_PREFIX);
                tag.ends_with(b"=")
                    && all_in(&tag[..SIGNED_PREFIX - 1], STANDARD_ALPHABET)
                    && all_in(payload, URL_SAFE_ALPHABET)
            }
        }
    }
}

/// Bit 0: in standard base64's alphabet; bit 1: in URL-safe base64's.
const BASE64_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() {
            table[b] = STANDARD_ALPHABET | URL_SAFE_ALPHABET;
        }
        b += 1;
    }
    table[b'+' as usize] = STANDARD_ALPHABET;
    table[b'/' as usize] = STANDARD_ALPHABET;
    table[b'-' as usize] = URL_SAFE_ALPHABET;
    table[b'_' as usize] = URL_SAFE_ALPHABET;
    table
};
const STANDARD_ALPHABET: u8 = 1;
const URL_SAFE_ALPHABET: u8 = 2;

/// Whether every byte is in the alphabet: one table lookup per byte, no early exit to branch
/// on, so the check costs the same for junk and for a good value.
fn all_in(bytes: &[u8], alphabet: u8) -> bool {
    bytes
        .iter()
        .fold(alphabet, |ok, b| ok & BASE64_CLASS[usize::from(*b)])
        == alphabet
}

/// The random nonce that makes each session's cookies distinct from every other's, even
/// with equal data; a rotation draws a new one. Kept as its base64url text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Nonce([u8; NONCE_TEXT]);

/// Characters of a nonce's base64url text.
const NONCE_TEXT: usize = (NONCE_BYTES * 4).div_ceil(3);

impl Nonce {
    pub(crate) fn generate() -> Self {
        Self(crate::id::random_text::<NONCE_BYTES, NONCE_TEXT>())
    }

    /// A stand-in of the right length, for measuring a payload before it is sealed.
    fn placeholder() -> Self {
        Self([b'A'; NONCE_TEXT])
    }

    /// The nonce a payload carried; it was written by [`generate`](Self::generate), so
    /// anything but 22 characters is not a payload of this format.
    fn read(text: &str) -> Option<Self> {
        text.as_bytes().try_into().ok().map(Self)
    }

    /// The nonce's text, to derive a revocation list's key from.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Writes the payload of `record`, signed in when it was created (see the module docs for
/// the format).
fn write_payload(record: &Record, nonce: &Nonce) -> String {
    write_payload_parts(
        &record.meta,
        record.meta.created,
        |out| write_data(record, None, out),
        nonce,
    )
}

/// Writes the payload of a record with metadata `m`, signed in at `signed_in`, and the
/// data `write_data` writes.
fn write_payload_parts(
    m: &Metadata,
    signed_in: OffsetDateTime,
    write_data: impl FnOnce(&mut Vec<u8>),
    nonce: &Nonce,
) -> String {
    let mut out = Vec::with_capacity(96 + NONCE_TEXT);
    out.extend_from_slice(FORMAT_TEXT.as_bytes());
    out.push(b'.');
    out.extend_from_slice(&nonce.0);
    let created = millis::of(m.created);
    let last_seen = millis::of(m.last_seen);
    let mut number = itoa::Buffer::new();
    for field in [
        created,
        last_seen - created,
        millis::of(m.idle_deadline) - last_seen,
        millis::of(m.absolute_deadline) - created,
        millis::of(signed_in) - created,
    ] {
        out.push(b'.');
        out.extend_from_slice(number.format(field).as_bytes());
    }
    out.push(b'.');
    if let Some(idle) = m.idle_timeout {
        let idle = i64::try_from(idle.whole_milliseconds()).unwrap_or(i64::MAX);
        out.extend_from_slice(number.format(idle).as_bytes());
    }
    out.extend_from_slice(if m.persistent { b".1." } else { b".0." });
    match m.user.as_deref() {
        None => write_data(&mut out),
        Some(user) => {
            // `["<user>",{<data>}]`, as `serde_json` writes a pair.
            out.push(b'[');
            serde_json::to_writer(&mut out, user).expect("a string always serializes");
            out.push(b',');
            write_data(&mut out);
            out.push(b']');
        }
    }
    String::from_utf8(out).expect("the payload is ASCII fields and JSON, so UTF-8")
}

/// Reads a payload `write_payload` wrote, or one of formats 4, 3 and 2: the record, its
/// nonce and when it was signed in. `None` for anything else.
fn read_payload(text: &str) -> Option<(Record, Nonce, OffsetDateTime)> {
    let mut rest = text;
    // The fixed fields end at a `.`; the JSON after the last of them may hold more.
    let mut field = || {
        let end = memchr::memchr(b'.', rest.as_bytes())?;
        let (field, tail) = (&rest[..end], &rest[end + 1..]);
        rest = tail;
        Some(field)
    };
    let (relative, has_signed_in, has_idle_timeout) = match field()? {
        FORMAT_TEXT => (true, true, true),
        FORMAT_4_TEXT => (true, true, false),
        FORMAT_3_TEXT => (true, false, false),
        FORMAT_2_TEXT => (false, false, false),
        _ => return None,
    };
    let nonce = Nonce::read(field()?)?;
    let mut number = || field()?.parse::<i64>().ok();
    let [created, mut last_seen, mut idle_deadline, mut absolute_deadline] =
        [number()?, number()?, number()?, number()?];
    let signed_in = if has_signed_in {
        created.checked_add(number()?)?
    } else {
        created
    };
    if relative {
        last_seen = created.checked_add(last_seen)?;
        idle_deadline = last_seen.checked_add(idle_deadline)?;
        absolute_deadline = created.checked_add(absolute_deadline)?;
    }
    let idle_timeout = match has_idle_timeout {
        true => match field()? {
            "" => None,
            ms => Some(time::Duration::milliseconds(
                ms.parse::<i64>().ok().filter(|ms| *ms >= 0)?,
            )),
        },
        false => None,
    };
    let persistent = match field()? {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    let (user, data): (Option<String>, Map<String, Value>) = if relative && rest.starts_with('{') {
        (None, serde_json::from_str(rest).ok()?)
    } else {
        serde_json::from_str(rest).ok()?
    };
    let [created, last_seen, idle_deadline, absolute_deadline, signed_in] = millis::from_each([
        created,
        last_seen,
        idle_deadline,
        absolute_deadline,
        signed_in,
    ])?;
    let meta = Metadata {
        created,
        last_seen,
        idle_deadline,
        absolute_deadline,
        persistent,
        user,
        idle_timeout,
    };
    Some((Record::from_parts(data, meta), nonce, signed_in))
}

/// The cookie name as the `cookie` crate takes it (`Cookie<'static>`), so that opening and
/// sealing a cookie allocate no copy of it. Each distinct name is kept once for the life of
/// the process (an app has one or a few), however many layers are built with it.
pub(super) fn interned(name: String) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = names.iter().find(|known| **known == name) {
        return known;
    }
    let name: &'static str = Box::leak(name.into_boxed_str());
    names.push(name);
    name
}

/// A record as a cookie opened it.
pub(crate) struct Opened {
    pub(crate) record: Record,
    pub(crate) nonce: Nonce,
    /// When the session was created or last rotated.
    pub(crate) signed_in: OffsetDateTime,
    /// Opened by a key other than the first: the response reseals it with the first.
    pub(crate) old_key: bool,
}

/// Seals and opens the session cookie of one layer.
pub(crate) struct Sealer {
    mode: Mode,
    /// Derived for this mode, purpose and cookie name; the first seals.
    keys: Vec<Key>,
    cookie_name: &'static str,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("mode", &self.mode)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl Sealer {
    pub(crate) fn new(mode: Mode, keys: Vec<Key>, cookie_name: String) -> Self {
        assert!(!keys.is_empty(), "a key ring is never empty");
        Self {
            mode,
            keys,
            cookie_name: interned(cookie_name),
        }
    }

    /// The longest cookie value that fits the browser budget next to the name.
    pub(crate) fn max_value_len(&self) -> usize {
        MAX_COOKIE_BYTES.saturating_sub(self.cookie_name.len())
    }

    /// Whether the request's cookie value is worth trying to open.
    pub(crate) fn has_shape(&self, value: &[u8]) -> bool {
        self.mode.has_shape(value, self.max_value_len())
    }

    /// How many bytes of name and value the cookie for `record` will take.
    pub(crate) fn cookie_len(&self, record: &Record) -> usize {
        let json = write_payload(record, &Nonce::placeholder()).len();
        self.cookie_name.len() + self.mode.sealed_len(json)
    }

    /// How many bytes of name and value a cookie whose payload is `json` bytes takes.
    pub(crate) fn cookie_len_for_json(&self, json: usize) -> usize {
        self.cookie_name.len() + self.mode.sealed_len(json)
    }

    /// Seals `record`, signed in when it was created, with the first key, or says how
    /// large the cookie would have been if it does not fit the browser budget.
    #[cfg(test)]
    pub(crate) fn seal(&self, record: &Record, nonce: &Nonce) -> Result<String, usize> {
        self.seal_with(
            &record.meta,
            record.meta.created,
            |out| write_data(record, None, out),
            nonce,
            str::to_owned,
        )
    }

    /// Seals a record given as metadata and data and hands the sealed value to `use_value`
    /// (which renders the `Set-Cookie`, say) where the jar holds it, without a copy; or says
    /// how large the cookie would have been if it does not fit the browser budget.
    pub(crate) fn seal_with<R>(
        &self,
        meta: &Metadata,
        signed_in: OffsetDateTime,
        write_data: impl FnOnce(&mut Vec<u8>),
        nonce: &Nonce,
        use_value: impl FnOnce(&str) -> R,
    ) -> Result<R, usize> {
        let payload = write_payload_parts(meta, signed_in, write_data, nonce);
        self.seal_text(payload, |value| {
            let len = self.cookie_name.len() + value.len();
            if len > MAX_COOKIE_BYTES {
                return Err(len);
            }
            Ok(use_value(value))
        })
    }

    fn seal_text<R>(&self, plaintext: String, use_value: impl FnOnce(&str) -> R) -> R {
        let key = &self.keys[0];
        let mut jar = CookieJar::new();
        match self.mode {
            Mode::Private => jar
                .private_mut(key)
                .add(Cookie::new(self.cookie_name, plaintext)),
            Mode::Signed => jar.signed_mut(key).add(Cookie::new(
                self.cookie_name,
                URL_SAFE_NO_PAD.encode(plaintext),
            )),
        }
        use_value(
            jar.get(self.cookie_name)
                .expect("the jar holds the cookie just added")
                .value(),
        )
    }

    /// Opens a cookie value that has the right shape. `None` for every kind of failure
    /// alike: no key opens it, it is not a payload of the current format, or it is not
    /// well-formed. Expiry is the caller's to check.
    pub(crate) fn open(&self, value: &str) -> Option<Opened> {
        let (opened, index) = self.keys.iter().enumerate().find_map(|(i, key)| {
            self.open_with(key, value, read_payload)
                .map(|opened| (opened, i))
        })?;
        let (record, nonce, signed_in) = opened?;
        Some(Opened {
            record,
            nonce,
            signed_in,
            old_key: index > 0,
        })
    }

    /// Hands the plaintext to `read` where the opened cookie holds it, or `None` if `key`
    /// does not open `value`.
    fn open_with<R>(&self, key: &Key, value: &str, read: impl FnOnce(&str) -> R) -> Option<R> {
        let jar = CookieJar::new();
        let cookie = Cookie::new(self.cookie_name, value.to_owned());
        match self.mode {
            Mode::Private => jar.private(key).decrypt(cookie).map(|c| read(c.value())),
            Mode::Signed => {
                let bytes = URL_SAFE_NO_PAD.decode(jar.signed(key).verify(cookie)?.value());
                Some(read(std::str::from_utf8(&bytes.ok()?).ok()?))
            }
        }
    }

    /// Seals any text with the first key, as if it were a payload; for tests and the fuzz
    /// target, to reach the payload parser behind the cryptography.
    pub(crate) fn seal_raw(&self, plaintext: &str) -> String {
        self.seal_text(plaintext.to_owned(), str::to_owned)
    }
}

/// Writes `record`'s data, with `change`'s data applied if given, as a compact JSON object,
/// without building the changed map: the entries the change leaves alone, then the ones it
/// sets.
pub(super) fn write_data(record: &Record, change: Option<&Change>, out: &mut Vec<u8>) {
    let changed = Changed {
        data: record.data(),
        change,
    };
    serde_json::to_writer(out, &changed).expect("a JSON map of JSON values always serializes");
}

/// A map with a change applied, as it serializes.
struct Changed<'a> {
    data: &'a Map<String, Value>,
    change: Option<&'a Change>,
}

impl serde::Serialize for Changed<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let change = self.change;
        let mut map = serializer.serialize_map(None)?;
        if !change.is_some_and(|c| c.clear) {
            // `set` and `remove` never share a key, so `lookup` names every key they touch.
            for (key, value) in self.data {
                if change.is_none_or(|c| c.lookup(key).is_none()) {
                    map.serialize_entry(key, value)?;
                }
            }
        }
        for (key, value) in change.map_or(&[][..], |c| &c.set[..]) {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}
