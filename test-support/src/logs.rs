//! Catching secrets in logs: a `tracing` subscriber that keeps every event and span field at
//! every level, and checks them against the secrets a test issued.
//!
//! A test installs the capture once for its whole process ([`LogCapture::global`]), runs
//! its flows, tells the capture about every cookie value, session ID and key it saw
//! ([`LogCapture::forbid`]), and finally calls [`LogCapture::assert_clean`], which fails if
//! any of them, in any of the encodings a careless log line would use (as sent, base64,
//! base64url, hex), appears in anything logged. Failure messages name the kind of secret
//! and the log line's target and level, never the secret.
//!
//! ```
//! use session_layer_test_support::logs::LogCapture;
//!
//! let logs = LogCapture::global();
//! tracing::warn!(target: "app", "a harmless line");
//! logs.forbid("cookie value", "c2VjcmV0LWNvb2tpZS12YWx1ZS10aGF0LWlzLWxvbmc");
//! logs.assert_clean();
//! assert!(logs.lines() >= 1);
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Everything logged in this process since the capture was installed, and the secrets it
/// must not contain. See the [module docs](self).
#[derive(Debug)]
pub struct LogCapture {
    lines: Mutex<Vec<String>>,
    secrets: Mutex<Vec<(String, Vec<u8>)>>,
    next_span: AtomicU64,
}

/// Fewer bytes than this are too common to call a leak (a short user name, say).
const MIN_SECRET: usize = 12;

impl LogCapture {
    /// The process-wide capture, installed as the global `tracing` subscriber on first use,
    /// recording every level from `TRACE` up. Call it before anything logs.
    ///
    /// # Panics
    ///
    /// Panics if another global subscriber was installed first: its events would escape
    /// the check.
    pub fn global() -> &'static LogCapture {
        static CAPTURE: OnceLock<&'static LogCapture> = OnceLock::new();
        CAPTURE.get_or_init(|| {
            let capture: &'static LogCapture = Box::leak(Box::new(LogCapture {
                lines: Mutex::new(Vec::new()),
                secrets: Mutex::new(Vec::new()),
                next_span: AtomicU64::new(1),
            }));
            tracing::subscriber::set_global_default(Forward(capture))
                .expect("no other global tracing subscriber in a log-hygiene test");
            capture
        })
    }

    /// Adds a secret that must appear in no log line: a cookie value, a session ID or a key,
    /// as text. Its base64, base64url and hex forms are checked too, and, when the text is
    /// itself base64 or base64url, the hex and other base64 forms of the bytes it encodes.
    /// `kind` names it in failure messages instead of the secret.
    pub fn forbid(&self, kind: &str, secret: impl AsRef<[u8]>) {
        let secret = secret.as_ref();
        let mut forms = vec![secret.to_vec()];
        forms.extend(encodings(secret));
        if let Ok(text) = std::str::from_utf8(secret) {
            for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
                if let Ok(bytes) = engine.decode(text) {
                    forms.extend(encodings(&bytes));
                }
            }
        }
        let mut secrets = lock(&self.secrets);
        for form in forms {
            if form.len() >= MIN_SECRET && !secrets.iter().any(|(_, s)| *s == form) {
                secrets.push((kind.to_owned(), form));
            }
        }
    }

    /// Adds raw key bytes that must appear in no log line, in any encoding.
    pub fn forbid_bytes(&self, kind: &str, bytes: &[u8]) {
        let mut secrets = lock(&self.secrets);
        for form in encodings(bytes) {
            if form.len() >= MIN_SECRET && !secrets.iter().any(|(_, s)| *s == form) {
                secrets.push((kind.to_owned(), form));
            }
        }
        let debug = format!("{bytes:?}").into_bytes();
        secrets.push((kind.to_owned(), debug));
    }

    /// How many events and spans were recorded so far.
    pub fn lines(&self) -> usize {
        lock(&self.lines).len()
    }

    /// How many secrets (counting each encoding) are checked.
    pub fn secrets(&self) -> usize {
        lock(&self.secrets).len()
    }

    /// Whether any recorded line contains `text` (for tests that check something was
    /// logged at all).
    pub fn contains(&self, text: &str) -> bool {
        lock(&self.lines).iter().any(|l| l.contains(text))
    }

    /// Fails if any recorded line contains any forbidden secret, in any form.
    ///
    /// # Panics
    ///
    /// Panics naming the kind of secret and where it was logged, never the secret itself.
    pub fn assert_clean(&self) {
        let lines = lock(&self.lines);
        let secrets = lock(&self.secrets);
        // Secrets made only of the characters of base64, base64url and hex are looked up
        // by length in the runs of such characters each line holds: fast enough for tens
        // of thousands of lines against thousands of secrets. Others are searched plainly.
        let mut tokens: HashMap<usize, HashMap<&[u8], &str>> = HashMap::new();
        let mut others = Vec::new();
        for (kind, secret) in secrets.iter() {
            if secret.iter().all(|b| is_token(*b)) {
                tokens
                    .entry(secret.len())
                    .or_default()
                    .insert(secret.as_slice(), kind.as_str());
            } else {
                others.push((kind.as_str(), secret.as_slice()));
            }
        }
        let shortest = tokens.keys().copied().min().unwrap_or(usize::MAX);
        for line in lines.iter() {
            let bytes = line.as_bytes();
            let leaked = others
                .iter()
                .find(|(_, secret)| contains(bytes, secret))
                .map(|(kind, _)| *kind)
                .or_else(|| {
                    bytes
                        .split(|b| !is_token(*b))
                        .filter(|run| run.len() >= shortest)
                        .find_map(|run| {
                            tokens.iter().find_map(|(len, set)| {
                                run.windows(*len).find_map(|w| set.get(w).copied())
                            })
                        })
                });
            if let Some(kind) = leaked {
                let place: String = line.split(" fields:").next().unwrap_or("").into();
                panic!("a {kind} appeared in a log line ({place})");
            }
        }
    }

    fn record(&self, line: String) {
        lock(&self.lines).push(line);
    }
}

fn encodings(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut hex = String::with_capacity(bytes.len() * 2);
    let mut upper = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(hex, "{b:02x}");
        let _ = write!(upper, "{b:02X}");
    }
    vec![
        STANDARD.encode(bytes).into_bytes(),
        STANDARD_NO_PAD.encode(bytes).into_bytes(),
        URL_SAFE_NO_PAD.encode(bytes).into_bytes(),
        hex.into_bytes(),
        upper.into_bytes(),
    ]
}

/// A byte of base64 (either alphabet, with padding) or hex.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes every field as `name=value`, with `Debug` formatting (what `fmt` layers print).
struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }
}

fn header(kind: &str, meta: &Metadata<'_>) -> String {
    format!("{kind} {} {} fields:", meta.level(), meta.target())
}

/// The subscriber: records, never filters.
struct Forward(&'static LogCapture);

impl Subscriber for Forward {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut line = header("span", span.metadata());
        let _ = write!(line, " name={}", span.metadata().name());
        span.record(&mut Fields(&mut line));
        self.0.record(line);
        Id::from_u64(self.0.next_span.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut line = String::from("span-record fields:");
        values.record(&mut Fields(&mut line));
        self.0.record(line);
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = header("event", event.metadata());
        event.record(&mut Fields(&mut line));
        self.0.record(line);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_caught_in_any_encoding_and_never_repeated() {
        let logs = LogCapture::global();
        let key = [0x5au8; 32];
        let id = URL_SAFE_NO_PAD.encode([0xa5u8; 32]);
        logs.forbid_bytes("test key", &key);
        logs.forbid("test ID", &id);
        logs.assert_clean();
        let hex: String = [0xa5u8; 32].iter().map(|b| format!("{b:02x}")).collect();
        for leak in [STANDARD.encode(key), hex] {
            tracing::trace!(target: "leak-test", value = %leak, "a careless line");
            let caught = std::panic::catch_unwind(|| logs.assert_clean())
                .expect_err("the leak was not caught");
            let message = caught.downcast_ref::<String>().expect("a message");
            assert!(message.contains("leak-test"), "{message}");
            assert!(!message.contains(&leak), "the failure repeated the secret");
            lock(&logs.lines).clear();
        }
    }
}
