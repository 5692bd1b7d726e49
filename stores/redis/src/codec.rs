//! How a record is laid out in its Redis hash.
//!
//! | field | value |
//! | --- | --- |
//! | `v` | format version, `1` |
//! | `c` | a random token naming the call that created the hash (makes a retried create idempotent) |
//! | `x` | present only while a rotation moves the record: that rotation's token |
//! | `m:created`, `m:seen`, `m:idle`, `m:abs` | times as Unix milliseconds |
//! | `m:pers` | `1` for a persistent session, `0` otherwise |
//! | `m:user` | the owner, absent when there is none |
//! | `d:<key>` | the JSON text of the value under `<key>` |
//!
//! Data fields carry a `d:` prefix so no data key can collide with a metadata field.

use serde_json::{Map, Value};
use session_layer::record::{Metadata, Record};
use time::OffsetDateTime;

/// The format version this crate writes and reads.
pub(crate) const FORMAT: &[u8] = b"1";
/// The prefix of data fields.
pub(crate) const DATA: &[u8] = b"d:";

/// A record that cannot be read: an unknown format version or a damaged field.
#[derive(Debug)]
pub(crate) struct Malformed(pub(crate) &'static str);

/// What a session hash holds, as the layer sees it.
#[derive(Debug)]
pub(crate) enum Stored {
    /// No hash under the key.
    Absent,
    /// A rotation is moving the record away: it counts as gone.
    Moving,
    /// A readable record (live or not: the caller checks).
    Record(Record),
}

/// Unix milliseconds of `t` (the layer's times are whole milliseconds).
pub(crate) fn millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_millis(text: &[u8]) -> Result<OffsetDateTime, Malformed> {
    let ms: i64 = std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Malformed("a time field is not a number"))?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| Malformed("a time field is out of range"))
}

/// The name of the field that holds data key `key`.
pub(crate) fn data_field(key: &str) -> Vec<u8> {
    let mut field = Vec::with_capacity(DATA.len() + key.len());
    field.extend_from_slice(DATA);
    field.extend_from_slice(key.as_bytes());
    field
}

/// The JSON text of a value.
pub(crate) fn json(value: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail: its map keys are strings already.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Every field of `record`, flattened as field, value, field, value... for HSET.
pub(crate) fn record_fields(record: &Record, token: &str) -> Vec<Vec<u8>> {
    let meta = &record.meta;
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(16 + 2 * record.data().len());
    let mut push = |field: &[u8], value: Vec<u8>| {
        out.push(field.to_vec());
        out.push(value);
    };
    push(b"v", FORMAT.to_vec());
    push(b"c", token.as_bytes().to_vec());
    push(b"m:created", millis(meta.created).to_string().into_bytes());
    push(b"m:seen", millis(meta.last_seen).to_string().into_bytes());
    push(
        b"m:idle",
        millis(meta.idle_deadline).to_string().into_bytes(),
    );
    push(
        b"m:abs",
        millis(meta.absolute_deadline).to_string().into_bytes(),
    );
    push(
        b"m:pers",
        if meta.persistent { b"1" } else { b"0" }.to_vec(),
    );
    if let Some(user) = &meta.user {
        push(b"m:user", user.as_bytes().to_vec());
    }
    for (key, value) in record.data() {
        push(&data_field(key), json(value));
    }
    out
}

/// Metadata from its six fields, in the order `created, seen, idle, abs, pers, user`.
pub(crate) fn meta_from(fields: &[Option<Vec<u8>>]) -> Result<Metadata, Malformed> {
    let [created, seen, idle, abs, pers, user] = fields else {
        return Err(Malformed("metadata fields are missing"));
    };
    let time = |f: &Option<Vec<u8>>| from_millis(f.as_deref().unwrap_or_default());
    let persistent = match pers.as_deref() {
        Some(b"1") => true,
        Some(b"0") => false,
        _ => return Err(Malformed("the persistence flag is damaged")),
    };
    let user = match user {
        Some(bytes) => {
            Some(String::from_utf8(bytes.clone()).map_err(|_| Malformed("the user is not UTF-8"))?)
        }
        None => None,
    };
    Ok(Metadata {
        created: time(created)?,
        last_seen: time(seen)?,
        idle_deadline: time(idle)?,
        absolute_deadline: time(abs)?,
        persistent,
        user,
    })
}

/// Reads a session hash as HGETALL returns it.
pub(crate) fn decode(fields: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Stored, Malformed> {
    if fields.is_empty() {
        return Ok(Stored::Absent);
    }
    let mut meta: [Option<Vec<u8>>; 6] = Default::default();
    let mut version = None;
    let mut moving = false;
    let mut data = Map::new();
    for (field, value) in fields {
        if let Some(key) = field.strip_prefix(DATA) {
            let key = String::from_utf8(key.to_vec())
                .map_err(|_| Malformed("a data key is not UTF-8"))?;
            let value: Value = serde_json::from_slice(&value)
                .map_err(|_| Malformed("a data value is not JSON"))?;
            data.insert(key, value);
            continue;
        }
        let slot = match field.as_slice() {
            b"v" => {
                version = Some(value);
                continue;
            }
            b"x" => {
                moving = true;
                continue;
            }
            b"m:created" => 0,
            b"m:seen" => 1,
            b"m:idle" => 2,
            b"m:abs" => 3,
            b"m:pers" => 4,
            b"m:user" => 5,
            // `c` and fields a later minor version may add.
            _ => continue,
        };
        meta[slot] = Some(value);
    }
    if version.as_deref() != Some(FORMAT) {
        return Err(Malformed("unknown record format version"));
    }
    if moving {
        return Ok(Stored::Moving);
    }
    Ok(Stored::Record(Record::from_parts(data, meta_from(&meta)?)))
}

/// The `redis_record` fuzz target: `data` split at NUL bytes into field, value, field,
/// value... is read as a session hash, as `HGETALL` would return it, and its first six
/// pieces as the metadata fields `list_by_user` reads. Not part of the API.
///
/// # Panics
///
/// If a hash that reads as a record does not read back the same after being written out
/// again (the decoder and the encoder disagree), or on any panic of the decoder.
#[doc(hidden)]
pub fn fuzz_record(data: &[u8]) {
    let pieces: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    let fields: Vec<(Vec<u8>, Vec<u8>)> = pieces
        .chunks_exact(2)
        .map(|pair| (pair[0].to_vec(), pair[1].to_vec()))
        .collect();
    if let Ok(Stored::Record(record)) = decode(fields) {
        let again: Vec<(Vec<u8>, Vec<u8>)> = record_fields(&record, "token")
            .chunks_exact(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect();
        match decode(again) {
            Ok(Stored::Record(back)) => {
                assert_eq!(
                    back, record,
                    "a record does not survive being written again"
                );
            }
            _ => panic!("a record that was read cannot be read once written again"),
        }
    }
    let meta: Vec<Option<Vec<u8>>> = pieces
        .iter()
        .take(6)
        .map(|p| (!p.is_empty()).then(|| p.to_vec()))
        .collect();
    let _ = meta_from(&meta);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::Duration;

    fn pairs(flat: Vec<Vec<u8>>) -> Vec<(Vec<u8>, Vec<u8>)> {
        flat.chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect()
    }

    #[test]
    fn records_round_trip_through_their_fields() {
        let mut record = Record::new(
            OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            OffsetDateTime::from_unix_timestamp(1_700_003_600).unwrap(),
            OffsetDateTime::from_unix_timestamp(1_700_086_400).unwrap(),
        );
        record.meta.user = Some("alice".into());
        record.meta.persistent = true;
        record.meta.last_seen += Duration::milliseconds(123);
        record
            .data_mut()
            .insert("m:user".into(), json!({"looks": "like metadata"}));
        record.data_mut().insert("v".into(), json!(2));
        let fields = pairs(record_fields(&record, "token"));
        match decode(fields).unwrap() {
            Stored::Record(back) => assert_eq!(back, record),
            other => panic!("decoded as {other:?}"),
        }
    }

    #[test]
    fn unknown_versions_and_damaged_fields_are_malformed() {
        let record = Record::new(
            OffsetDateTime::UNIX_EPOCH,
            OffsetDateTime::UNIX_EPOCH + Duration::hours(1),
            OffsetDateTime::UNIX_EPOCH + Duration::hours(2),
        );
        let mut fields = pairs(record_fields(&record, "t"));
        fields[0].1 = b"2".to_vec();
        assert!(decode(fields).is_err());
        let mut fields = pairs(record_fields(&record, "t"));
        fields.push((b"d:k".to_vec(), b"{not json".to_vec()));
        assert!(decode(fields).is_err());
        let mut fields = pairs(record_fields(&record, "t"));
        fields.push((b"x".to_vec(), b"rotation".to_vec()));
        assert!(matches!(decode(fields), Ok(Stored::Moving)));
        assert!(matches!(decode(Vec::new()), Ok(Stored::Absent)));
    }
}
