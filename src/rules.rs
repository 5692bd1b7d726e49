//! The rules a store keeps when it loads and writes, each written once: when a touch is due
//! ([`TouchRule`]), what counts against the size limits ([`Limits`], [`Totals`]), and how a
//! change applies within both ([`WriteRules::apply`], answering [`Applied`]).

use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use crate::record::{Change, Metadata, Record, Touch};

/// When activity moves a session's idle deadline, as the layer's expiry settings say.
///
/// A touch is due when the new idle deadline (`now` plus the session's idle timeout, capped
/// at its absolute deadline) lies more than `step` after the stored one. A session's idle
/// timeout is its own ([`Metadata::idle_timeout`]) if it has one, else the one that fits its
/// persistence flag ([`idle_of`](Self::idle_of)). Stores touch by [`due`](Self::due) exactly, when they load a
/// record for the layer and through [`WriteRules::apply`]; the client-side mode decides by
/// it too.
///
/// ```
/// use session_layer::record::Record;
/// use session_layer::store::TouchRule;
/// use time::{Duration, OffsetDateTime};
///
/// let rule = TouchRule::new(Duration::hours(1), Duration::days(14), Duration::minutes(1));
/// let t = OffsetDateTime::UNIX_EPOCH;
/// let record = Record::new(t, t + Duration::hours(1), t + Duration::days(30));
/// assert_eq!(rule.due(&record.meta, t + Duration::seconds(30)), None);
/// let touch = rule.due(&record.meta, t + Duration::minutes(5)).unwrap();
/// assert_eq!(touch.idle_deadline, t + Duration::minutes(65));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TouchRule {
    /// The idle timeout of a browser-only session.
    pub idle: Duration,
    /// The idle timeout of a persistent ("remember me") session.
    pub persistent_idle: Duration,
    /// The idle deadline is only rewritten when it would move by more than this.
    pub step: Duration,
}

impl TouchRule {
    /// A rule with these idle timeouts and touch step.
    #[must_use]
    pub fn new(idle: Duration, persistent_idle: Duration, step: Duration) -> Self {
        Self {
            idle,
            persistent_idle,
            step,
        }
    }

    /// The idle timeout of a session with this persistence flag.
    #[must_use]
    pub fn idle_for(&self, persistent: bool) -> Duration {
        if persistent {
            self.persistent_idle
        } else {
            self.idle
        }
    }

    /// The idle timeout of a session with these metadata: its own if it has one, else the
    /// one of its persistence class.
    ///
    /// ```
    /// use session_layer::record::Record;
    /// use session_layer::store::TouchRule;
    /// use time::{Duration, OffsetDateTime};
    ///
    /// let rule = TouchRule::new(Duration::hours(1), Duration::days(14), Duration::minutes(1));
    /// let t = OffsetDateTime::UNIX_EPOCH;
    /// let mut record = Record::new(t, t + Duration::hours(1), t + Duration::days(30));
    /// assert_eq!(rule.idle_of(&record.meta), Duration::hours(1));
    /// record.meta.idle_timeout = Some(Duration::minutes(5));
    /// assert_eq!(rule.idle_of(&record.meta), Duration::minutes(5));
    /// ```
    #[must_use]
    pub fn idle_of(&self, meta: &Metadata) -> Duration {
        meta.idle_timeout
            .unwrap_or_else(|| self.idle_for(meta.persistent))
    }

    /// The idle deadline activity at `now` gives a session with these metadata, capped at
    /// its absolute deadline.
    #[must_use]
    pub fn idle_deadline(&self, meta: &Metadata, now: OffsetDateTime) -> OffsetDateTime {
        now.saturating_add(self.idle_of(meta))
            .min(meta.absolute_deadline)
    }

    /// The touch that restarts the idle deadline at `now` with the idle timeout of a
    /// session with these metadata (after the change that calls for it), capped at its
    /// absolute deadline. [`WriteRules::apply`] makes one whenever a change sets the
    /// persistence or the idle timeout: turning "remember me" off, or shortening the idle
    /// timeout, must bring the deadline in, which [`due`](Self::due) never does.
    #[must_use]
    pub fn restart(&self, meta: &Metadata, now: OffsetDateTime) -> Touch {
        Touch {
            seen: now,
            idle_deadline: self.idle_deadline(meta, now),
        }
    }

    /// The touch activity at `now` calls for, or `None` if the idle deadline would move by
    /// `step` or less.
    #[must_use]
    pub fn due(&self, meta: &Metadata, now: OffsetDateTime) -> Option<Touch> {
        let idle_deadline = self.idle_deadline(meta, now);
        (idle_deadline - meta.idle_deadline > self.step).then_some(Touch {
            seen: now,
            idle_deadline,
        })
    }
}

/// The most one session may hold: bytes of data and keys.
///
/// Bytes are counted exactly, per key: the key's UTF-8 length plus the length of the value's
/// compact JSON text (as `serde_json::to_vec` writes it), summed over all keys; see
/// [`entry_bytes`]. A JSON object of the whole session is a few bytes longer (quotes,
/// colons, commas and braces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The most bytes of data, counted as [`entry_bytes`] does.
    pub max_bytes: usize,
    /// The most keys.
    pub max_keys: usize,
}

/// What a session's data adds up to, as [`Limits`] counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Totals {
    /// How many keys.
    pub keys: usize,
    /// How many bytes, as [`entry_bytes`] counts them.
    pub bytes: usize,
}

impl Limits {
    /// Limits of `max_bytes` bytes of data and `max_keys` keys.
    #[must_use]
    pub fn new(max_bytes: usize, max_keys: usize) -> Self {
        Self {
            max_bytes,
            max_keys,
        }
    }

    /// Whether data that adds up to `before` may become `after`: either is within the
    /// limits, or it does not grow on the count that passes them (so a session over limits
    /// lowered since it was written can still shrink).
    ///
    /// ```
    /// use session_layer::store::{Limits, Totals};
    ///
    /// let limits = Limits::new(100, 2);
    /// let (small, big) = (Totals::of(&Default::default()), Totals::new(3, 50));
    /// assert!(!limits.allow(small, big));
    /// assert!(limits.allow(big, Totals::new(3, 40)));
    /// ```
    #[must_use]
    pub fn allow(&self, before: Totals, after: Totals) -> bool {
        (after.keys <= self.max_keys || after.keys <= before.keys)
            && (after.bytes <= self.max_bytes || after.bytes <= before.bytes)
    }
}

impl Limits {
    /// The totals `data` would have once `change` applies, if the change touches the data
    /// and those totals are not [allowed](Self::allow); `None` when the change may be
    /// written.
    #[must_use]
    pub fn refuse(&self, data: &Map<String, Value>, change: &Change) -> Option<Totals> {
        if !change.touches_data() {
            return None;
        }
        let before = Totals::of(data);
        let after = before.then(data, change);
        (!self.allow(before, after)).then_some(after)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(64 * 1024, 1024)
    }
}

impl Totals {
    /// Totals of `keys` keys and `bytes` bytes.
    #[must_use]
    pub fn new(keys: usize, bytes: usize) -> Self {
        Self { keys, bytes }
    }

    /// What `data` adds up to.
    #[must_use]
    pub fn of(data: &Map<String, Value>) -> Self {
        Self {
            keys: data.len(),
            bytes: data.iter().map(|(k, v)| entry_bytes(k, v)).sum(),
        }
    }

    /// What `data` adds up to once `change` is applied to it.
    #[must_use]
    pub fn after(data: &Map<String, Value>, change: &Change) -> Self {
        if change.clear {
            Self::default().then(data, change)
        } else {
            Self::of(data).then(data, change)
        }
    }

    /// What data adding up to `self` adds up to once `key`, which holds `old` (if anything),
    /// is set to `new`: the replaced value counts out, the new one in.
    #[must_use]
    pub fn with_set(self, key: &str, old: Option<&Value>, new: &Value) -> Self {
        let mut totals = self;
        if let Some(old) = old {
            totals.keys -= 1;
            totals.bytes -= entry_bytes(key, old);
        }
        totals.keys += 1;
        totals.bytes += entry_bytes(key, new);
        totals
    }

    /// What `data`, which adds up to `self`, adds up to once `change` is applied: for a
    /// caller that needs both totals and should count the stored values once.
    pub(crate) fn then(self, data: &Map<String, Value>, change: &Change) -> Self {
        let mut totals = if change.clear { Self::default() } else { self };
        let stored = |key: &str| (!change.clear).then(|| data.get(key)).flatten();
        for key in &change.remove {
            if let Some(old) = stored(key) {
                totals.keys -= 1;
                totals.bytes -= entry_bytes(key, old);
            }
        }
        for (key, value) in &change.set {
            // `Change::set` and `Change::remove` keep one entry per key.
            if let Some(old) = stored(key).filter(|_| !change.remove.contains(key)) {
                totals.keys -= 1;
                totals.bytes -= entry_bytes(key, old);
            }
            totals.keys += 1;
            totals.bytes += entry_bytes(key, value);
        }
        totals
    }
}

/// How many bytes `value` under `key` counts for [`Limits::max_bytes`]: the key's UTF-8
/// length plus the length of the value's compact JSON text.
///
/// ```
/// use serde_json::json;
/// assert_eq!(session_layer::store::entry_bytes("cart", &json!(["apple"])), 4 + 9);
/// ```
#[must_use]
pub fn entry_bytes(key: &str, value: &Value) -> usize {
    key.len() + json_len(value)
}

/// The length of `value`'s compact JSON text, without keeping the text.
fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` cannot fail: its map keys are strings and the sink never errs.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// What a write must keep: the size limits of the result, when activity moves the idle
/// deadline, and how far a session's own end time may lie. The layer passes them to a
/// store's `apply` and `rotate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteRules {
    /// The limits the session must keep after the write.
    pub limits: Limits,
    /// When the write also moves the idle deadline.
    pub touch: TouchRule,
    /// How long a session lives from its creation unless it has an end time of its own: the
    /// layer's absolute timeout.
    pub lifetime: Duration,
    /// The latest a session's own end time may lie after its creation: the layer's longest
    /// session lifetime, at least [`lifetime`](Self::lifetime).
    pub max_lifetime: Duration,
}

/// The layer's default absolute timeout, 30 days.
const DEFAULT_LIFETIME: Duration = Duration::days(30);

impl WriteRules {
    /// Rules with these limits and this touch rule, and the layer's default lifetime (30
    /// days, which an end time of a session's own cannot pass).
    #[must_use]
    pub fn new(limits: Limits, touch: TouchRule) -> Self {
        Self {
            limits,
            touch,
            lifetime: DEFAULT_LIFETIME,
            max_lifetime: DEFAULT_LIFETIME,
        }
    }

    /// These rules with a session lifetime of `lifetime` (the absolute timeout), and end
    /// times of a session's own allowed up to `max_lifetime` after its creation (raised to
    /// `lifetime` if shorter).
    ///
    /// ```
    /// use session_layer::store::{Limits, TouchRule, WriteRules};
    /// use time::{Duration, OffsetDateTime};
    ///
    /// let touch = TouchRule::new(Duration::hours(1), Duration::days(14), Duration::minutes(1));
    /// let rules = WriteRules::new(Limits::default(), touch)
    ///     .with_lifetime(Duration::days(30), Duration::days(90));
    /// let t = OffsetDateTime::UNIX_EPOCH;
    /// assert_eq!(rules.end_time(t, None), t + Duration::days(30));
    /// assert_eq!(rules.end_time(t, Some(t + Duration::days(60))), t + Duration::days(60));
    /// assert_eq!(rules.end_time(t, Some(t + Duration::days(900))), t + Duration::days(90));
    /// ```
    #[must_use]
    pub fn with_lifetime(mut self, lifetime: Duration, max_lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self.max_lifetime = max_lifetime.max(lifetime);
        self
    }

    /// The absolute deadline of a session created at `created` with the end time `at` of
    /// its own (`None`: the layer's lifetime): `at`, no earlier than the creation and no
    /// later than the longest lifetime after it.
    #[must_use]
    pub fn end_time(&self, created: OffsetDateTime, at: Option<OffsetDateTime>) -> OffsetDateTime {
        match at {
            None => created.saturating_add(self.lifetime),
            Some(at) => at
                .min(created.saturating_add(self.max_lifetime))
                .max(created),
        }
    }

    /// Applies the metadata part of `change` at `now`, as every store and the client-side
    /// mode must:
    ///
    /// 1. The fields the change sets: touch, persistence, owner, idle timeout.
    /// 2. A new end time becomes the absolute deadline ([`end_time`](Self::end_time)), and
    ///    the idle deadline is capped at it.
    /// 3. Unless the change carries a touch of its own: if it sets the persistence or the
    ///    idle timeout, the idle deadline restarts at `now` with the session's idle timeout
    ///    after the change ([`TouchRule::restart`]); otherwise a touch
    ///    [due](TouchRule::due) is made.
    ///
    /// ```
    /// use session_layer::record::{Change, Record};
    /// use session_layer::store::{Limits, TouchRule, WriteRules};
    /// use time::{Duration, OffsetDateTime};
    ///
    /// let touch = TouchRule::new(Duration::hours(1), Duration::days(14), Duration::minutes(1));
    /// let rules = WriteRules::new(Limits::default(), touch);
    /// let t = OffsetDateTime::UNIX_EPOCH;
    /// let mut meta = Record::new(t, t + Duration::hours(1), t + Duration::days(30)).meta;
    /// let mut change = Change::default();
    /// change.idle_timeout = Some(Some(Duration::minutes(10)));
    /// rules.apply_meta(&change, &mut meta, t + Duration::seconds(5));
    /// assert_eq!(meta.idle_deadline, t + Duration::seconds(5) + Duration::minutes(10));
    /// ```
    pub fn apply_meta(&self, change: &Change, meta: &mut Metadata, now: OffsetDateTime) {
        change.apply_meta(meta);
        if let Some(at) = change.expires_at {
            meta.absolute_deadline = self.end_time(meta.created, at);
            meta.idle_deadline = meta.idle_deadline.min(meta.absolute_deadline);
        }
        if change.touch.is_some() {
            // The change's own touch stands.
        } else if change.persistent.is_some() || change.idle_timeout.is_some() {
            self.touch.restart(meta, now).apply_to(meta);
        } else if let Some(touch) = self.touch.due(meta, now) {
            touch.apply_to(meta);
        }
    }

    /// Applies `change` to `record` as every store must, in this order:
    ///
    /// 1. A record that is not live at `now` is [`Applied::Gone`], unchanged.
    /// 2. If the change alters the data and the result would not be
    ///    [allowed](Limits::allow) by the limits, [`Applied::TooLarge`] with the totals it
    ///    would have had, unchanged.
    /// 3. The change applies: its data ([`Change::apply_data`]), then its metadata with
    ///    [`apply_meta`](Self::apply_meta) (a new end time, the idle restart when the
    ///    persistence or the idle timeout changes, else a due touch).
    ///
    /// A store that reads, modifies and writes under its own lock or transaction calls this
    /// on the record it read, and writes the record back only on [`Applied::Done`].
    ///
    /// ```
    /// use session_layer::record::{Change, Record};
    /// use session_layer::store::{Applied, Limits, TouchRule, WriteRules};
    /// use time::{Duration, OffsetDateTime};
    ///
    /// let rules = WriteRules::new(
    ///     Limits::new(100, 2),
    ///     TouchRule::new(Duration::hours(1), Duration::days(14), Duration::minutes(1)),
    /// );
    /// let t = OffsetDateTime::UNIX_EPOCH;
    /// let mut record = Record::new(t, t + Duration::hours(1), t + Duration::days(30));
    /// let mut change = Change::default();
    /// change.set("cart", serde_json::json!(["apple"]));
    /// let Applied::Done(meta) = rules.apply(&mut record, &change, t + Duration::minutes(5)) else {
    ///     panic!("a small change of a live record applies");
    /// };
    /// assert_eq!(meta.idle_deadline, t + Duration::minutes(65), "the due touch came along");
    /// assert_eq!(rules.apply(&mut record, &change, t + Duration::days(31)), Applied::Gone);
    /// ```
    pub fn apply(&self, record: &mut Record, change: &Change, now: OffsetDateTime) -> Applied {
        if !record.is_live(now) {
            return Applied::Gone;
        }
        if let Some(after) = self.limits.refuse(record.data(), change) {
            return Applied::TooLarge(after);
        }
        if change.touches_data() {
            change.apply_data(record.data_mut());
        }
        self.apply_meta(change, &mut record.meta, now);
        Applied::Done(record.meta.clone())
    }
}

/// What [`WriteRules::apply`] (and so a store's `apply`) found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applied {
    /// The change (and a due touch) is applied; here is the metadata afterwards.
    Done(Metadata),
    /// No live record under the key: nothing was written.
    Gone,
    /// The session would pass its limits: nothing was written. These are the totals it
    /// would have reached.
    TooLarge(Totals),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn totals_after_a_change_count_replaced_and_removed_keys_once() {
        let mut data = Map::new();
        data.insert("a".into(), json!("xx"));
        data.insert("b".into(), json!(1));
        assert_eq!(Totals::of(&data), Totals::new(2, 1 + 4 + 1 + 1));
        let mut change = Change::default();
        change.set("a", json!("xxxx"));
        change.remove("b");
        change.remove("absent");
        change.set("c", json!(null));
        assert_eq!(Totals::after(&data, &change), Totals::new(2, 1 + 6 + 1 + 4));
        change.clear();
        change.set("d", json!(true));
        assert_eq!(Totals::after(&data, &change), Totals::new(1, 1 + 4));
    }

    #[test]
    fn entry_bytes_match_the_json_text() {
        let value = json!({"k": ["é", 1.5, null, "quote \""]});
        assert_eq!(
            entry_bytes("key", &value),
            3 + serde_json::to_vec(&value).unwrap().len()
        );
    }
}
