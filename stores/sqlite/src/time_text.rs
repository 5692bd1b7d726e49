//! Times as SQLite keeps them: UTC text `YYYY-MM-DD HH:MM:SS.SSS`.
//!
//! The format is SQLite's own (`datetime()` and `strftime()` read it, so a DBA can write
//! `datetime(expires, 'localtime')`), and it is fixed-width, so comparing the text compares
//! the times: `expires > ?` and `min(idle_deadline, absolute_deadline)` need no conversion
//! and the expiry index orders rows by time.

use session_layer::{StoreError, StoreErrorKind};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::error::corrupt;

/// `t` in UTC, to the millisecond (the layer's precision).
pub(crate) fn to_text(t: OffsetDateTime) -> Result<String, StoreError> {
    let t = t.to_offset(UtcOffset::UTC);
    if !(0..=9999).contains(&t.year()) {
        return Err(StoreError::new(
            StoreErrorKind::Other,
            "a session time lies outside the years 0 to 9999, which the SQLite store cannot \
             keep in order; check the layer's timeouts",
        ));
    }
    Ok(format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    ))
}

/// Reads what [`to_text`] wrote; anything else is a corrupt row.
pub(crate) fn from_text(text: &str) -> Result<OffsetDateTime, StoreError> {
    parse(text).ok_or_else(|| {
        corrupt(format!(
            "a stored time {text:?} is not of the form YYYY-MM-DD HH:MM:SS.SSS; was the table \
             changed by hand?"
        ))
    })
}

fn parse(text: &str) -> Option<OffsetDateTime> {
    let b = text.as_bytes();
    if b.len() != 23
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u16> {
        let digits = &text[range];
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())
            .flatten()
    };
    let date = Date::from_calendar_date(
        i32::from(num(0..4)?),
        Month::try_from(u8::try_from(num(5..7)?).ok()?).ok()?,
        u8::try_from(num(8..10)?).ok()?,
    )
    .ok()?;
    let time = Time::from_hms_milli(
        u8::try_from(num(11..13)?).ok()?,
        u8::try_from(num(14..16)?).ok()?,
        u8::try_from(num(17..19)?).ok()?,
        num(20..23)?,
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_to_the_millisecond_and_sort_as_text() {
        let a = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_000_000).unwrap();
        let b = a + time::Duration::milliseconds(1);
        let (ta, tb) = (to_text(a).unwrap(), to_text(b).unwrap());
        assert_eq!(ta, "2023-11-14 22:13:20.123");
        assert_eq!(from_text(&ta).unwrap(), a);
        assert!(ta < tb);
        let early = OffsetDateTime::UNIX_EPOCH;
        assert!(to_text(early).unwrap() < ta);
        assert_eq!(from_text(&to_text(early).unwrap()).unwrap(), early);
    }

    #[test]
    fn anything_else_is_corrupt() {
        for bad in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20.123",
            "2023-13-14 22:13:20.123",
            "2023-11-14 22:13:20.12x",
        ] {
            let err = from_text(bad).expect_err(bad);
            assert_eq!(err.kind(), StoreErrorKind::Corrupt);
        }
    }
}
