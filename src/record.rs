//! What a store keeps for one session, and the per-key changes a request applies to it.
//!
//! A [`Record`] is the session's data (a JSON object: keys to values, data only, never
//! code) plus its [`Metadata`]: when it was created and last seen, its idle and absolute
//! deadlines, whether it is persistent ("remember me"), and the user it belongs to.
//!
//! Requests do not write whole records back. They send a [`Change`]: keys set, keys removed,
//! and new metadata. A store applies a change atomically to the live record, so two requests
//! of one session that write different keys at the same time both keep their writes.
//!
//! ```
//! use session_layer::record::{Change, Record};
//! use time::{Duration, OffsetDateTime};
//!
//! let now = OffsetDateTime::now_utc();
//! let mut record = Record::new(now, now + Duration::hours(1), now + Duration::days(1));
//! let mut change = Change::default();
//! change.set("cart", serde_json::json!(["apple"]));
//! change.apply_to(&mut record);
//! assert_eq!(record.data()["cart"], serde_json::json!(["apple"]));
//! ```

pub(crate) mod json;

use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use self::json::JsonText;
use crate::store::Totals;

/// A session's data and metadata, as a store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    data: Data,
    /// Times, flags and owner of the session.
    pub meta: Metadata,
}

/// A record's data: a map, or the JSON text a store kept (`MemoryStore` shares its packed
/// record), which most requests read one key of and never need as a map (it is built on
/// first use of [`Record::data`]).
#[derive(Clone)]
enum Data {
    Map(Map<String, Value>),
    Json {
        text: JsonText,
        map: OnceLock<Map<String, Value>>,
    },
}

impl Data {
    fn map(&self) -> &Map<String, Value> {
        match self {
            Self::Map(map) => map,
            Self::Json { text, map } => map.get_or_init(|| parse(text)),
        }
    }
}

fn parse(text: &JsonText) -> Map<String, Value> {
    serde_json::from_slice(text.as_bytes()).expect("this crate wrote the JSON object")
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.map().fmt(f)
    }
}

impl PartialEq for Data {
    fn eq(&self, other: &Self) -> bool {
        self.map() == other.map()
    }
}

impl Serialize for Data {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.map().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Map::deserialize(deserializer).map(Self::Map)
    }
}

/// Everything about a session except its data.
///
/// Times are whole milliseconds (the layer's clock rounds down to them), so every store can
/// keep them exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// When the session was first stored.
    #[serde(with = "time::serde::timestamp::milliseconds")]
    pub created: OffsetDateTime,
    /// The last request that moved the idle deadline.
    #[serde(with = "time::serde::timestamp::milliseconds")]
    pub last_seen: OffsetDateTime,
    /// The session ends here unless a request moves it (sliding).
    #[serde(with = "time::serde::timestamp::milliseconds")]
    pub idle_deadline: OffsetDateTime,
    /// The session ends here whatever happens (fixed at creation).
    #[serde(with = "time::serde::timestamp::milliseconds")]
    pub absolute_deadline: OffsetDateTime,
    /// A "remember me" session, whose cookie outlives the browser session.
    pub persistent: bool,
    /// The user the session belongs to, for listing and revoking a user's sessions.
    pub user: Option<String>,
}

impl Metadata {
    /// The earlier of the two deadlines: when the session ends if nothing else happens.
    #[must_use]
    pub fn expires(&self) -> OffsetDateTime {
        self.idle_deadline.min(self.absolute_deadline)
    }

    /// Whether the session is still alive at `now`: both deadlines lie after it.
    #[must_use]
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        now < self.expires()
    }
}

impl Record {
    /// An empty record created at `now` with the given deadlines. The idle deadline is capped
    /// at the absolute one.
    #[must_use]
    pub fn new(
        now: OffsetDateTime,
        idle_deadline: OffsetDateTime,
        absolute_deadline: OffsetDateTime,
    ) -> Self {
        Self {
            data: Data::Map(Map::new()),
            meta: Metadata {
                created: now,
                last_seen: now,
                idle_deadline: idle_deadline.min(absolute_deadline),
                absolute_deadline,
                persistent: false,
                user: None,
            },
        }
    }

    /// Builds a record from parts a store kept apart (for example, columns of a table).
    #[must_use]
    pub fn from_parts(data: Map<String, Value>, meta: Metadata) -> Self {
        Self {
            data: Data::Map(data),
            meta,
        }
    }

    /// A record whose data is the compact JSON object `text` this crate wrote, read without
    /// building the map until something asks for it.
    pub(crate) fn from_json(text: JsonText, meta: Metadata) -> Self {
        Self {
            data: Data::Json {
                text,
                map: OnceLock::new(),
            },
            meta,
        }
    }

    /// The session's data: keys to JSON values.
    #[must_use]
    pub fn data(&self) -> &Map<String, Value> {
        self.data.map()
    }

    /// Mutable access to the data.
    pub fn data_mut(&mut self) -> &mut Map<String, Value> {
        if let Data::Json { text, map } = &mut self.data {
            let map = map.take().unwrap_or_else(|| parse(text));
            self.data = Data::Map(map);
        }
        match &mut self.data {
            Data::Map(map) => map,
            Data::Json { .. } => unreachable!("made a map above"),
        }
    }

    /// Whether the record is alive at `now`.
    #[must_use]
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.meta.is_live(now)
    }

    /// The value under `key` as a `T`, read from the JSON text where the record still holds
    /// it as text.
    pub(crate) fn value<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Option<Result<T, serde_json::Error>> {
        match &self.data {
            Data::Json { text, map } if map.get().is_none() => {
                text.get(key).map(serde_json::from_slice)
            }
            data => data.map().get(key).map(T::deserialize),
        }
    }

    /// How a store that still holds the text this record was read from can write `change`
    /// by replacing one value: when the change sets one key, removes none, and that key was
    /// the last one read.
    pub(crate) fn splice_for(&self, change: &Change) -> Option<json::Splice> {
        let Data::Json { text, .. } = &self.data else {
            return None;
        };
        text.splice(change.single_set()?.0)
    }

    /// What the data adds up to, as the limits count it.
    pub(crate) fn totals(&self) -> Totals {
        match &self.data {
            Data::Json { text, map } if map.get().is_none() => text.totals(),
            data => Totals::of(data.map()),
        }
    }

    /// Writes the data, with `change`'s data applied if given, as a compact JSON object,
    /// without building the changed map: the entries the change leaves alone, then the ones
    /// it sets. (Client-side records hold a map: the cookie's payload is parsed once when it
    /// opens, as a save reads every entry anyway.)
    #[cfg(feature = "client-side")]
    pub(crate) fn write_data(&self, change: Option<&Change>, out: &mut Vec<u8>) {
        let changed = Changed {
            data: self.data(),
            change,
        };
        serde_json::to_writer(out, &changed).expect("a JSON map of JSON values always serializes");
    }
}

/// A map with a change applied, as it serializes.
#[cfg(feature = "client-side")]
struct Changed<'a> {
    data: &'a Map<String, Value>,
    change: Option<&'a Change>,
}

#[cfg(feature = "client-side")]
impl Serialize for Changed<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let change = self.change;
        let mut map = serializer.serialize_map(None)?;
        if !change.is_some_and(|c| c.clear) {
            // `set` and `remove` never share a key, so `lookup` names every key they touch.
            for (key, value) in self.data {
                if change.is_none_or(|c| c.lookup(key).is_none()) {
                    map.serialize_entry(key, value)?;
                }
            }
        }
        for (key, value) in change.map_or(&[][..], |c| &c.set[..]) {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// The changes one request makes to a session, applied by a store in one atomic step.
///
/// Order of application: `clear` (remove every key), then `remove`, then `set`, then the
/// metadata fields that are `Some`. A new idle deadline is capped at the absolute deadline,
/// so no change lets a session outlive it.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Change {
    /// Remove every key before the other changes apply.
    pub clear: bool,
    /// Keys to remove.
    pub remove: Vec<String>,
    /// Keys to set, with their new values (the last write of a key in one request wins).
    pub set: Vec<(String, Value)>,
    /// A new idle deadline (activity), with the time it was seen.
    pub touch: Option<Touch>,
    /// A new persistence flag.
    pub persistent: Option<bool>,
    /// A new owner: `Some(None)` removes the user.
    pub user: Option<Option<String>>,
    /// Where the one key this change sets sits in the stored text the request read.
    pub(crate) splice: SpliceHint,
}

/// A hint for the store, not part of what a change says: it takes no part in equality.
#[derive(Clone, Default)]
pub(crate) struct SpliceHint(pub(crate) Option<json::Splice>);

impl PartialEq for SpliceHint {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for SpliceHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

/// A move of the idle deadline caused by activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touch {
    /// When the activity happened; becomes `last_seen`.
    pub seen: OffsetDateTime,
    /// The new idle deadline (a store caps it at the absolute deadline).
    pub idle_deadline: OffsetDateTime,
}

impl Change {
    /// Whether the change alters nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.clear
            && self.remove.is_empty()
            && self.set.is_empty()
            && self.touch.is_none()
            && self.persistent.is_none()
            && self.user.is_none()
    }

    /// The one key and value the change sets, if that is all it does to the data.
    pub(crate) fn single_set(&self) -> Option<(&str, &Value)> {
        match &self.set[..] {
            [(key, value)] if !self.clear && self.remove.is_empty() => Some((key, value)),
            _ => None,
        }
    }

    /// Whether the change alters the session's data (not only its metadata).
    #[must_use]
    pub fn touches_data(&self) -> bool {
        self.clear || !self.remove.is_empty() || !self.set.is_empty()
    }

    /// Records that `key` is set to `value`, replacing an earlier write of the same key.
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        self.remove.retain(|k| *k != key);
        match self.set.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.set.push((key, value)),
        }
    }

    /// Records that `key` is removed, replacing an earlier write of the same key.
    pub fn remove(&mut self, key: impl Into<String>) {
        let key = key.into();
        self.set.retain(|(k, _)| *k != key);
        if !self.remove.contains(&key) {
            self.remove.push(key);
        }
    }

    /// Records that every key is removed, forgetting earlier writes of this request.
    pub fn clear(&mut self) {
        self.clear = true;
        self.set.clear();
        self.remove.clear();
    }

    /// What this change says about `key`: `Some(Some(v))` set, `Some(None)` removed, `None`
    /// nothing (the stored value stands).
    #[must_use]
    pub fn lookup(&self, key: &str) -> Option<Option<&Value>> {
        if let Some((_, v)) = self.set.iter().find(|(k, _)| k == key) {
            return Some(Some(v));
        }
        if self.clear || self.remove.iter().any(|k| k == key) {
            return Some(None);
        }
        None
    }

    /// Applies the change to a record, as a store that reads, modifies and writes must.
    pub fn apply_to(&self, record: &mut Record) {
        if self.touches_data() {
            self.apply_data(record.data_mut());
        }
        self.apply_meta(&mut record.meta);
    }

    /// Applies only the data part of the change: `clear`, then `remove`, then `set`.
    pub fn apply_data(&self, data: &mut Map<String, Value>) {
        if self.clear {
            data.clear();
        }
        for key in &self.remove {
            data.remove(key);
        }
        for (key, value) in &self.set {
            data.insert(key.clone(), value.clone());
        }
    }

    /// Applies only the metadata part of the change.
    pub fn apply_meta(&self, meta: &mut Metadata) {
        if let Some(touch) = self.touch {
            meta.last_seen = touch.seen;
            meta.idle_deadline = touch.idle_deadline.min(meta.absolute_deadline);
        }
        if let Some(persistent) = self.persistent {
            meta.persistent = persistent;
        }
        if let Some(user) = &self.user {
            meta.user.clone_from(user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::Duration;

    fn record() -> Record {
        let now = OffsetDateTime::UNIX_EPOCH;
        Record::new(now, now + Duration::hours(1), now + Duration::hours(2))
    }

    #[test]
    #[cfg(feature = "client-side")]
    fn data_written_with_a_change_is_the_changed_map() {
        let mut data = Map::new();
        for (k, v) in [("keep", json!(1)), ("drop", json!(2)), ("swap", json!(3))] {
            data.insert(k.into(), v);
        }
        let mut changes = vec![Change::default()];
        let mut c = Change::default();
        c.set("swap", json!("new"));
        c.remove("drop");
        c.set("add", json!([1, 2]));
        changes.push(c);
        let mut c = Change::default();
        c.clear();
        c.set("only", json!(null));
        changes.push(c);
        let mut c = Change::default();
        c.remove("nothing-there");
        c.persistent = Some(true);
        changes.push(c);
        let as_map = Record::from_parts(data.clone(), record().meta);
        let text = JsonText::new(serde_json::to_vec(&data).unwrap().into(), 0);
        let as_text = Record::from_json(text, record().meta);
        for change in changes {
            let mut applied = data.clone();
            change.apply_data(&mut applied);
            for stored in [&as_map, &as_text] {
                let mut text = Vec::new();
                stored.write_data(Some(&change), &mut text);
                let text = String::from_utf8(text).unwrap();
                let parsed: Map<String, Value> = serde_json::from_str(&text).unwrap();
                assert_eq!(parsed, applied, "{change:?}");
                assert_eq!(text.len(), serde_json::to_string(&applied).unwrap().len());
            }
        }
    }

    #[test]
    fn a_record_read_from_its_json_text_answers_as_its_map_does() {
        let mut data = Map::new();
        for (k, v) in [
            ("n", json!(7)),
            ("es\"ca\\ped\n é", json!({"nested": [1, 2.5, "x"]})),
            ("f", json!(1.234_567_890_123_454_7e31)),
            ("s", json!("\u{1} quoted \" text")),
            ("none", json!(null)),
        ] {
            data.insert(k.into(), v);
        }
        let as_map = Record::from_parts(data.clone(), record().meta);
        let text = JsonText::new(serde_json::to_vec(&data).unwrap().into(), 0);
        let as_text = Record::from_json(text, record().meta);
        assert_eq!(as_text.totals(), Totals::of(&data));
        for key in data.keys().map(String::as_str).chain(["missing", "es"]) {
            let read: Option<Value> = as_text.value(key).transpose().unwrap();
            assert_eq!(read.as_ref(), data.get(key), "{key:?}");
            let typed = as_text.value::<u64>(key).map(|r| r.ok());
            assert_eq!(typed, as_map.value::<u64>(key).map(|r| r.ok()), "{key:?}");
        }
        // Counted once by a read, the totals stay right.
        assert_eq!(as_text.totals(), Totals::of(&data));
        assert_eq!(as_text, as_map);
        let mut changed = as_text.clone();
        changed.data_mut().insert("added".into(), json!(true));
        assert_eq!(changed.data().len(), data.len() + 1);
        assert_eq!(changed.totals(), Totals::of(changed.data()));
        assert_eq!(
            as_text.data(),
            &data,
            "a clone's change left the original alone"
        );
    }

    #[test]
    fn later_writes_of_a_key_replace_earlier_ones() {
        let mut change = Change::default();
        change.set("a", json!(1));
        change.remove("a");
        change.set("a", json!(2));
        assert_eq!(change.lookup("a"), Some(Some(&json!(2))));
        let mut r = record();
        change.apply_to(&mut r);
        assert_eq!(r.data()["a"], json!(2));
    }

    #[test]
    fn clear_then_set_keeps_only_the_new_keys() {
        let mut r = record();
        r.data_mut().insert("old".into(), json!(true));
        let mut change = Change::default();
        change.clear();
        change.set("new", json!(1));
        assert_eq!(change.lookup("old"), Some(None));
        change.apply_to(&mut r);
        assert_eq!(r.data().len(), 1);
        assert_eq!(r.data()["new"], json!(1));
    }

    #[test]
    fn a_touch_never_passes_the_absolute_deadline() {
        let mut r = record();
        let change = Change {
            touch: Some(Touch {
                seen: r.meta.created + Duration::minutes(90),
                idle_deadline: r.meta.created + Duration::hours(5),
            }),
            ..Change::default()
        };
        change.apply_to(&mut r);
        assert_eq!(r.meta.idle_deadline, r.meta.absolute_deadline);
    }

    #[test]
    fn records_survive_a_json_round_trip() {
        let mut r = record();
        r.data_mut().insert("k".into(), json!({"nested": [1, 2]}));
        r.meta.user = Some("alice".into());
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), r);
    }
}
