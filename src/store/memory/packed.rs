//! One session as `MemoryStore` keeps it at rest: a single allocation of bytes.
//!
//! A [`Record`] with its data as a map (a `serde_json::Map`, four `OffsetDateTime`s, a
//! `String` owner) takes about a kilobyte for one small value, most of it a B-tree node
//! sized for eleven keys. At rest the store keeps instead:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..32 | created, last seen, idle deadline, absolute deadline: `i64` milliseconds, little-endian |
//! | 32..40 | the session's own idle timeout: `i64` milliseconds, little-endian (0 without one) |
//! | 40 | flags: bit 0 persistent, bit 1 has an owner, bit 2 has an idle timeout of its own |
//! | 41..45 | with an owner: its length, `u32` little-endian, then its bytes |
//! | rest | the data, as the JSON text of an object |
//!
//! This is only an encoding: every decision (liveness, touches, limits, how a change
//! applies) is made on the [`Record`] and [`Metadata`] it decodes to, by the store's rules.

use time::{Duration, OffsetDateTime};

use crate::clock::millis;
use crate::record::{Metadata, Record};

const LAST_SEEN: usize = 8;
const IDLE: usize = 16;
const ABSOLUTE: usize = 24;
const IDLE_TIMEOUT: usize = 32;
const FLAGS: usize = 40;
const HEADER: usize = 41;
const PERSISTENT: u8 = 1;
const HAS_USER: u8 = 2;
const HAS_IDLE_TIMEOUT: u8 = 4;

/// The most a thread's scratch buffer keeps between records, in bytes.
const SCRATCH_KEPT: usize = 16 * 1024;

thread_local! {
    /// Where a record is written before it is copied into its own allocation.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A packed session record.
pub(super) struct Packed(Box<[u8]>);

impl Packed {
    pub(super) fn new(record: &Record) -> Self {
        let user = record.meta.user.as_deref();
        // Written into this thread's scratch buffer, then copied once into an allocation of
        // exactly its length: no growing or shrinking of the record's own allocation.
        SCRATCH.with_borrow_mut(|out| {
            out.clear();
            Self::write(record, user, out);
            let packed = Self(Box::from(&out[..]));
            // A rare large session does not keep its size of memory on the thread.
            if out.capacity() > SCRATCH_KEPT {
                *out = Vec::new();
            }
            packed
        })
    }

    fn write(record: &Record, user: Option<&str>, out: &mut Vec<u8>) {
        let m = &record.meta;
        for t in [m.created, m.last_seen, m.idle_deadline, m.absolute_deadline] {
            out.extend_from_slice(&millis::of(t).to_le_bytes());
        }
        let idle = m.idle_timeout.map_or(0, |d| {
            i64::try_from(d.whole_milliseconds()).unwrap_or(i64::MAX)
        });
        out.extend_from_slice(&idle.to_le_bytes());
        out.push(
            (u8::from(m.persistent) * PERSISTENT)
                | (u8::from(user.is_some()) * HAS_USER)
                | (u8::from(m.idle_timeout.is_some()) * HAS_IDLE_TIMEOUT),
        );
        if let Some(user) = user {
            let len = u32::try_from(user.len()).expect("a user name under 4 GiB");
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(user.as_bytes());
        }
        serde_json::to_writer(&mut *out, record.data())
            .expect("a JSON map of JSON values always serializes");
    }

    fn time(&self, at: usize) -> i64 {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&self.0[at..at + 8]);
        i64::from_le_bytes(bytes)
    }

    /// Whether the session is alive at `now`, read without decoding the metadata.
    pub(super) fn is_live(&self, now: OffsetDateTime) -> bool {
        millis::of(now) < self.time(IDLE).min(self.time(ABSOLUTE))
    }

    /// The owner, if any.
    pub(super) fn user(&self) -> Option<&str> {
        let (start, end) = self.user_span();
        (self.0[FLAGS] & HAS_USER != 0)
            .then(|| std::str::from_utf8(&self.0[start..end]).expect("packed from a str"))
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
            millis::from_each([0, LAST_SEEN, IDLE, ABSOLUTE].map(|at| self.time(at)))
                .expect("packed from OffsetDateTimes");
        Metadata {
            created,
            last_seen,
            idle_deadline,
            absolute_deadline,
            persistent: self.0[FLAGS] & PERSISTENT != 0,
            user: self.user().map(str::to_owned),
            idle_timeout: (self.0[FLAGS] & HAS_IDLE_TIMEOUT != 0)
                .then(|| Duration::milliseconds(self.time(IDLE_TIMEOUT))),
        }
    }

    /// The whole record, decoded.
    pub(super) fn record(&self) -> Record {
        let (_, data_start) = self.user_span();
        let data = serde_json::from_slice(&self.0[data_start..])
            .expect("this store wrote the JSON object");
        Record::from_parts(data, self.meta())
    }

    /// Writes `meta`'s `last_seen` and idle deadline in place: a touch rewrites no data.
    pub(super) fn set_seen(&mut self, meta: &Metadata) {
        self.0[LAST_SEEN..LAST_SEEN + 8].copy_from_slice(&millis::of(meta.last_seen).to_le_bytes());
        self.0[IDLE..IDLE + 8].copy_from_slice(&millis::of(meta.idle_deadline).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_record_survives_packing() {
        let t = crate::clock::to_millis(OffsetDateTime::now_utc());
        for user in [None, Some("alice"), Some("")] {
            let mut record = Record::new(t, t + Duration::hours(1), t + Duration::days(2));
            record.meta.user = user.map(str::to_owned);
            record.meta.persistent = user.is_some();
            record.meta.idle_timeout = user.map(|_| Duration::minutes(5));
            record
                .data_mut()
                .insert("es\"ca\\ped é".into(), json!({"n": [1, 2.5, null]}));
            let packed = Packed::new(&record);
            assert_eq!(packed.record(), record);
            assert_eq!(packed.user(), user);
            assert!(packed.is_live(t));
            assert!(!packed.is_live(t + Duration::hours(1)));
        }
    }
}
