//! A session's data still in the JSON text a store kept, read without building the map: one
//! key's value, or the totals the limits count.
//!
//! The text is a compact JSON object this crate wrote itself (`serde_json` output of a map,
//! so no key twice), so a value's raw text is as long as
//! [`entry_bytes`](crate::store::entry_bytes) counts it. Each read walks the text; most
//! requests read one key once (a walk that builds an index of the entries, tried, cost more
//! than it saved). A walk counts the totals on its way, for a write that follows the read.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
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
        self.walk_counting(|k, v| {
            if k == key {
                found = Some(v.get().as_bytes());
            }
        });
        found
    }

    /// What the data adds up to, as the limits count it.
    pub(crate) fn totals(&self) -> Totals {
        match self.counted_keys.load(Ordering::Acquire) {
            0 => self.walk_counting(|_, _| {}),
            keys => Totals::new(keys - 1, self.counted_bytes.load(Ordering::Relaxed)),
        }
    }

    fn walk_counting<'a>(&'a self, mut f: impl FnMut(&str, &'a RawValue)) -> Totals {
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
