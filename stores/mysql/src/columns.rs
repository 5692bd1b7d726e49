//! How a session's parts go into the table's columns and come back out.

use serde_json::{Map, Value};
use session_layer::id::StorageKey;
use session_layer::record::{Metadata, Record};
use session_layer::{StoreError, StoreErrorKind};
use sqlx::mysql::MySqlRow;
use sqlx::Row;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::error::{corrupt, from_sqlx};
use crate::sql::{DATA_FORMAT, MAX_USER_BYTES};

/// A time as the `DATETIME(3)` columns hold it: UTC, without an offset.
pub(crate) fn utc(t: OffsetDateTime) -> PrimitiveDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    PrimitiveDateTime::new(t.date(), t.time())
}

pub(crate) fn decode_key(bytes: &[u8]) -> Result<StorageKey, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map(StorageKey::from_bytes)
        .map_err(|_| {
            corrupt("a stored session key is not 32 bytes; was the table changed by hand?")
        })
}

/// The owner as the `user_id` column takes it, refused when longer than the column: a
/// server outside strict mode would cut it short, and two users would share one prefix.
pub(crate) fn user_bytes(user: Option<&str>) -> Result<Option<&[u8]>, StoreError> {
    match user {
        Some(user) if user.len() > MAX_USER_BYTES => Err(StoreError::new(
            StoreErrorKind::Other,
            format!(
                "a user ID of {} bytes is longer than the {MAX_USER_BYTES} bytes the MySQL \
                 store keeps; use shorter IDs (a number or a UUID)",
                user.len()
            ),
        )),
        other => Ok(other.map(str::as_bytes)),
    }
}

pub(crate) fn encode_data(data: &Map<String, Value>) -> Result<String, StoreError> {
    serde_json::to_string(data).map_err(|e| {
        StoreError::with_source(
            StoreErrorKind::Other,
            "the session's data could not be written as JSON",
            e,
        )
    })
}

fn decode_data(text: &str) -> Result<Map<String, Value>, StoreError> {
    serde_json::from_str(text).map_err(|e| {
        StoreError::with_source(
            StoreErrorKind::Corrupt,
            "a stored session's data is not a JSON object; was the table changed by hand?",
            e,
        )
    })
}

/// Reads the metadata columns, in the order the statements return them.
pub(crate) fn decode_meta(row: &MySqlRow, what: &str) -> Result<Metadata, StoreError> {
    let sql = |e| from_sqlx(what, e);
    let user: Option<Vec<u8>> = row.try_get("user_id").map_err(sql)?;
    let user = user
        .map(String::from_utf8)
        .transpose()
        .map_err(|_| corrupt("a stored user ID is not UTF-8; was the table changed by hand?"))?;
    Ok(Metadata {
        created: row.try_get("created").map_err(sql)?,
        last_seen: row.try_get("last_seen").map_err(sql)?,
        idle_deadline: row.try_get("idle_deadline").map_err(sql)?,
        absolute_deadline: row.try_get("absolute_deadline").map_err(sql)?,
        persistent: row.try_get("persistent").map_err(sql)?,
        user,
        idle_timeout: row
            .try_get::<Option<i64>, _>("idle_timeout_ms")
            .map_err(sql)?
            .map(time::Duration::milliseconds),
    })
}

/// A session's own idle timeout as the `idle_timeout_ms` column holds it.
pub(crate) fn idle_timeout_ms(meta: &Metadata) -> Option<i64> {
    meta.idle_timeout
        .map(|d| i64::try_from(d.whole_milliseconds()).unwrap_or(i64::MAX))
}

/// Decodes a row of [`Statements::load`] or [`Statements::lock`].
pub(crate) fn decode_record(row: &MySqlRow, what: &str) -> Result<Record, StoreError> {
    let format: i16 = row.try_get("format").map_err(|e| from_sqlx(what, e))?;
    if format != DATA_FORMAT {
        return Err(corrupt(format!(
            "a stored session has data format {format}, which this version does not read \
             (it reads {DATA_FORMAT}); upgrade session-layer-mysql"
        )));
    }
    let data: String = row.try_get("data").map_err(|e| from_sqlx(what, e))?;
    Ok(Record::from_parts(
        decode_data(&data)?,
        decode_meta(row, what)?,
    ))
}

/// The `mysql_record` fuzz target: `data`, split at the first NUL byte into the `session_key`
/// column's bytes and the `data` column's text, goes through the store's own column
/// decoders. The time, flag and number
/// columns are typed and decoded by `sqlx` itself. Not part of the API.
///
/// # Panics
///
/// If a key decodes to other bytes, or data that decodes does not read back the same after
/// being written as the store writes it.
#[doc(hidden)]
pub fn fuzz_columns(data: &[u8]) {
    let (key, text) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    if let Ok(decoded) = decode_key(key) {
        assert_eq!(decoded.as_bytes(), key, "a key decoded to other bytes");
    }
    if let Ok(text) = std::str::from_utf8(text) {
        if let Ok(map) = decode_data(text) {
            let again = encode_data(&map).expect("decoded data encodes");
            let back = decode_data(&again).expect("encoded data decodes");
            assert_eq!(back, map, "data does not survive being written again");
        }
    }
}
