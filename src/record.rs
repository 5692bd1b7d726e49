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
//! change.apply_data(record.data_mut());
//! assert_eq!(record.data()["cart"], serde_json::json!(["apple"]));
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

/// A session's data and metadata, as a store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    data: Map<String, Value>,
    /// Times, flags and owner of the session.
    pub meta: Metadata,
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
    /// The session ends here whatever happens: its creation plus the layer's absolute
    /// timeout, or the end time it was given of its own
    /// ([`Session::set_expires_at`](crate::Session::set_expires_at)).
    #[serde(with = "time::serde::timestamp::milliseconds")]
    pub absolute_deadline: OffsetDateTime,
    /// A "remember me" session, whose cookie outlives the browser session.
    pub persistent: bool,
    /// The user the session belongs to, for listing and revoking a user's sessions.
    pub user: Option<String>,
    /// The session's own idle timeout, in whole milliseconds
    /// ([`Session::set_idle_timeout`](crate::Session::set_idle_timeout)); `None` for the
    /// layer's timeout of its persistence class.
    #[serde(
        default,
        with = "optional_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub idle_timeout: Option<Duration>,
}

/// An optional duration as whole milliseconds.
mod optional_millis {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use time::Duration;

    // serde's `with` passes a reference to the field.
    #[allow(clippy::ref_option)]
    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        d.map(|d| i64::try_from(d.whole_milliseconds()).unwrap_or(i64::MAX))
            .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<i64>::deserialize(d)?.map(Duration::milliseconds))
    }
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
            data: Map::new(),
            meta: Metadata {
                created: now,
                last_seen: now,
                idle_deadline: idle_deadline.min(absolute_deadline),
                absolute_deadline,
                persistent: false,
                user: None,
                idle_timeout: None,
            },
        }
    }

    /// Builds a record from parts a store kept apart (for example, columns of a table).
    #[must_use]
    pub fn from_parts(data: Map<String, Value>, meta: Metadata) -> Self {
        Self { data, meta }
    }

    /// The session's data: keys to JSON values.
    #[must_use]
    pub fn data(&self) -> &Map<String, Value> {
        &self.data
    }

    /// Mutable access to the data.
    pub fn data_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.data
    }

    /// The data and the metadata, apart.
    #[must_use]
    pub fn into_parts(self) -> (Map<String, Value>, Metadata) {
        (self.data, self.meta)
    }

    /// Whether the record is alive at `now`.
    #[must_use]
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.meta.is_live(now)
    }
}

/// The changes one request makes to a session, applied by a store in one atomic step.
///
/// Order of application: `clear` (remove every key), then `remove`, then `set`, then the
/// metadata fields that are `Some`. A new idle deadline is capped at the absolute deadline,
/// so no change lets a session outlive it.
///
/// A new end time ([`expires_at`](Self::expires_at)) and the idle deadline's restart when
/// persistence or the idle timeout changes need the layer's rules: a store applies a change
/// with [`WriteRules::apply`](crate::store::WriteRules::apply), which does both.
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
    /// A new idle timeout of the session's own: `Some(None)` returns it to the layer's
    /// timeout of its persistence class.
    pub idle_timeout: Option<Option<Duration>>,
    /// A new end time of the session's own: `Some(None)` returns it to its creation plus the
    /// layer's absolute timeout. [`WriteRules::apply`](crate::store::WriteRules::apply) keeps
    /// it within the layer's longest session lifetime and sets the absolute deadline to it.
    pub expires_at: Option<Option<OffsetDateTime>>,
}

/// A move of the idle deadline caused by activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touch {
    /// When the activity happened; becomes `last_seen`.
    pub seen: OffsetDateTime,
    /// The new idle deadline (a store caps it at the absolute deadline).
    pub idle_deadline: OffsetDateTime,
}

impl Touch {
    /// Moves `meta`'s `last_seen` and idle deadline, capping the deadline at the absolute one.
    pub fn apply_to(&self, meta: &mut Metadata) {
        meta.last_seen = self.seen;
        meta.idle_deadline = self.idle_deadline.min(meta.absolute_deadline);
    }
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
            && !self.alters_expiry()
    }

    /// Whether the change sets the session's persistence, idle timeout or end time: what
    /// decides when it ends, beyond a touch.
    #[must_use]
    pub fn alters_expiry(&self) -> bool {
        self.persistent.is_some() || self.idle_timeout.is_some() || self.expires_at.is_some()
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

    /// Applies the change to a record, except a new end time and the idle restart, which
    /// need the layer's rules: only this crate's tests use it; stores call
    /// [`WriteRules::apply`](crate::store::WriteRules::apply).
    #[cfg(test)]
    pub(crate) fn apply_to(&self, record: &mut Record) {
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

    /// Applies only the fields the change sets to the metadata; a new end time and the idle
    /// restart need the layer's rules, so only
    /// [`WriteRules::apply_meta`](crate::store::WriteRules::apply_meta) calls this.
    pub(crate) fn apply_meta(&self, meta: &mut Metadata) {
        if let Some(touch) = self.touch {
            touch.apply_to(meta);
        }
        if let Some(persistent) = self.persistent {
            meta.persistent = persistent;
        }
        if let Some(user) = &self.user {
            meta.user.clone_from(user);
        }
        if let Some(idle_timeout) = self.idle_timeout {
            meta.idle_timeout = idle_timeout;
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
        r.meta.idle_timeout = Some(Duration::minutes(5));
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), r);
    }
}
