//! Where the layer gets the time, so tests can drive expiry without sleeping.

use std::fmt::Debug;

use time::OffsetDateTime;

/// A source of the current time. The layer rounds it down to whole milliseconds.
///
/// The default is [`SystemClock`]; tests use
/// [`testing::MockClock`](crate::testing::MockClock) (with the `testing` feature).
pub trait Clock: Debug + Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> OffsetDateTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// `t` rounded down to a whole millisecond: the precision of every time the layer hands a
/// store, and so the precision every store must keep.
///
/// ```
/// let t = time::OffsetDateTime::UNIX_EPOCH.replace_nanosecond(123_456_789).unwrap();
/// assert_eq!(session_layer::clock::to_millis(t).nanosecond(), 123_000_000);
/// ```
#[must_use]
pub fn to_millis(t: OffsetDateTime) -> OffsetDateTime {
    let ns = t.nanosecond();
    t.replace_nanosecond(ns - ns % 1_000_000)
        .expect("a rounded-down nanosecond is in range")
}

/// Times as whole milliseconds since the Unix epoch, as compact formats keep them.
pub(crate) mod millis {
    use time::OffsetDateTime;

    /// Milliseconds since the epoch (every time `time` represents fits an `i64` of them).
    pub(crate) fn of(t: OffsetDateTime) -> i64 {
        t.unix_timestamp() * 1000 + i64::from(t.millisecond())
    }

    const DAY: i64 = 86_400_000;

    /// The times `ms` milliseconds after the epoch, if `time` can represent them all. A
    /// session's times mostly fall on one or two days: the calendar date, the costly part,
    /// is worked out once per day.
    pub(crate) fn from_each<const N: usize>(ms: [i64; N]) -> Option<[OffsetDateTime; N]> {
        let mut known: Option<(i64, time::Date)> = None;
        let mut out = [OffsetDateTime::UNIX_EPOCH; N];
        for (slot, ms) in out.iter_mut().zip(ms) {
            let (day, in_day) = (ms.div_euclid(DAY), ms.rem_euclid(DAY));
            let date = match known {
                Some((d, date)) if d == day => date,
                _ => {
                    let date = OffsetDateTime::from_unix_timestamp(day.checked_mul(86_400)?)
                        .ok()?
                        .date();
                    known = Some((day, date));
                    date
                }
            };
            #[allow(clippy::cast_possible_truncation)] // each part is below its unit's bound
            let time = time::Time::from_hms_milli(
                (in_day / 3_600_000) as u8,
                (in_day / 60_000 % 60) as u8,
                (in_day / 1000 % 60) as u8,
                (in_day % 1000) as u16,
            )
            .ok()?;
            *slot = date.with_time(time).assume_utc();
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::millis;

    #[test]
    fn times_converted_together_are_the_times_time_gives_for_them() {
        let day = 86_400_000_i64;
        let now = millis::of(time::OffsetDateTime::now_utc());
        let mut cases = vec![[0, 1, day - 1, day], [-1, -day, -day - 1, 0]];
        for base in [
            now,
            now - now.rem_euclid(day),
            -62_000_000_000_000,
            250_000_000_000_000,
        ] {
            cases.push([base, base + 1, base + 3_600_000, base + 30 * day + 999]);
            cases.push([base, base - 1, base + day, base]);
        }
        // `time`'s own conversion, from nanoseconds, is the reference.
        let reference = |ms: i64| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
        };
        for ms in cases {
            let expected = ms.map(reference);
            let together = millis::from_each(ms);
            if expected.iter().all(Option::is_some) {
                assert_eq!(together, Some(expected.map(Option::unwrap)), "{ms:?}");
            } else {
                assert_eq!(together, None, "{ms:?}");
            }
            for (one, t) in ms.into_iter().zip(expected) {
                assert_eq!(millis::from_each([one]).map(|[t]| t), t, "{one}");
                assert!(t.is_none_or(|t| millis::of(t) == one), "{one} round trip");
            }
        }
        // Past what `time` represents: refused, not wrapped.
        assert_eq!(millis::from_each([i64::MAX, 0]), None);
        assert_eq!(millis::from_each([i64::MIN]), None);
    }
}
