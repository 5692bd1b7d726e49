//! A session's data still in the JSON text a store kept, read without building the map: one
//! key's value, or the totals the limits count.
//!
//! The text is a compact JSON object this crate wrote itself (`serde_json` output of a map,
//! so no key twice), so a value's raw text is as long as
//! [`entry_bytes`](crate::store::entry_bytes) counts it. Each read walks the text; most
//! requests read one key once (a walk that builds an index of the entries, tried, cost more
//! than it saved). A walk counts the totals on its way, for a write that follows the read,
//! and a read notes where it found its value, so that a write of that one key can replace
//! the value in the text (a [`Splice`]) instead of walking and writing every entry again.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::store::Totals;

/// A compact JSON object: `bytes[start..]`, shared with whoever kept it.
pub(crate) struct JsonText {
    bytes: Arc<[u8]>,
    start: usize,
    /// The totals, once a walk has counted them: keys + 1 (0 until counted), then bytes.
    counted_keys: AtomicUsize,
    counted_bytes: AtomicUsize,
    /// Where the last [`get`](Self::get) found its value, if its key has no escapes: start
    /// in the text (never 0, the text opens with `{`) in the high half, length in the low.
    found: AtomicU64,
}

impl Clone for JsonText {
    fn clone(&self) -> Self {
        Self::new(self.bytes.clone(), self.start)
    }
}

impl JsonText {
    /// The object at `bytes[start..]`, which this crate wrote as compact JSON.
    pub(crate) fn new(bytes: Arc<[u8]>, start: usize) -> Self {
        Self {
            bytes,
            start,
            counted_keys: AtomicUsize::new(0),
            counted_bytes: AtomicUsize::new(0),
            found: AtomicU64::new(0),
        }
    }

    /// The object's text.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    /// The JSON text of `key`'s value, if the object has that key. The walk also counts the
    /// totals, which a write after the read asks for next.
    pub(crate) fn get(&self, key: &str) -> Option<&[u8]> {
        let mut found = None;
        let mut escaped = false;
        self.walk_counting(|k, v| {
            if *k == *key {
                escaped = matches!(k, Cow::Owned(_));
                found = Some(v.get().as_bytes());
            }
        });
        let text = self.as_bytes();
        let at = found
            .filter(|_| !escaped)
            .and_then(|v| {
                let start = v.as_ptr() as usize - text.as_ptr() as usize;
                Some(
                    u64::from(u32::try_from(start).ok()?) << 32
                        | u64::from(u32::try_from(v.len()).ok()?),
                )
            })
            .unwrap_or(0);
        self.found.store(at, Ordering::Relaxed);
        found
    }

    /// How a write that sets `key` and nothing else can replace its value in this text, if
    /// the last [`get`](Self::get) found `key` (with no escapes) and counted the totals.
    pub(crate) fn splice(&self, key: &str) -> Option<Splice> {
        let found = self.found.load(Ordering::Relaxed);
        let counted_keys = self.counted_keys.load(Ordering::Acquire);
        if found == 0 || counted_keys == 0 {
            return None;
        }
        #[allow(clippy::cast_possible_truncation)] // both halves came from `u32`s
        let (start, len) = ((found >> 32) as usize, (found as u32) as usize);
        // The compact text reads `"key":value`, and a key with no escapes holds no `"`: the
        // quote before `key`'s length of bytes opens this very key.
        let text = self.as_bytes();
        let key_start = start.checked_sub(key.len() + 2)?;
        let named = key_start > 0
            && text[key_start - 1] == b'"'
            && &text[key_start..start - 2] == key.as_bytes()
            && &text[start - 2..start] == b"\":";
        named.then(|| Splice {
            bytes: self.bytes.clone(),
            start: self.start,
            value: self.start + start..self.start + start + len,
            totals: Totals::new(counted_keys - 1, self.counted_bytes.load(Ordering::Relaxed)),
        })
    }

    /// What the data adds up to, as the limits count it.
    pub(crate) fn totals(&self) -> Totals {
        match self.counted_keys.load(Ordering::Acquire) {
            0 => self.walk_counting(|_, _| {}),
            keys => Totals::new(keys - 1, self.counted_bytes.load(Ordering::Relaxed)),
        }
    }

    fn walk_counting<'a>(&'a self, mut f: impl FnMut(&Cow<'a, str>, &'a RawValue)) -> Totals {
        let mut totals = Totals::default();
        walk(self.as_bytes(), |k, v| {
            totals = Totals::new(totals.keys + 1, totals.bytes + k.len() + v.get().len());
            f(&k, v);
        });
        self.counted_bytes.store(totals.bytes, Ordering::Relaxed);
        self.counted_keys.store(totals.keys + 1, Ordering::Release);
        totals
    }
}

/// Where one key's value sits in a stored text a request read: a store that still holds
/// that very allocation writes the data as the text before the value, the new value, and
/// the text after it. The splice holds a share of the allocation, so what it names cannot
/// change in place while it exists (a write in place copies a shared record first).
#[derive(Clone)]
pub(crate) struct Splice {
    bytes: Arc<[u8]>,
    /// Where the data starts in `bytes`.
    start: usize,
    /// The old value, in `bytes`.
    value: Range<usize>,
    /// The data's totals in `bytes`.
    totals: Totals,
}

impl Splice {
    /// Writes the data of `stored` (which must be the allocation this splice was taken from,
    /// else `None` and nothing written) with the value replaced by `value`, and returns the
    /// totals before and after.
    pub(crate) fn write(
        &self,
        stored: &Arc<[u8]>,
        data_start: usize,
        value: &serde_json::Value,
        out: &mut Vec<u8>,
    ) -> Option<(Totals, Totals)> {
        if !Arc::ptr_eq(stored, &self.bytes) || data_start != self.start {
            return None;
        }
        out.extend_from_slice(&stored[data_start..self.value.start]);
        let before = out.len();
        serde_json::to_writer(&mut *out, value).expect("a JSON value always serializes");
        let len = out.len() - before;
        out.extend_from_slice(&stored[self.value.end..]);
        let bytes = self.totals.bytes - self.value.len() + len;
        Some((self.totals, Totals::new(self.totals.keys, bytes)))
    }
}

/// Calls `f` with each key (borrowed unless it holds escapes) and raw value, in order, of
/// the JSON object `text` this crate wrote.
pub(crate) fn walk<'de>(text: &'de [u8], f: impl FnMut(Cow<'de, str>, &'de RawValue)) {
    struct Walk<F>(F);
    impl<'de, F: FnMut(Cow<'de, str>, &'de RawValue)> Visitor<'de> for Walk<F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
            while let Some(Key(key)) = map.next_key()? {
                let value: &'de RawValue = map.next_value()?;
                (self.0)(key, value);
            }
            Ok(())
        }
    }
    let walked = serde_json::Deserializer::from_slice(text).deserialize_map(Walk(f));
    debug_assert!(walked.is_ok(), "this crate wrote the JSON object");
}

/// A key, borrowed from the text unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(v.to_owned().into()))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}
