//! One session as `MemoryStore` keeps it: a single allocation of bytes.
//!
//! A [`Record`] in its working form (a `serde_json::Map` behind an `Arc`, four `OffsetDateTime`s,
//! a `String` owner) takes about a kilobyte for one small value, most of it a B-tree node
//! sized for eleven keys. At rest the store keeps instead:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..32 | created, last seen, idle deadline, absolute deadline: `i64` milliseconds, little-endian |
//! | 32 | flags: bit 0 persistent, bit 1 has an owner |
//! | 33..37 | with an owner: its length, `u32` little-endian, then its bytes |
//! | rest | the data, as the JSON text of an object |
//!
//! Deadlines are read and the touch is written in place; everything else unpacks.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::clock::millis;
use crate::record::{Change, Metadata, Record};
use crate::store::TouchRule;

const CREATED: usize = 0;
const LAST_SEEN: usize = 8;
const IDLE: usize = 16;
const ABSOLUTE: usize = 24;
const FLAGS: usize = 32;
const HEADER: usize = 33;
const PERSISTENT: u8 = 1;
const HAS_USER: u8 = 2;

/// A packed session record.
pub(super) struct Packed(Box<[u8]>);

impl Packed {
    pub(super) fn new(record: &Record) -> Self {
        Self(pack(|out| Self::write(record, out)))
    }

    fn write(record: &Record, out: &mut Vec<u8>) {
        let m = &record.meta;
        let user = m.user.as_deref();
        for t in [m.created, m.last_seen, m.idle_deadline, m.absolute_deadline] {
            out.extend_from_slice(&millis::of(t).to_le_bytes());
        }
        out.push((u8::from(m.persistent) * PERSISTENT) | (u8::from(user.is_some()) * HAS_USER));
        if let Some(user) = user {
            let len = u32::try_from(user.len()).expect("a user name under 4 GiB");
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(user.as_bytes());
        }
        serde_json::to_writer(out, record.data())
            .expect("a JSON map of JSON values always serializes");
    }

    fn time(&self, at: usize) -> i64 {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&self.0[at..at + 8]);
        i64::from_le_bytes(bytes)
    }

    fn set_time(&mut self, at: usize, t: OffsetDateTime) {
        self.0[at..at + 8].copy_from_slice(&millis::of(t).to_le_bytes());
    }

    /// Whether the session is alive at `now`: both deadlines lie after it.
    pub(super) fn is_live(&self, now: OffsetDateTime) -> bool {
        millis::of(now) < self.time(IDLE).min(self.time(ABSOLUTE))
    }

    /// As [`is_live`](Self::is_live), with `now` in milliseconds.
    pub(super) fn is_live_at(&self, now: i64) -> bool {
        now < self.time(IDLE).min(self.time(ABSOLUTE))
    }

    /// The touch `rule` calls for at `now` (milliseconds), as the new idle deadline, or
    /// `None` if it would move by `step` or less: [`TouchRule::due`] on the packed fields,
    /// without unpacking the times.
    pub(super) fn due(&self, rule: &TouchRule, now: i64) -> Option<i64> {
        let persistent = self.0[FLAGS] & PERSISTENT != 0;
        let idle = now
            .saturating_add(whole_millis(rule.idle_for(persistent)))
            .min(self.time(ABSOLUTE));
        (idle - self.time(IDLE) > whole_millis(rule.step)).then_some(idle)
    }

    /// Records activity at `now` with the idle deadline [`due`](Self::due) gave, in place.
    pub(super) fn touch_at(&mut self, now: i64, idle_deadline: i64) {
        self.0[LAST_SEEN..LAST_SEEN + 8].copy_from_slice(&now.to_le_bytes());
        self.0[IDLE..IDLE + 8].copy_from_slice(&idle_deadline.to_le_bytes());
    }

    /// The owner, if any.
    pub(super) fn user(&self) -> Option<&str> {
        (self.0[FLAGS] & HAS_USER != 0).then(|| {
            let (start, end) = self.user_span();
            std::str::from_utf8(&self.0[start..end]).expect("packed from a str")
        })
    }

    /// Where the owner's bytes are, or an empty span after the header.
    fn user_span(&self) -> (usize, usize) {
        if self.0[FLAGS] & HAS_USER == 0 {
            return (HEADER, HEADER);
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&self.0[HEADER..HEADER + 4]);
        let len = u32::from_le_bytes(len) as usize;
        (HEADER + 4, HEADER + 4 + len)
    }

    pub(super) fn meta(&self) -> Metadata {
        let time = |at| millis::from(self.time(at)).expect("packed from an OffsetDateTime");
        Metadata {
            created: time(CREATED),
            last_seen: time(LAST_SEEN),
            idle_deadline: time(IDLE),
            absolute_deadline: time(ABSOLUTE),
            persistent: self.0[FLAGS] & PERSISTENT != 0,
            user: self.user().map(str::to_owned),
        }
    }

    pub(super) fn record(&self) -> Record {
        let (_, data_start) = self.user_span();
        let data: Map<String, Value> =
            serde_json::from_slice(&self.0[data_start..]).expect("the store wrote this JSON");
        Record::from_parts(data, self.meta())
    }

    /// Applies `change`. Metadata alone is written in place; the data is parsed only when
    /// the change touches it, and the owner's bytes move only when it changes.
    pub(super) fn apply(&mut self, change: &Change) {
        if change.touches_data() || change.user.is_some() {
            let (user_start, data_start) = self.user_span();
            let user = match &change.user {
                Some(user) => user.as_deref(),
                None => (user_start < data_start).then(|| {
                    std::str::from_utf8(&self.0[user_start..data_start]).expect("packed from a str")
                }),
            };
            self.0 = pack(|out| self.repack(change, user, data_start, out));
        }
        if let Some(touch) = change.touch {
            self.touch(touch.seen, touch.idle_deadline);
        }
        if let Some(persistent) = change.persistent {
            self.0[FLAGS] = (self.0[FLAGS] & !PERSISTENT) | (u8::from(persistent) * PERSISTENT);
        }
    }

    /// Writes this record with `change`'s data and owner into `out`.
    fn repack(&self, change: &Change, user: Option<&str>, data_start: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0[..FLAGS]);
        let persistent = self.0[FLAGS] & PERSISTENT;
        out.push(persistent | (u8::from(user.is_some()) * HAS_USER));
        if let Some(user) = user {
            let len = u32::try_from(user.len()).expect("a user name under 4 GiB");
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(user.as_bytes());
        }
        if change.touches_data() {
            let mut data: Map<String, Value> = if change.clear {
                Map::new()
            } else {
                serde_json::from_slice(&self.0[data_start..]).expect("the store wrote this JSON")
            };
            change.apply_data(&mut data);
            serde_json::to_writer(out, &data).expect("a JSON map of JSON values always serializes");
        } else {
            out.extend_from_slice(&self.0[data_start..]);
        }
    }

    /// Moves `last_seen` and the idle deadline (capped at the absolute one) in place.
    pub(super) fn touch(&mut self, seen: OffsetDateTime, idle_deadline: OffsetDateTime) {
        let absolute = millis::from(self.time(ABSOLUTE)).expect("packed from an OffsetDateTime");
        self.set_time(LAST_SEEN, seen);
        self.set_time(IDLE, idle_deadline.min(absolute));
    }
}

/// Runs `write` into a reused per-thread buffer and copies the result into one allocation
/// of the exact size: no growing and no shrinking of a fresh vector per packed record.
fn pack(write: impl FnOnce(&mut Vec<u8>)) -> Box<[u8]> {
    /// A buffer that grew past this (a large session) is not kept for the next one.
    const KEEP: usize = 16 * 1024;
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with_borrow_mut(|buf| {
        buf.clear();
        write(buf);
        let packed = Box::from(&buf[..]);
        if buf.capacity() > KEEP {
            *buf = Vec::new();
        }
        packed
    })
}

/// `d` in whole milliseconds, saturated. Times are whole milliseconds, so a deadline `d`
/// after one moves exactly as far as `d` rounded down, and a move of whole milliseconds is
/// longer than `d` exactly when it is longer than `d` rounded down.
fn whole_millis(d: time::Duration) -> i64 {
    i64::try_from(d.whole_milliseconds()).unwrap_or(if d.is_negative() {
        i64::MIN
    } else {
        i64::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::Duration;

    #[test]
    fn a_record_survives_packing() {
        let now = crate::clock::to_millis(OffsetDateTime::now_utc());
        let mut record = Record::new(now, now + Duration::hours(1), now + Duration::days(1));
        assert_eq!(Packed::new(&record).record(), record);
        record.meta.user = Some("ålice".into());
        record.meta.persistent = true;
        record
            .data_mut()
            .insert("v".into(), json!({"nested": [1, 2.5, "x"]}));
        let mut packed = Packed::new(&record);
        assert_eq!(packed.record(), record);
        assert_eq!(packed.user(), Some("ålice"));
        assert!(packed.is_live(now) && !packed.is_live(now + Duration::hours(1)));
        packed.touch(now + Duration::hours(23), now + Duration::hours(24));
        let meta = packed.meta();
        assert_eq!(meta.last_seen, now + Duration::hours(23));
        assert_eq!(meta.idle_deadline, now + Duration::days(1));
        assert_eq!(packed.record().data(), record.data());
    }

    #[test]
    fn the_packed_touch_decides_as_the_touch_rule_does() {
        let now = crate::clock::to_millis(OffsetDateTime::now_utc());
        let rules = [
            TouchRule::new(Duration::hours(1), Duration::days(14), Duration::minutes(1)),
            TouchRule::new(Duration::seconds(30), Duration::hours(2), Duration::ZERO),
            TouchRule::new(
                Duration::milliseconds(1500),
                Duration::MAX,
                Duration::microseconds(1500),
            ),
        ];
        for rule in rules {
            for persistent in [false, true] {
                for (idle, absolute) in [(5, 3_600), (3_599, 3_600), (60, 86_400), (7_200, 90_000)]
                {
                    let mut record = Record::new(
                        now,
                        now + Duration::seconds(idle),
                        now + Duration::seconds(absolute),
                    );
                    record.meta.persistent = persistent;
                    let packed = Packed::new(&record);
                    for later in [0, 1, 59, 61, 1_800, 3_000, 3_599] {
                        let at = now + Duration::seconds(later) + Duration::milliseconds(later % 7);
                        let expected = rule.due(&record.meta, at).map(|t| t.idle_deadline);
                        let packed_due = packed.due(&rule, millis::of(at));
                        assert_eq!(packed_due.map(|ms| millis::from(ms).unwrap()), expected);
                    }
                }
            }
        }
    }

    #[test]
    fn changes_apply_as_they_do_to_a_record() {
        let now = crate::clock::to_millis(OffsetDateTime::now_utc());
        let mut record = Record::new(now, now + Duration::hours(1), now + Duration::days(1));
        record.data_mut().insert("keep".into(), json!(1));
        record.data_mut().insert("drop".into(), json!(2));
        let mut changes = Vec::new();
        let mut c = Change::default();
        c.set("new", json!("x"));
        c.remove("drop");
        changes.push(c);
        changes.push(Change {
            user: Some(Some("bob".into())),
            persistent: Some(true),
            ..Change::default()
        });
        let mut c = Change::default();
        c.clear();
        c.set("only", json!([1]));
        changes.push(c);
        changes.push(Change {
            user: Some(None),
            touch: Some(crate::record::Touch {
                seen: now + Duration::minutes(5),
                idle_deadline: now + Duration::minutes(65),
            }),
            persistent: Some(false),
            ..Change::default()
        });
        let mut packed = Packed::new(&record);
        for change in changes {
            change.apply_to(&mut record);
            packed.apply(&change);
            assert_eq!(packed.record(), record, "{change:?}");
        }
    }
}
