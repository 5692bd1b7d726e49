//! What every request of one layer shares, whichever keeper holds its sessions: the cookie's
//! name and rendered attributes, the rules of expiry and size, the clock, and the status of
//! a failed save.

use std::fmt;
use std::sync::Arc;

use http::{HeaderValue, StatusCode};
use time::OffsetDateTime;

use crate::clock::{to_millis, Clock};
use crate::config::{MAX_COOKIE_AGE, MAX_TIMEOUT, MAX_TIMEOUT_DAYS};
use crate::record::{Change, Metadata, Record};
use crate::rules::WriteRules;
use crate::set_cookie::SetCookie;

pub(crate) struct Settings {
    /// Matched byte for byte against the names in `Cookie` headers.
    pub(crate) cookie_name: Box<str>,
    pub(crate) set_cookie: SetCookie,
    /// The size limits, the touch rule (idle timeouts and step) and the session lifetimes.
    pub(crate) rules: WriteRules,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) save_error_status: StatusCode,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("cookie_name", &self.cookie_name)
            .field("rules", &self.rules)
            .field("save_error_status", &self.save_error_status)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// The layer's clock, rounded down to the millisecond every store keeps.
    pub(crate) fn now(&self) -> OffsetDateTime {
        to_millis(self.clock.now())
    }

    /// The metadata of a session created at `now` holding `change`.
    pub(crate) fn fresh_meta(&self, change: &Change, now: OffsetDateTime) -> Metadata {
        let rules = &self.rules;
        let mut meta = Record::new(
            now,
            now.saturating_add(rules.touch.idle_for(false)),
            rules.end_time(now, None),
        )
        .meta;
        rules.apply_meta(change, &mut meta, now);
        meta
    }

    /// `idle` as a session's own idle timeout, or why it is refused: the limits the
    /// builder sets on the layer's idle timeouts.
    pub(crate) fn own_idle_timeout(
        &self,
        idle: std::time::Duration,
    ) -> Result<time::Duration, String> {
        if idle > MAX_TIMEOUT {
            return Err(format!(
                "an idle timeout longer than the largest accepted, {MAX_TIMEOUT_DAYS} days \
                 (session_layer::MAX_TIMEOUT)"
            ));
        }
        let idle = time::Duration::try_from(idle).unwrap_or(time::Duration::MAX);
        let idle = time::Duration::milliseconds(
            i64::try_from(idle.whole_milliseconds()).unwrap_or(i64::MAX),
        );
        if idle < time::Duration::SECOND {
            return Err("an idle timeout must be at least one second".to_owned());
        }
        if idle <= self.rules.touch.step {
            return Err(format!(
                "an idle timeout must be longer than the layer's touch step ({} s), or activity \
                 would never move the session's deadline",
                self.rules.touch.step.whole_seconds()
            ));
        }
        Ok(idle)
    }

    /// `at` as a session's own end time at `now`, or why it is refused: no layer accepts
    /// a lifetime past [`MAX_TIMEOUT`] either. The layer's longest session lifetime is
    /// applied later, by the write rules, since it counts from the session's creation.
    pub(crate) fn own_end_time(
        now: time::OffsetDateTime,
        at: time::OffsetDateTime,
    ) -> Result<time::OffsetDateTime, String> {
        let max = time::Duration::try_from(MAX_TIMEOUT).unwrap_or(time::Duration::MAX);
        if (at - now).abs() > max {
            return Err(format!(
                "an end time {} days from now is further than the largest accepted, \
                 {MAX_TIMEOUT_DAYS} days (session_layer::MAX_TIMEOUT)",
                (at - now).whole_days()
            ));
        }
        Ok(at)
    }

    /// Whether a session's cookie carries a `Max-Age`: a persistent session's does, and so
    /// does that of a session with an expiry of its own (an idle timeout, or an end time
    /// other than the layer's lifetime), so the browser drops the cookie when the session
    /// ends. Any other ends with the browser session.
    pub(crate) fn has_max_age(&self, meta: &Metadata) -> bool {
        meta.persistent
            || meta.idle_timeout.is_some()
            || meta.absolute_deadline != self.rules.end_time(meta.created, None)
    }

    /// The record a session created at `now` starts with, holding `change`; `None` when the
    /// change holds nothing worth keeping (no data and no user), so no session is created.
    pub(crate) fn fresh_record(&self, change: &Change, now: OffsetDateTime) -> Option<Record> {
        if change.set.is_empty() && !matches!(change.user, Some(Some(_))) {
            return None;
        }
        let mut record = Record::from_parts(serde_json::Map::new(), self.fresh_meta(change, now));
        change.apply_data(record.data_mut());
        Some(record)
    }

    /// The `Set-Cookie` that sets the session cookie to `value`: the cookie of a session
    /// that [has one](Self::has_max_age) gets a `Max-Age` of its remaining lifetime (at most
    /// what browsers keep), any other ends with the browser session.
    pub(crate) fn cookie(&self, value: &str, meta: &Metadata, now: OffsetDateTime) -> HeaderValue {
        let max_age = self.has_max_age(meta).then(|| {
            let remaining = (meta.expires() - now).max(time::Duration::ZERO);
            let cap = time::Duration::try_from(MAX_COOKIE_AGE).unwrap_or(time::Duration::MAX);
            remaining.min(cap)
        });
        self.set_cookie.set(value, max_age)
    }
}
