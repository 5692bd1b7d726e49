//! What the layer tells an operator, from one place: a `tracing` span per request and per
//! store call, debug events saying why a request was anonymous, and, with the `metrics`
//! feature, counters and a store-latency histogram through the `metrics` facade.
//!
//! Nothing here records a session ID, a cookie value, a storage key, a token or a stored
//! value: only kinds, counts, durations and the store's type.
//!
//! The crate docs list the spans and metrics for users.

use std::time::Instant;

use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::store::{StoreError, StoreErrorKind, StoreFuture};

/// Why a request that brought a cookie is anonymous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anonymous {
    /// The cookie's value is not one this layer issues (or, client-side, does not open).
    Malformed,
    /// The store holds no live session under it: never issued, ended, or expired.
    UnknownOrExpired,
    /// Client-side: the sealed session's deadlines have passed.
    #[cfg_attr(not(feature = "client-side"), allow(dead_code))]
    Expired,
    /// Client-side: the app's not-before check, or the revocation list, voids it.
    #[cfg_attr(not(feature = "client-side"), allow(dead_code))]
    Revoked,
}

impl Anonymous {
    fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownOrExpired => "unknown_or_expired",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

/// How a request's session ended, as its span reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The handler never touched the session.
    Untouched,
    /// Read, and nothing the handler asked for written.
    Loaded,
    Created,
    Written,
    Rotated,
    Destroyed,
    /// The save failed; the response is the layer's error.
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Untouched => "untouched",
            Self::Loaded => "loaded",
            Self::Created => "created",
            Self::Written => "written",
            Self::Rotated => "rotated",
            Self::Destroyed => "destroyed",
            Self::Failed => "failed",
        }
    }
}

/// The span of one request's session: whether a cookie came, and, once known, how the
/// session ended.
pub(crate) fn request_span(cookie: bool) -> Span {
    tracing::debug_span!(target: "session_layer", "session", cookie, outcome = Empty)
}

/// Records how the request's session ended, on its span and in the counters.
pub(crate) fn finished(span: &Span, outcome: Outcome) {
    span.record("outcome", outcome.as_str());
    #[cfg(feature = "metrics")]
    {
        let name = match outcome {
            Outcome::Created => "session_layer_sessions_created_total",
            Outcome::Rotated => "session_layer_sessions_rotated_total",
            Outcome::Destroyed => "session_layer_sessions_destroyed_total",
            _ => return,
        };
        metrics::counter!(name).increment(1);
    }
}

/// Reports a request that is anonymous for `reason`; never the value.
pub(crate) fn anonymous(reason: Anonymous) {
    tracing::debug!(
        target: "session_layer",
        reason = reason.as_str(),
        "the session cookie names no live session; the request is anonymous"
    );
    #[cfg(feature = "metrics")]
    metrics::counter!("session_layer_anonymous_total", "reason" => reason.as_str()).increment(1);
}

/// Counts a save that failed, by the kind of its error.
pub(crate) fn save_failed(kind: StoreErrorKind) {
    #[cfg(feature = "metrics")]
    metrics::counter!("session_layer_save_failures_total", "kind" => kind_str(kind)).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = kind;
}

/// Counts sessions ended by a user's "sign out that device" or "everywhere else".
pub(crate) fn revoked(sessions: u64) {
    #[cfg(feature = "metrics")]
    metrics::counter!("session_layer_sessions_revoked_total").increment(sessions);
    #[cfg(not(feature = "metrics"))]
    let _ = sessions;
}

/// Runs one store call inside a span naming the operation and the store's type, and
/// records its duration and error kind. An answer that is ready at once stays ready.
pub(crate) fn store_call<'a, T: Send + 'a>(
    op: &'static str,
    store: &str,
    call: impl FnOnce() -> StoreFuture<'a, T>,
) -> StoreFuture<'a, T> {
    let span = tracing::debug_span!(
        target: "session_layer::store",
        "store_call",
        op,
        store,
        duration_us = Empty,
        error = Empty,
    );
    // The clock is read only for someone who takes the duration: a subscriber of the span,
    // or the histogram.
    let started = (cfg!(feature = "metrics") || !span.is_disabled()).then(Instant::now);
    let waiting = match span.in_scope(call).into_ready() {
        Ok(answer) => {
            called(&span, op, started, answer.as_ref().err());
            return StoreFuture::ready(answer);
        }
        Err(waiting) => waiting,
    };
    StoreFuture::boxed(async move {
        let answer = waiting.instrument(span.clone()).await;
        called(&span, op, started, answer.as_ref().err());
        answer
    })
}

fn called(span: &Span, op: &'static str, started: Option<Instant>, error: Option<&StoreError>) {
    let Some(started) = started else {
        return;
    };
    let elapsed = started.elapsed();
    span.record(
        "duration_us",
        u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
    );
    if let Some(error) = error {
        span.record("error", kind_str(error.kind()));
    }
    #[cfg(feature = "metrics")]
    metrics::histogram!("session_layer_store_call_seconds", "op" => op)
        .record(elapsed.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = op;
}

fn kind_str(kind: StoreErrorKind) -> &'static str {
    match kind {
        StoreErrorKind::Unavailable => "unavailable",
        StoreErrorKind::Timeout => "timeout",
        StoreErrorKind::Corrupt => "corrupt",
        StoreErrorKind::Full => "full",
        StoreErrorKind::TooLarge => "too_large",
        _ => "other",
    }
}

/// A store's type as a short name for spans: its path without modules (`Arc<MemoryStore>`,
/// `RedisStore`).
pub(crate) fn store_name<S: ?Sized>() -> Box<str> {
    let full = std::any::type_name::<S>();
    let mut short = String::with_capacity(full.len());
    let mut word = String::new();
    for c in full.chars().chain(std::iter::once(' ')) {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            short.push_str(word.rsplit("::").next().unwrap_or_default());
            word.clear();
            if c != ' ' || !short.is_empty() {
                short.push(c);
            }
        }
    }
    short.trim_end().into()
}

#[cfg(test)]
mod tests {
    use super::store_name;

    #[test]
    fn store_names_drop_the_module_paths() {
        assert_eq!(&*store_name::<crate::MemoryStore>(), "MemoryStore");
        assert_eq!(
            &*store_name::<std::sync::Arc<crate::MemoryStore>>(),
            "Arc<MemoryStore>"
        );
    }
}
