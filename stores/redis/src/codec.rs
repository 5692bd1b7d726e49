//! How a record is laid out in its Redis string (format 2).
//!
//! One string per session: a fixed-width ASCII header, the owner, then the data.
//!
//! | bytes | holds |
//! | --- | --- |
//! | 0 | format version, `2` |
//! | 1–3 | header length in bytes, three digits (`097`; `080` before the idle timeout field); the owner starts there |
//! | 4–19, 20–35, 36–51, 52–67 | created, last seen, idle deadline, absolute deadline: Unix milliseconds, 16 digits each |
//! | 68 | `1` for a persistent session, `0` otherwise |
//! | 69 | `1` if the session has an owner, `0` otherwise |
//! | 70–79 | the owner's length in bytes, 10 digits |
//! | 80 | `1` if the session has an idle timeout of its own, `0` otherwise |
//! | 81–96 | that idle timeout in milliseconds, 16 digits (zeros without one) |
//! | header length … | the owner (UTF-8), then one entry per data key: `<key length>:<key><value length>:<value's JSON text>` |
//!
//! The header length lets a later minor version append header fields that older readers
//! skip; a change older readers must not ignore gets a new version byte. A value that
//! starts with anything else is not a session: `N` is the short-lived note a rotation
//! leaves under the old key, `T` the marker a revocation leaves under a key it found
//! empty; both read as absent.

use std::io::Write as _;

use serde_json::{Map, Value};
use session_layer::record::{Metadata, Record};
use time::OffsetDateTime;

/// The format version this crate writes and reads.
pub(crate) const VERSION: u8 = b'2';
/// The length of the header this crate writes.
pub(crate) const HEADER: usize = 97;
/// The shortest header a format-2 value has: the first release wrote no idle timeout of a
/// session's own (bytes 80–96), and such a value reads as a session without one.
const SHORTEST_HEADER: usize = 80;
/// The first byte of a rotation's forwarding note.
pub(crate) const NOTE: u8 = b'N';
/// The first byte of a revocation's marker.
pub(crate) const TOMBSTONE: u8 = b'T';

/// The largest integer a Lua number (a double) holds exactly: times are kept within it.
pub(crate) const LUA_MAX_EXACT: i64 = (1 << 53) - 1;

/// A record that cannot be read: an unknown format version or a damaged field.
#[derive(Debug)]
pub(crate) struct Malformed(pub(crate) &'static str);

/// What a session key holds, as the layer sees it.
#[derive(Debug)]
pub(crate) enum Stored {
    /// Nothing, a rotation's note or a revocation's marker: no session.
    Absent,
    /// A readable record (live or not: the caller checks).
    Record(Record),
}

/// Unix milliseconds of `t` (the layer's times are whole milliseconds), within what the
/// header and a Lua number hold.
pub(crate) fn millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
        .clamp(0, LUA_MAX_EXACT)
}

fn from_millis(ms: i64) -> Result<OffsetDateTime, Malformed> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| Malformed("a time field is out of range"))
}

fn digits(text: &[u8]) -> Result<i64, Malformed> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return Err(Malformed("a header field is not a number"));
    }
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Malformed("a header field is out of range"))
}

/// The JSON text of a value.
pub(crate) fn json(value: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail: its map keys are strings already.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Appends one data entry: `<key length>:<key><value length>:<value>`.
pub(crate) fn push_entry(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let _ = write!(out, "{}:", key.len());
    out.extend_from_slice(key);
    let _ = write!(out, "{}:", value.len());
    out.extend_from_slice(value);
}

/// The whole value of `record`.
pub(crate) fn encode(record: &Record) -> Vec<u8> {
    let meta = &record.meta;
    let owner = meta.user.as_deref().unwrap_or_default();
    let mut out = Vec::with_capacity(HEADER + owner.len() + 64);
    out.push(VERSION);
    let _ = write!(out, "{HEADER:03}");
    for t in [
        meta.created,
        meta.last_seen,
        meta.idle_deadline,
        meta.absolute_deadline,
    ] {
        let _ = write!(out, "{:016}", millis(t));
    }
    out.push(if meta.persistent { b'1' } else { b'0' });
    out.push(if meta.user.is_some() { b'1' } else { b'0' });
    let _ = write!(out, "{:010}", owner.len());
    match meta.idle_timeout {
        Some(idle) => {
            let ms = i64::try_from(idle.whole_milliseconds()).unwrap_or(i64::MAX);
            let _ = write!(out, "1{:016}", ms.clamp(0, LUA_MAX_EXACT));
        }
        None => out.extend_from_slice(b"00000000000000000"),
    }
    out.extend_from_slice(owner.as_bytes());
    for (key, value) in record.data() {
        push_entry(&mut out, key.as_bytes(), &json(value));
    }
    out
}

/// The metadata at the start of a format-2 value, and where its data starts.
pub(crate) fn decode_meta(value: &[u8]) -> Result<(Metadata, usize), Malformed> {
    if value.first() != Some(&VERSION) {
        return Err(Malformed("unknown record format version"));
    }
    if value.len() < SHORTEST_HEADER {
        return Err(Malformed("the header is cut short"));
    }
    let header = usize::try_from(digits(&value[1..4])?)
        .map_err(|_| Malformed("the header length is damaged"))?;
    if header < SHORTEST_HEADER || header > value.len() {
        return Err(Malformed("the header length is damaged"));
    }
    let time = |at: usize| digits(&value[at..at + 16]).and_then(from_millis);
    let persistent = match value[68] {
        b'1' => true,
        b'0' => false,
        _ => return Err(Malformed("the persistence flag is damaged")),
    };
    let owned = match value[69] {
        b'1' => true,
        b'0' => false,
        _ => return Err(Malformed("the owner flag is damaged")),
    };
    let owner_len = usize::try_from(digits(&value[70..80])?)
        .map_err(|_| Malformed("the owner's length is damaged"))?;
    let data_at = header
        .checked_add(owner_len)
        .filter(|end| *end <= value.len())
        .ok_or(Malformed("the owner's length is damaged"))?;
    let user = if owned {
        Some(
            String::from_utf8(value[header..data_at].to_vec())
                .map_err(|_| Malformed("the user is not UTF-8"))?,
        )
    } else if owner_len == 0 {
        None
    } else {
        return Err(Malformed("an owner without the owner flag"));
    };
    let idle_timeout = if header < HEADER {
        None
    } else {
        let ms = digits(&value[81..97])?;
        match value[80] {
            b'1' => Some(time::Duration::milliseconds(ms)),
            b'0' => None,
            _ => return Err(Malformed("the idle timeout flag is damaged")),
        }
    };
    let meta = Metadata {
        created: time(4)?,
        last_seen: time(20)?,
        idle_deadline: time(36)?,
        absolute_deadline: time(52)?,
        persistent,
        user,
        idle_timeout,
    };
    Ok((meta, data_at))
}

/// Reads one `<length>:` prefix at `at`: the length and where what it measures starts.
fn length_at(value: &[u8], at: usize) -> Result<(usize, usize), Malformed> {
    let colon = value[at..]
        .iter()
        .take(11)
        .position(|b| *b == b':')
        .ok_or(Malformed("a data entry is damaged"))?;
    let len = usize::try_from(digits(&value[at..at + colon])?)
        .map_err(|_| Malformed("a data entry is damaged"))?;
    let start = at + colon + 1;
    match start.checked_add(len) {
        Some(end) if end <= value.len() => Ok((len, start)),
        _ => Err(Malformed("a data entry is cut short")),
    }
}

/// Reads a session key's value, as `GET` returns it (`None`: no key).
pub(crate) fn decode(value: Option<&[u8]>) -> Result<Stored, Malformed> {
    let Some(value) = value else {
        return Ok(Stored::Absent);
    };
    match value.first() {
        None | Some(&NOTE | &TOMBSTONE) => return Ok(Stored::Absent),
        _ => {}
    }
    let (meta, mut at) = decode_meta(value)?;
    let mut data = Map::new();
    while at < value.len() {
        let (klen, kstart) = length_at(value, at)?;
        let key = std::str::from_utf8(&value[kstart..kstart + klen])
            .map_err(|_| Malformed("a data key is not UTF-8"))?;
        let (vlen, vstart) = length_at(value, kstart + klen)?;
        let parsed: Value = serde_json::from_slice(&value[vstart..vstart + vlen])
            .map_err(|_| Malformed("a data value is not JSON"))?;
        data.insert(key.to_owned(), parsed);
        at = vstart + vlen;
    }
    Ok(Stored::Record(Record::from_parts(data, meta)))
}

/// The `redis_record` fuzz target: `data` is read as a session key's value, as `GET`
/// would return it, and its start as the metadata a write script returns. Not part of
/// the API.
///
/// # Panics
///
/// If a value that reads as a record does not read back the same after being written out
/// again (the decoder and the encoder disagree), or on any panic of the decoder.
#[doc(hidden)]
pub fn fuzz_record(data: &[u8]) {
    if let Ok(Stored::Record(record)) = decode(Some(data)) {
        match decode(Some(&encode(&record))) {
            Ok(Stored::Record(back)) => {
                assert_eq!(
                    back, record,
                    "a record does not survive being written again"
                );
            }
            _ => panic!("a record that was read cannot be read once written again"),
        }
    }
    let _ = decode_meta(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::Duration;

    fn record() -> Record {
        Record::new(
            OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            OffsetDateTime::from_unix_timestamp(1_700_003_600).unwrap(),
            OffsetDateTime::from_unix_timestamp(1_700_086_400).unwrap(),
        )
    }

    #[test]
    fn records_round_trip_through_their_value() {
        let mut record = record();
        record.meta.user = Some("alice: \"the\" 1:2".into());
        record.meta.persistent = true;
        record.meta.last_seen += Duration::milliseconds(123);
        record
            .data_mut()
            .insert("12:ab".into(), json!({"looks": "like 3:an entry"}));
        record.data_mut().insert(String::new(), json!(2));
        record.data_mut().insert("é".into(), json!("ünïcode"));
        match decode(Some(&encode(&record))).unwrap() {
            Stored::Record(back) => assert_eq!(back, record),
            other => panic!("decoded as {other:?}"),
        }
        let mut anonymous = self::record();
        anonymous.meta.user = Some(String::new());
        match decode(Some(&encode(&anonymous))).unwrap() {
            Stored::Record(back) => assert_eq!(back.meta.user.as_deref(), Some("")),
            other => panic!("decoded as {other:?}"),
        }
    }

    #[test]
    fn unknown_versions_and_damaged_values_are_malformed() {
        let mut record = record();
        record.data_mut().insert("k".into(), json!(1));
        let good = encode(&record);
        let mut v = good.clone();
        v[0] = b'3';
        assert!(decode(Some(&v)).is_err());
        let mut v = good.clone();
        v.truncate(v.len() - 1);
        assert!(decode(Some(&v)).is_err());
        let mut v = good.clone();
        let last = v.len() - 1;
        v[last] = b'{';
        assert!(decode(Some(&v)).is_err());
        let mut v = good.clone();
        v[30] = b'x';
        assert!(decode(Some(&v)).is_err());
        assert!(matches!(decode(Some(b"N...")), Ok(Stored::Absent)));
        assert!(matches!(decode(Some(b"T")), Ok(Stored::Absent)));
        assert!(matches!(decode(None), Ok(Stored::Absent)));
    }

    #[test]
    fn an_own_idle_timeout_round_trips_and_the_first_header_reads_as_none() {
        let mut record = record();
        record.meta.user = Some("carol".into());
        record.meta.idle_timeout = Some(Duration::minutes(5));
        record.data_mut().insert("k".into(), json!(1));
        let v = encode(&record);
        match decode(Some(&v)).unwrap() {
            Stored::Record(back) => assert_eq!(back, record),
            other => panic!("decoded as {other:?}"),
        }
        // The 80-byte header the first release of this format wrote: no idle timeout.
        let mut first = v.clone();
        first.drain(80..HEADER);
        first[1..4].copy_from_slice(b"080");
        record.meta.idle_timeout = None;
        match decode(Some(&first)).unwrap() {
            Stored::Record(back) => assert_eq!(back, record),
            other => panic!("decoded as {other:?}"),
        }
    }

    #[test]
    fn a_longer_header_of_a_later_minor_version_is_skipped() {
        let mut record = record();
        record.meta.user = Some("bob".into());
        record.data_mut().insert("k".into(), json!([1]));
        let mut v = encode(&record);
        v.splice(HEADER..HEADER, *b"extra");
        v[1..4].copy_from_slice(format!("{:03}", HEADER + 5).as_bytes());
        match decode(Some(&v)).unwrap() {
            Stored::Record(back) => assert_eq!(back, record),
            other => panic!("decoded as {other:?}"),
        }
    }
}
