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

    /// The time `ms` milliseconds after the epoch, if `time` can represent it.
    pub(crate) fn from(ms: i64) -> Option<OffsetDateTime> {
        let t = OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).ok()?;
        #[allow(clippy::cast_possible_truncation)] // rem_euclid(1000) is in 0..1000
        t.replace_millisecond(ms.rem_euclid(1000) as u16).ok()
    }
}
