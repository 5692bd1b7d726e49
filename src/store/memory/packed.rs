//! One session as `MemoryStore` keeps it: a single shared allocation of bytes.
//!
//! A [`Record`] with its data as a map (a `serde_json::Map`, four `OffsetDateTime`s, a
//! `String` owner) takes about a kilobyte for one small value, most of it a B-tree node
//! sized for eleven keys. At rest the store keeps instead:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..32 | created, last seen, idle deadline, absolute deadline: `i64` milliseconds, little-endian |
//! | 32 | flags: bit 0 persistent, bit 1 has an owner |
//! | 33..37 | with an owner: its length, `u32` little-endian, then its bytes |
//! | rest | the data, as the JSON text of an object |
//!
//! Deadlines are read and the touch is written in place. A load hands out the metadata and
//! a share of the allocation, from which the request reads the data's JSON text (one key at
//! a time, no map built); a write to a record a request still holds copies it first.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::clock::millis;
use crate::record::json::{self, JsonText};
use crate::record::{Change, Metadata, Record};
use crate::store::{entry_bytes, Limits, Totals, TouchRule, WriteRules};

const CREATED: usize = 0;
const LAST_SEEN: usize = 8;
const IDLE: usize = 16;
const ABSOLUTE: usize = 24;
const FLAGS: usize = 32;
const HEADER: usize = 33;
const PERSISTENT: u8 = 1;
const HAS_USER: u8 = 2;

/// The data's totals before and after a change, when they were asked for.
type Counted = Option<(Totals, Totals)>;

/// A packed session record. A load shares it (the data is read from the packed JSON text);
/// a write to a record a request still reads copies it first.
pub(super) struct Packed(Arc<[u8]>);

impl Packed {
    pub(super) fn new(record: &Record) -> Self {
        Self(pack(|out| Self::write_record(record, out)))
    }

    fn write_record(record: &Record, out: &mut Vec<u8>) {
        let m = &record.meta;
        let user = m.user.as_deref();
        for t in [m.created, m.last_seen, m.idle_deadline, m.absolute_deadline] {
            out.extend_from_slice(&millis::of(t).to_le_bytes());
        }
        out.push((u8::from(m.persistent) * PERSISTENT) | (u8::from(user.is_some()) * HAS_USER));
        write_user(user, out);
        serde_json::to_writer(out, record.data())
            .expect("a JSON map of JSON values always serializes");
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        Arc::make_mut(&mut self.0)
    }

    fn time(&self, at: usize) -> i64 {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&self.0[at..at + 8]);
        i64::from_le_bytes(bytes)
    }

    fn set_time(&mut self, at: usize, t: OffsetDateTime) {
        self.bytes_mut()[at..at + 8].copy_from_slice(&millis::of(t).to_le_bytes());
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
        let bytes = self.bytes_mut();
        bytes[LAST_SEEN..LAST_SEEN + 8].copy_from_slice(&now.to_le_bytes());
        bytes[IDLE..IDLE + 8].copy_from_slice(&idle_deadline.to_le_bytes());
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
        let [created, last_seen, idle_deadline, absolute_deadline] =
            millis::from_each([CREATED, LAST_SEEN, IDLE, ABSOLUTE].map(|at| self.time(at)))
                .expect("packed from OffsetDateTimes");
        Metadata {
            created,
            last_seen,
            idle_deadline,
            absolute_deadline,
            persistent: self.is_persistent(),
            user: self.user().map(str::to_owned),
        }
    }

    /// Whether the session is persistent ("remember me").
    pub(super) fn is_persistent(&self) -> bool {
        self.0[FLAGS] & PERSISTENT != 0
    }

    pub(super) fn record(&self) -> Record {
        let (_, data_start) = self.user_span();
        Record::from_json(JsonText::new(self.0.clone(), data_start), self.meta())
    }

    /// Applies `change`. Metadata alone is written in place; the data is parsed only when
    /// the change touches it, and the owner's bytes move only when it changes.
    pub(super) fn apply(&mut self, change: &Change) {
        if let Some((packed, _)) = self.repacked(change, false) {
            self.0 = packed;
        }
        self.apply_meta(change);
    }

    /// A write without a read, as [`SessionStore::write`](crate::store::SessionStore::write)
    /// asks: applies `change` unless the data would pass the limits (then returns the totals
    /// it would have had and changes nothing), then makes the touch `rules` call for at `now`
    /// (milliseconds) if the change brought none.
    pub(super) fn write(
        &mut self,
        change: &Change,
        rules: &WriteRules,
        now: i64,
    ) -> Result<(), Totals> {
        self.apply_within(change, &rules.limits)?;
        if change.touch.is_none() {
            if let Some(idle_deadline) = self.due(&rules.touch, now) {
                self.touch_at(now, idle_deadline);
            }
        }
        Ok(())
    }

    /// Applies `change` unless the data would pass `limits`; then returns the totals it
    /// would have had and changes nothing.
    pub(super) fn apply_within(&mut self, change: &Change, limits: &Limits) -> Result<(), Totals> {
        if let Some((packed, totals)) = self.repacked(change, true) {
            if let Some((before, after)) = totals {
                if !limits.allow(before, after) {
                    return Err(after);
                }
            }
            self.0 = packed;
        }
        self.apply_meta(change);
        Ok(())
    }

    /// The metadata part of `change`, in place.
    fn apply_meta(&mut self, change: &Change) {
        if let Some(touch) = change.touch {
            self.touch(touch.seen, touch.idle_deadline);
        }
        if let Some(persistent) = change.persistent {
            let flags = (self.0[FLAGS] & !PERSISTENT) | (u8::from(persistent) * PERSISTENT);
            self.bytes_mut()[FLAGS] = flags;
        }
    }

    /// This record with `change`'s data and owner, packed anew, and with `count` the data's
    /// totals before and after; `None` when the change touches neither (metadata changes
    /// are written in place).
    fn repacked(&self, change: &Change, count: bool) -> Option<(Arc<[u8]>, Counted)> {
        if !change.touches_data() && change.user.is_none() {
            return None;
        }
        let (user_start, data_start) = self.user_span();
        let user = match &change.user {
            Some(user) => user.as_deref(),
            None => (user_start < data_start).then(|| {
                std::str::from_utf8(&self.0[user_start..data_start]).expect("packed from a str")
            }),
        };
        let mut totals = None;
        let packed = pack(|out| {
            out.extend_from_slice(&self.0[..FLAGS]);
            let persistent = self.0[FLAGS] & PERSISTENT;
            out.push(persistent | (u8::from(user.is_some()) * HAS_USER));
            write_user(user, out);
            if change.touches_data() {
                // The hint was taken for this change; it applies only to this allocation.
                let spliced =
                    change.splice.0.as_ref().zip(change.single_set()).and_then(
                        |(splice, (_, value))| splice.write(&self.0, data_start, value, out),
                    );
                totals = match spliced {
                    Some(counted) => count.then_some(counted),
                    None => merge(&self.0[data_start..], change, count, out),
                };
            } else {
                out.extend_from_slice(&self.0[data_start..]);
            }
        });
        Some((packed, totals))
    }

    /// Moves `last_seen` and the idle deadline (capped at the absolute one) in place.
    pub(super) fn touch(&mut self, seen: OffsetDateTime, idle_deadline: OffsetDateTime) {
        let absolute = millis::from(self.time(ABSOLUTE)).expect("packed from an OffsetDateTime");
        self.set_time(LAST_SEEN, seen);
        self.set_time(IDLE, idle_deadline.min(absolute));
    }
}

/// Writes the owner, if any, as its length then its bytes.
fn write_user(user: Option<&str>, out: &mut Vec<u8>) {
    if let Some(user) = user {
        let len = u32::try_from(user.len()).expect("a user name under 4 GiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(user.as_bytes());
    }
}

/// Writes the JSON object `stored` with `change`'s data applied into `out`, one entry at a
/// time: the stored entries the change leaves alone are copied as they are, then the ones it
/// sets are written. No map or value is built. With `count`, also returns the data's totals
/// before and after, as [`Totals::of`] and [`Totals::after`] count them: the store wrote
/// every stored value as compact JSON, so its text is as long as `entry_bytes` counts.
fn merge(stored: &[u8], change: &Change, count: bool, out: &mut Vec<u8>) -> Counted {
    use serde::ser::{SerializeMap as _, Serializer as _};

    const WRITES: &str = "JSON values always serialize into a vector";
    let (mut before, mut kept) = (Totals::default(), Totals::default());
    let mut ser = serde_json::Serializer::new(out);
    let mut map = ser.serialize_map(None).expect(WRITES);
    json::walk(stored, |key, value| {
        let bytes = key.len() + value.get().len();
        before = Totals::new(before.keys + 1, before.bytes + bytes);
        // `set` and `remove` never share a key, so `lookup` names every key they touch
        // (and, after `clear`, every key).
        if change.lookup(&key).is_none() {
            kept = Totals::new(kept.keys + 1, kept.bytes + bytes);
            map.serialize_entry(&*key, value).expect(WRITES);
        }
    });
    let mut after = kept;
    for (key, value) in &change.set {
        map.serialize_entry(key, value).expect(WRITES);
        if count {
            after = Totals::new(after.keys + 1, after.bytes + entry_bytes(key, value));
        }
    }
    map.end().expect(WRITES);
    count.then_some((before, after))
}

/// Runs `write` into a reused per-thread buffer and copies the result into one allocation
/// of the exact size: no growing and no shrinking of a fresh vector per packed record.
fn pack(write: impl FnOnce(&mut Vec<u8>)) -> Arc<[u8]> {
    /// A buffer that grew past this (a large session) is not kept for the next one.
    const KEEP: usize = 16 * 1024;
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with_borrow_mut(|buf| {
        buf.clear();
        write(buf);
        let packed = Arc::from(&buf[..]);
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
    fn a_packed_write_counts_and_refuses_as_the_record_rules_do() {
        let now = crate::clock::to_millis(OffsetDateTime::now_utc());
        let mut record = Record::new(now, now + Duration::hours(1), now + Duration::days(1));
        record.data_mut().insert("a".into(), json!("12345"));
        record
            .data_mut()
            .insert("q\"\n".into(), json!([1.5, {"x": null}]));
        let touch = TouchRule::new(Duration::hours(1), Duration::days(14), Duration::minutes(1));
        let mut changes = Vec::new();
        let mut c = Change::default();
        c.set("b", json!("a longer value than the others"));
        changes.push(c);
        let mut c = Change::default();
        c.set("a", json!(1));
        c.remove("q\"\n");
        changes.push(c);
        let mut c = Change::default();
        c.clear();
        c.set("c", json!({"deep": [1, 2, 3]}));
        changes.push(c);
        for change in changes {
            let exact = Totals::after(record.data(), &change);
            let before = Totals::of(record.data());
            for max_bytes in [
                0,
                before.bytes,
                exact.bytes,
                exact.bytes.saturating_sub(1),
                1 << 16,
            ] {
                for max_keys in [0, exact.keys, 1 << 10] {
                    let limits = crate::store::Limits::new(max_bytes, max_keys);
                    let rules = WriteRules::new(limits, touch);
                    let mut packed = Packed::new(&record);
                    let result = packed.write(&change, &rules, millis::of(now));
                    if limits.allow(before, exact) {
                        assert_eq!(result, Ok(()), "{change:?} {limits:?}");
                        let mut expected = record.clone();
                        change.apply_to(&mut expected);
                        assert_eq!(packed.record(), expected);
                    } else {
                        assert_eq!(result, Err(exact), "{change:?} {limits:?}");
                        assert_eq!(packed.record(), record, "a refused write changed nothing");
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
        record.data_mut().insert(
            "es\"ca\\ped\n é".into(),
            json!({"f": 1.234_567_890_123_454_7e31, "s": "\u{1}"}),
        );
        let mut changes = Vec::new();
        let mut c = Change::default();
        c.set("es\"ca\\ped\n é", json!([null, true, -0.0]));
        changes.push(c);
        let mut c = Change::default();
        c.set("another", json!("x"));
        changes.push(c);
        let mut c = Change::default();
        c.remove("es\"ca\\ped\n é");
        changes.push(c);
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

    #[test]
    fn a_write_of_the_key_just_read_replaces_its_value_as_a_full_merge_would() {
        let now = crate::clock::to_millis(OffsetDateTime::now_utc());
        let mut record = Record::new(now, now + Duration::hours(1), now + Duration::days(1));
        record.data_mut().insert("a".into(), json!("first"));
        record.data_mut().insert("counter".into(), json!(5));
        record.data_mut().insert("es\"c".into(), json!([1]));
        record.data_mut().insert("z".into(), json!({"n": null}));
        let stored = Packed::new(&record);
        let limits = Limits::new(1 << 16, 16);
        let tight = Limits::new(Totals::of(record.data()).bytes + 1, 16);
        // Each key once as the one read and written, with a value longer and one shorter.
        for (key, value) in [
            ("a", json!("a longer value than before")),
            ("counter", json!(6)),
            ("z", json!(0)),
        ] {
            let loaded = stored.record();
            let _: Option<serde_json::Value> = loaded.value(key).transpose().unwrap();
            let mut change = Change::default();
            change.set(key, value.clone());
            change.splice.0 = loaded.splice_for(&change);
            assert!(change.splice.0.is_some(), "{key}");
            for limits in [limits, tight] {
                let (mut spliced, mut merged) =
                    (Packed(stored.0.clone()), Packed(stored.0.clone()));
                let plain = Change {
                    splice: Default::default(),
                    ..change.clone()
                };
                let result = spliced.apply_within(&change, &limits);
                assert_eq!(result, merged.apply_within(&plain, &limits), "{key}");
                // The value stays where it was in the text; a merge writes it last.
                assert_eq!(spliced.record(), merged.record(), "{key}");
                if result.is_ok() {
                    let mut expected = record.clone();
                    change.apply_to(&mut expected);
                    assert_eq!(spliced.record(), expected, "{key}");
                }
            }
        }

        // No splice for a key with escapes, a key other than the one read, or more changes.
        let loaded = stored.record();
        let _: Option<Vec<i32>> = loaded.value("es\"c").transpose().unwrap();
        let mut change = Change::default();
        change.set("es\"c", json!([2]));
        assert!(loaded.splice_for(&change).is_none());
        let _: Option<i64> = loaded.value("counter").transpose().unwrap();
        let mut change = Change::default();
        change.set("c", json!(1));
        assert!(
            loaded.splice_for(&change).is_none(),
            "a key that is a suffix of the one read"
        );
        let mut change = Change::default();
        change.set("counter", json!(1));
        change.remove("a");
        assert!(loaded.splice_for(&change).is_none());

        // A splice of a record that changed since it was read is not used: the write merges
        // into what is stored now, and keeps the other write.
        let mut packed = Packed(stored.0.clone());
        let loaded = packed.record();
        let _: Option<i64> = loaded.value("counter").transpose().unwrap();
        let mut change = Change::default();
        change.set("counter", json!(7));
        change.splice.0 = loaded.splice_for(&change);
        let mut other = Change::default();
        other.set("a", json!("second"));
        packed.apply(&other);
        packed.apply(&change);
        other.apply_to(&mut record);
        change.apply_to(&mut record);
        assert_eq!(packed.record(), record);
    }
}
