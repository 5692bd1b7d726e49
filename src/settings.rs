//! What every request of one layer shares, whichever keeper holds its sessions: the cookie's
//! name and rendered attributes, the rules of expiry and size, the clock, and the status of
//! a failed save.

use std::fmt;
use std::sync::Arc;

use http::{HeaderValue, StatusCode};
use time::OffsetDateTime;

use crate::clock::{to_millis, Clock};
use crate::config::MAX_COOKIE_AGE;
use crate::record::{Change, Metadata, Record};
use crate::rules::WriteRules;
use crate::set_cookie::SetCookie;

pub(crate) struct Settings {
    /// Matched byte for byte against the names in `Cookie` headers.
    pub(crate) cookie_name: Box<str>,
    pub(crate) set_cookie: SetCookie,
    /// The size limits and the touch rule (idle timeouts and step).
    pub(crate) rules: WriteRules,
    /// How long any session lives at most, from its creation.
    pub(crate) absolute: time::Duration,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) save_error_status: StatusCode,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("cookie_name", &self.cookie_name)
            .field("rules", &self.rules)
            .field("absolute", &self.absolute)
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
        let persistent = change.persistent.unwrap_or(false);
        let idle = self.rules.touch.idle_for(persistent);
        let mut record = Record::new(now, now + idle, now + self.absolute);
        change.apply_meta(&mut record.meta);
        record.meta
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

    /// The `Set-Cookie` that sets the session cookie to `value`: a persistent session's
    /// cookie gets a `Max-Age` of its remaining lifetime (at most what browsers keep), any
    /// other ends with the browser session.
    pub(crate) fn cookie(&self, value: &str, meta: &Metadata, now: OffsetDateTime) -> HeaderValue {
        let max_age = meta.persistent.then(|| {
            let remaining = (meta.expires() - now).max(time::Duration::ZERO);
            let cap = time::Duration::try_from(MAX_COOKIE_AGE).unwrap_or(time::Duration::MAX);
            remaining.min(cap)
        });
        self.set_cookie.set(value, max_age)
    }
}
