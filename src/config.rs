//! Cookie and expiry settings, checked when the layer is built.

use std::fmt;
use std::time::Duration;

pub use cookie::SameSite;

use crate::rules::{Limits, TouchRule, WriteRules};

/// The session cookie's name when nothing else is set. The `__Host-` prefix makes browsers
/// refuse the cookie unless it is `Secure`, has `Path=/` and no `Domain`, so a subdomain or
/// a plain-http page cannot plant or overwrite it.
pub const DEFAULT_COOKIE_NAME: &str = "__Host-session";
/// The cookie name [`SessionLayerBuilder::with_plain_http_for_development`] switches to,
/// since browsers reject `__Host-` cookies without `Secure`.
///
/// [`SessionLayerBuilder::with_plain_http_for_development`]: crate::SessionLayerBuilder::with_plain_http_for_development
pub const DEV_COOKIE_NAME: &str = "session";
/// Browsers cap cookie lifetimes at 400 days (RFC 6265bis); a longer `Max-Age` is cut.
pub const MAX_COOKIE_AGE: Duration = Duration::from_secs(400 * 24 * 60 * 60);
/// The longest timeout a layer accepts: 36,500 days (about 100 years). A session's deadlines
/// are points in time every store must keep, and `Duration::MAX` from now is none; pass this
/// for sessions that practically never end.
///
/// ```
/// use session_layer::{MemoryStore, SessionLayer, MAX_TIMEOUT};
///
/// let layer = SessionLayer::builder(MemoryStore::default())
///     .with_absolute_timeout(MAX_TIMEOUT)
///     .build()?;
/// assert!(SessionLayer::builder(MemoryStore::default())
///     .with_absolute_timeout(std::time::Duration::MAX)
///     .build()
///     .is_err());
/// # let _ = layer;
/// # Ok::<(), session_layer::ConfigError>(())
/// ```
pub const MAX_TIMEOUT: Duration = Duration::from_secs(MAX_TIMEOUT_DAYS * 24 * 60 * 60);
pub(crate) const MAX_TIMEOUT_DAYS: u64 = 36_500;

#[derive(Debug, Clone)]
pub(crate) struct CookieConfig {
    pub(crate) name: String,
    pub(crate) same_site: SameSite,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            name: DEFAULT_COOKIE_NAME.to_owned(),
            same_site: SameSite::Lax,
            secure: true,
            http_only: true,
            path: "/".to_owned(),
            domain: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ExpiryConfig {
    pub(crate) idle: Duration,
    pub(crate) persistent_idle: Duration,
    pub(crate) absolute: Duration,
    /// How far a session's own end time may lie after its creation; `None`: the absolute
    /// timeout.
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) touch_step: Duration,
}

impl Default for ExpiryConfig {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(60 * 60),
            persistent_idle: Duration::from_secs(14 * 24 * 60 * 60),
            absolute: Duration::from_secs(30 * 24 * 60 * 60),
            max_lifetime: None,
            touch_step: Duration::from_secs(60),
        }
    }
}

impl CookieConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |what: &str, why: &str| Err(ConfigError(format!("{what}: {why}")));
        if self.name.is_empty() || !self.name.bytes().all(is_token_byte) {
            return bad(
                "cookie name",
                "use only letters, digits and !#$%&'*+-.^_`|~ (no space, `;`, `,`, `=`, control bytes)",
            );
        }
        if !self.path.starts_with('/') || !self.path.bytes().all(is_attribute_byte) {
            return bad(
                "cookie path",
                "start it with `/` and leave out `;`, `,`, spaces and control bytes",
            );
        }
        if let Some(domain) = &self.domain {
            if domain.is_empty()
                || !domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                return bad(
                    "cookie domain",
                    "give a host name of letters, digits, `-` and `.`, or set none",
                );
            }
        }
        if self.same_site == SameSite::None && !self.secure {
            return bad(
                "SameSite=None",
                "browsers reject it without Secure; keep Secure on, or use SameSite=Lax",
            );
        }
        let prefix = |p: &str| {
            self.name
                .get(..p.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(p))
        };
        if prefix("__Host-") {
            if !self.secure {
                return bad("a `__Host-` cookie name", "needs Secure; keep Secure on, or call with_plain_http_for_development, which also drops the prefix");
            }
            if self.domain.is_some() {
                return bad("a `__Host-` cookie name", "cannot have a Domain; remove the domain, or pick a name without the `__Host-` prefix");
            }
            if self.path != "/" {
                return bad(
                    "a `__Host-` cookie name",
                    "needs Path=/; remove the path, or pick a name without the `__Host-` prefix",
                );
            }
        }
        if prefix("__Secure-") && !self.secure {
            return bad(
                "a `__Secure-` cookie name",
                "needs Secure; keep Secure on, or pick a name without the prefix",
            );
        }
        Ok(())
    }
}

impl ExpiryConfig {
    /// The idle timeout of a session with this persistence flag, as the store keeps it.
    fn idle_for(&self, persistent: bool) -> time::Duration {
        let d = if persistent {
            self.persistent_idle.min(self.absolute)
        } else {
            self.idle
        };
        time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
    }

    /// When activity moves the idle deadline, as these settings say.
    pub(crate) fn touch_rule(&self) -> TouchRule {
        let step = time::Duration::try_from(self.touch_step).unwrap_or(time::Duration::MAX);
        TouchRule::new(self.idle_for(false), self.idle_for(true), step)
    }

    /// The write rules of these settings with `limits`: the touch rule, the absolute
    /// timeout and the longest lifetime of a session's own end time.
    pub(crate) fn write_rules(&self, limits: Limits) -> WriteRules {
        let time = |d: Duration| time::Duration::try_from(d).unwrap_or(time::Duration::MAX);
        WriteRules::new(limits, self.touch_rule()).with_lifetime(
            time(self.absolute),
            time(self.max_lifetime.unwrap_or(self.absolute)),
        )
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |why: &str| Err(ConfigError(format!("expiry: {why}")));
        for (setting, value) in [
            ("idle timeout", self.idle),
            ("persistent idle timeout", self.persistent_idle),
            ("absolute timeout", self.absolute),
            (
                "longest session lifetime",
                self.max_lifetime.unwrap_or_default(),
            ),
            ("touch step", self.touch_step),
        ] {
            if value > MAX_TIMEOUT {
                return bad(&format!(
                    "the {setting} is longer than the largest accepted, {MAX_TIMEOUT_DAYS} days \
                     (session_layer::MAX_TIMEOUT): a deadline that far ahead cannot be \
                     represented; for sessions that practically never end, pass MAX_TIMEOUT"
                ));
            }
        }
        if self.idle < Duration::from_secs(1) || self.persistent_idle < Duration::from_secs(1) {
            return bad("idle timeouts must be at least one second");
        }
        if self.absolute < self.idle {
            return bad("the absolute timeout must be at least as long as the idle timeout; raise it or shorten the idle timeout");
        }
        if self.max_lifetime.is_some_and(|max| max < self.absolute) {
            return bad("the longest session lifetime must be at least the absolute timeout; raise it, or leave it unset to cap end times of a session's own at the absolute timeout");
        }
        if self.touch_step >= self.idle {
            return bad("the touch step must be shorter than the idle timeout (a tenth of it or less is typical)");
        }
        if self.touch_step >= self.persistent_idle {
            return bad(
                "the touch step must be shorter than the persistent idle timeout, or a \
                 persistent session would end before activity moved its deadline; lengthen \
                 the persistent idle timeout or shorten the touch step",
            );
        }
        Ok(())
    }
}

/// RFC 6265 `token` bytes: visible ASCII except separators.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Bytes allowed in an attribute value: visible ASCII except `;` and `,`.
fn is_attribute_byte(b: u8) -> bool {
    b.is_ascii_graphic() && b != b';' && b != b','
}

/// A layer configuration that cannot work. The message says what to change.
///
/// ```
/// use session_layer::{MemoryStore, SameSite, SessionLayer};
///
/// let err = SessionLayer::builder(MemoryStore::default())
///     .with_domain("example.com")
///     .build()
///     .unwrap_err();
/// assert!(err.to_string().contains("cannot have a Domain"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid session layer configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}
