//! What an operator sees of the layer: the request's span and its outcome, a span per store
//! call, debug events for anonymous requests, and the `metrics` counters and histogram,
//! over real HTTP. None of it ever holds a cookie value.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use reqwest::Method;
use session_layer::MemoryStore;
use session_layer_test_support::app::{call, router, serve};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

/// Every span as `name{field=value ...}` once it closes, with the fields recorded after it
/// opened, and every event as `target fields`.
#[derive(Clone, Default)]
struct Capture {
    open: Arc<Mutex<HashMap<u64, String>>>,
    closed: Arc<Mutex<Vec<String>>>,
    events: Arc<Mutex<Vec<String>>>,
}

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut line = attrs.metadata().name().to_owned();
        attrs.record(&mut Fields(&mut line));
        self.open.lock().unwrap().insert(id.into_u64(), line);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(line) = self.open.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(line));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut line = event.metadata().target().to_owned();
        event.record(&mut Fields(&mut line));
        self.events.lock().unwrap().push(line);
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        if let Some(line) = self.open.lock().unwrap().remove(&id.into_u64()) {
            self.closed.lock().unwrap().push(line);
        }
    }
}

impl Capture {
    fn take_spans(&self) -> Vec<String> {
        std::mem::take(&mut *self.closed.lock().unwrap())
    }
}

/// What the metrics added up to so far, by name and labels: a snapshot drains the debugging
/// recorder, so every snapshot is added in here.
fn totals() -> &'static Mutex<HashMap<String, u64>> {
    static TOTALS: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    TOTALS.get_or_init(Mutex::default)
}

fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this test binary");
        snapshotter
    })
}

/// The counter's total, or how many values the histogram took, by name and labels.
fn metric(name: &str, labels: &[(&str, &str)]) -> u64 {
    let mut totals = totals().lock().unwrap();
    for (key, _, _, value) in snapshotter().snapshot().into_vec() {
        let key = key.key();
        let mut id = key.name().to_owned();
        for label in key.labels() {
            let _ = write!(id, ",{}={}", label.key(), label.value());
        }
        *totals.entry(id).or_default() += match value {
            DebugValue::Counter(n) => n,
            DebugValue::Histogram(values) => values.len() as u64,
            DebugValue::Gauge(_) => 0,
        };
    }
    totals
        .iter()
        .filter(|(id, _)| {
            let mut parts = id.split(',');
            parts.next() == Some(name)
                && labels
                    .iter()
                    .all(|(k, v)| id.split(',').skip(1).any(|l| l == format!("{k}={v}")))
        })
        .map(|(_, n)| n)
        .sum()
}

/// The spans named `name` among `spans`.
fn named<'a>(spans: &'a [String], name: &str) -> Vec<&'a str> {
    spans
        .iter()
        .filter(|s| s.split(' ').next() == Some(name))
        .map(String::as_str)
        .collect()
}

// One test: the capture is this thread's subscriber, and callsites cache whether anyone
// listens, so a second test on another thread would race it.
#[tokio::test]
async fn requests_and_store_calls_are_traced_and_counted_without_a_cookie_value() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry()
            .with(capture.clone())
            .with(tracing_subscriber::filter::LevelFilter::DEBUG),
    );
    let counter = |name: &str| metric(name, &[]);
    let before = (
        counter("session_layer_sessions_created_total"),
        counter("session_layer_sessions_rotated_total"),
        counter("session_layer_sessions_destroyed_total"),
        counter("session_layer_sessions_revoked_total"),
        metric("session_layer_store_call_seconds", &[("op", "load")]),
    );
    let addr = serve(router(MemoryStore::default())).await;
    let client = reqwest::Client::new();
    let mut cookies = Vec::new();
    let send = |method, path: &'static str, cookie: Option<String>| {
        let client = client.clone();
        async move { call(&client, addr, method, path, cookie.as_deref()).await }
    };

    let created = send(Method::POST, "/set/theme/dark", None).await;
    let first = created.cookie.clone().expect("a new session");
    cookies.push(first.clone());
    send(Method::GET, "/get/theme", Some(first.clone())).await;
    let signed_in = send(Method::POST, "/login/alice", Some(first)).await;
    let alice = signed_in.cookie.clone().expect("a rotated session");
    cookies.push(alice.clone());
    let other = send(Method::POST, "/login/alice", None).await;
    cookies.push(other.cookie.clone().expect("a second session of alice"));
    send(Method::POST, "/revoke-others", Some(alice.clone())).await;
    send(Method::POST, "/logout", Some(alice)).await;

    let spans = capture.take_spans();
    let sessions = named(&spans, "session");
    let outcomes: Vec<&str> = sessions
        .iter()
        .map(|s| s.split(" outcome=").nth(1).unwrap_or("none"))
        .collect();
    assert_eq!(
        outcomes,
        [
            "\"created\"",
            "\"loaded\"",
            "\"rotated\"",
            "\"created\"",
            "\"loaded\"",
            "\"destroyed\""
        ],
        "{sessions:#?}"
    );
    assert!(sessions[0].contains("cookie=false") && sessions[1].contains("cookie=true"));
    let calls = named(&spans, "store_call");
    for op in ["create", "load", "rotate", "delete_by_user", "delete"] {
        let call = calls
            .iter()
            .find(|c| c.contains(&format!("op=\"{op}\"")))
            .unwrap_or_else(|| panic!("no store call span for {op}: {calls:#?}"));
        assert!(call.contains("store=\"MemoryStore\""), "{call}");
        assert!(call.contains("duration_us="), "{call}");
    }

    assert_eq!(
        counter("session_layer_sessions_created_total") - before.0,
        2
    );
    assert_eq!(
        counter("session_layer_sessions_rotated_total") - before.1,
        1
    );
    assert_eq!(
        counter("session_layer_sessions_destroyed_total") - before.2,
        1
    );
    assert_eq!(
        counter("session_layer_sessions_revoked_total") - before.3,
        1
    );
    assert!(metric("session_layer_store_call_seconds", &[("op", "load")]) > before.4);

    anonymous_requests_and_failed_saves_are_counted().await;
    let events = capture.events.lock().unwrap().clone();
    assert!(
        events.iter().any(|e| e.contains("reason=\"malformed\"")),
        "no debug event said why a request was anonymous"
    );
    for line in spans.iter().chain(&events) {
        for cookie in &cookies {
            assert!(
                !line.contains(cookie.as_str()),
                "a cookie value was traced: {line}"
            );
        }
    }
}

/// Anonymous requests are counted by reason and failed saves by kind.
async fn anonymous_requests_and_failed_saves_are_counted() {
    let reason = |r: &str| metric("session_layer_anonymous_total", &[("reason", r)]);
    let (malformed, unknown) = (reason("malformed"), reason("unknown_or_expired"));
    let full = metric("session_layer_save_failures_total", &[("kind", "full")]);
    // A store with room for no session: every create fails.
    let addr = serve(router(MemoryStore::default().with_capacity(0))).await;
    let client = reqwest::Client::new();
    call(&client, addr, Method::GET, "/get/x", Some("not*an*id")).await;
    let unknown_id = "c2Vzc2lvbi1sYXllciBmdXp6OiBhIGtub3duIElEISE";
    call(&client, addr, Method::GET, "/get/x", Some(unknown_id)).await;
    let failed = call(&client, addr, Method::POST, "/set/k/v", None).await;
    assert!(failed.status.is_server_error());

    assert_eq!(reason("malformed") - malformed, 1);
    assert_eq!(reason("unknown_or_expired") - unknown, 1);
    assert_eq!(
        metric("session_layer_save_failures_total", &[("kind", "full")]) - full,
        1
    );
}
