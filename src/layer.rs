//! [`SessionLayer`] and its builder.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tower_layer::Layer;

#[cfg(feature = "client-side")]
use crate::client_side::ClientSide;
use crate::clock::{Clock, SystemClock};
use crate::config::{
    ConfigError, CookieConfig, ExpiryConfig, SameSite, DEFAULT_COOKIE_NAME, DEV_COOKIE_NAME,
};
use crate::keeper::Stored;
use crate::request::{Begin, Shared};
use crate::rules::Limits;
use crate::service::SessionService;
use crate::session::Session;
use crate::set_cookie::SetCookie;
use crate::settings::Settings;
use crate::store::SessionStore;

/// The Tower layer that gives every request a [`Session`](crate::Session).
///
/// `SessionLayer::new(store)` uses the defaults, which need no change to pass a security
/// audit; [`SessionLayer::builder`] changes them, and refuses combinations browsers would
/// reject or that defeat a protection.
///
/// | setting | default | why |
/// | --- | --- | --- |
/// | cookie name | `__Host-session` | browsers only accept it Secure, on `/`, without Domain, so no subdomain or plain-http page can plant it |
/// | `Secure` | on | the cookie never travels over plain http; [`with_plain_http_for_development`](SessionLayerBuilder::with_plain_http_for_development) turns it off for local work |
/// | `HttpOnly` | always | page scripts (and XSS) cannot read the cookie |
/// | `SameSite` | `Lax` | cross-site subrequests and form POSTs carry no cookie; links from other sites still arrive signed in |
/// | `Path` / `Domain` | `/` / none | the cookie goes to this host only |
/// | idle timeout | 1 hour (14 days when persistent) | an abandoned session ends |
/// | absolute timeout | 30 days | even an active session ends |
/// | longest session lifetime | the absolute timeout | an end time given to one session ([`Session::set_expires_at`](crate::Session::set_expires_at)) cannot outlive it |
/// | touch step | 1 minute | activity moves the idle deadline, but writes the store at most once a step |
/// | limits | 64 KiB of data, 1,024 keys | a session cannot grow without bound |
///
/// ```
/// use axum::{routing::get, Router};
/// use session_layer::{MemoryStore, SessionLayer};
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(SessionLayer::new(MemoryStore::default()));
/// ```
#[derive(Debug, Clone)]
pub struct SessionLayer {
    begin: Arc<dyn Begin>,
}

/// Makes the layer's keeper once the settings are checked.
type MakeKeeper = Box<dyn FnOnce(Settings) -> Result<Arc<dyn Begin>, ConfigError> + Send + Sync>;

impl SessionLayer {
    /// A layer over `store` with the default settings (see the table above).
    #[must_use]
    pub fn new(store: impl SessionStore) -> Self {
        Self::builder(store)
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder over `store`, to change the defaults.
    ///
    /// ```
    /// use std::time::Duration;
    /// use session_layer::{MemoryStore, SameSite, SessionLayer};
    ///
    /// let layer = SessionLayer::builder(MemoryStore::default())
    ///     .with_same_site(SameSite::Strict)
    ///     .with_idle_timeout(Duration::from_secs(15 * 60))
    ///     .build()?;
    /// # Ok::<(), session_layer::ConfigError>(())
    /// ```
    pub fn builder(store: impl SessionStore) -> SessionLayerBuilder {
        SessionLayerBuilder::new(Box::new(move |settings| {
            Ok(Arc::new(Shared {
                settings,
                keeper: Stored::new(store),
            }))
        }))
    }

    /// A layer that keeps each session in its cookie instead of a store, with the default
    /// cookie and expiry settings (see [`SessionLayer`]) and the options of `config`. See
    /// the [`client_side`](crate::client_side) module for what this mode can and cannot do.
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use session_layer::{KeyRing, SessionLayer};
    ///
    /// # let key: Vec<u8> = (0u8..64).collect();
    /// let app: Router = Router::new()
    ///     .route("/", get(|| async { "hello" }))
    ///     .layer(SessionLayer::client_side(KeyRing::new([key])?));
    /// # Ok::<(), session_layer::ConfigError>(())
    /// ```
    #[cfg(feature = "client-side")]
    #[must_use]
    pub fn client_side(config: impl Into<ClientSide>) -> Self {
        Self::client_side_builder(config)
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder for a client-side layer, to change the cookie and expiry defaults; every
    /// setting of [`SessionLayerBuilder`] applies and is checked the same way.
    ///
    /// ```
    /// use std::time::Duration;
    /// use session_layer::{ClientSide, KeyRing, SameSite, SessionLayer};
    ///
    /// let layer = SessionLayer::client_side_builder(ClientSide::new(KeyRing::generate()))
    ///     .with_same_site(SameSite::Strict)
    ///     .with_idle_timeout(Duration::from_secs(10 * 60))
    ///     .build()?;
    /// # Ok::<(), session_layer::ConfigError>(())
    /// ```
    #[cfg(feature = "client-side")]
    pub fn client_side_builder(config: impl Into<ClientSide>) -> SessionLayerBuilder {
        let config = config.into();
        SessionLayerBuilder::new(Box::new(move |settings: Settings| {
            let keeper = config.into_sealing(&settings)?;
            Ok(Arc::new(Shared { settings, keeper }))
        }))
    }

    /// The session a request with these headers gets, outside any service: for the doc
    /// examples and the test constructor.
    pub(crate) fn session_for(&self, headers: &http::HeaderMap) -> Session {
        Session::new(self.begin.clone().begin(headers))
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService::new(inner, self.begin.clone())
    }
}

/// Builds a [`SessionLayer`]; [`build`](Self::build) checks the settings.
#[must_use]
pub struct SessionLayerBuilder {
    make: MakeKeeper,
    cookie: CookieConfig,
    expiry: ExpiryConfig,
    limits: Limits,
    clock: Arc<dyn Clock>,
    save_error_status: StatusCode,
}

impl std::fmt::Debug for SessionLayerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayerBuilder")
            .field("cookie", &self.cookie)
            .field("expiry", &self.expiry)
            .field("limits", &self.limits)
            .field("clock", &self.clock)
            .field("save_error_status", &self.save_error_status)
            .finish_non_exhaustive()
    }
}

impl SessionLayerBuilder {
    fn new(make: MakeKeeper) -> Self {
        Self {
            make,
            cookie: CookieConfig::default(),
            expiry: ExpiryConfig::default(),
            limits: Limits::default(),
            clock: Arc::new(SystemClock),
            save_error_status: StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The cookie's name. Default: `__Host-session`. Matched byte for byte in requests.
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie.name = name.into();
        self
    }

    /// The cookie's `SameSite` attribute. Default: `Lax`. `None` requires `Secure`.
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.cookie.same_site = same_site;
        self
    }

    /// The cookie's `Secure` attribute. Default: on. Comes from here only, never from the
    /// request, so a proxy that terminates TLS cannot turn it off by accident.
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.cookie.secure = secure;
        self
    }

    /// The cookie's `Path`. Default: `/` (required by a `__Host-` name).
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.cookie.path = path.into();
        self
    }

    /// The cookie's `Domain`. Default: none, so only this host receives it. A `__Host-` name
    /// forbids it; pick another name to share the cookie with subdomains.
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.cookie.domain = Some(domain.into());
        self
    }

    /// The one switch for local development over plain `http://`: turns `Secure` off and, if
    /// the name is still the default `__Host-session`, renames the cookie `session` (browsers
    /// reject `__Host-` cookies without `Secure`). Never use it in production.
    pub fn with_plain_http_for_development(mut self) -> Self {
        self.cookie.secure = false;
        if self.cookie.name == DEFAULT_COOKIE_NAME {
            self.cookie.name = DEV_COOKIE_NAME.to_owned();
        }
        self
    }

    /// How long a browser-only session lives without a request. Default: 1 hour. At most
    /// [`MAX_TIMEOUT`](crate::MAX_TIMEOUT).
    pub fn with_idle_timeout(mut self, idle: Duration) -> Self {
        self.expiry.idle = idle;
        self
    }

    /// How long a persistent ("remember me") session lives without a request. Default: 14
    /// days. Capped at the absolute timeout; at most [`MAX_TIMEOUT`](crate::MAX_TIMEOUT), and
    /// longer than the touch step.
    pub fn with_persistent_idle_timeout(mut self, idle: Duration) -> Self {
        self.expiry.persistent_idle = idle;
        self
    }

    /// How long any session lives at most, active or not, counted from its creation and kept
    /// across rotations. Default: 30 days. At most [`MAX_TIMEOUT`](crate::MAX_TIMEOUT)
    /// (about 100 years), which is what to pass for sessions that practically never end.
    pub fn with_absolute_timeout(mut self, absolute: Duration) -> Self {
        self.expiry.absolute = absolute;
        self
    }

    /// How far after its creation a session's own end time
    /// ([`Session::set_expires_at`](crate::Session::set_expires_at)) may lie. Default: the
    /// absolute timeout, so no session outlives it. Set it to give chosen sessions a longer
    /// life than the rest (a kiosk, a long-running import). At least the absolute timeout; at
    /// most [`MAX_TIMEOUT`](crate::MAX_TIMEOUT).
    ///
    /// ```
    /// use std::time::Duration;
    /// use session_layer::{MemoryStore, SessionLayer};
    ///
    /// let day = Duration::from_secs(24 * 60 * 60);
    /// let layer = SessionLayer::builder(MemoryStore::default())
    ///     .with_absolute_timeout(30 * day)
    ///     .with_max_session_lifetime(365 * day)
    ///     .build()?;
    /// assert!(SessionLayer::builder(MemoryStore::default())
    ///     .with_absolute_timeout(30 * day)
    ///     .with_max_session_lifetime(day)
    ///     .build()
    ///     .is_err());
    /// # let _ = layer;
    /// # Ok::<(), session_layer::ConfigError>(())
    /// ```
    pub fn with_max_session_lifetime(mut self, lifetime: Duration) -> Self {
        self.expiry.max_lifetime = Some(lifetime);
        self
    }

    /// The idle deadline is only rewritten when a request would move it by more than this, so
    /// a busy session is not written on every request. Default: 1 minute. Must be shorter
    /// than both idle timeouts.
    pub fn with_touch_step(mut self, step: Duration) -> Self {
        self.expiry.touch_step = step;
        self
    }

    /// The most data one session may hold, in bytes (each key's length plus its value's
    /// compact JSON, summed: see [`Limits`]), and the most keys. Default: 64 KiB and 1,024.
    ///
    /// A write past either fails: [`Session::insert`](crate::Session::insert) returns
    /// [`SessionError::TooLarge`](crate::SessionError::TooLarge) when it can tell (the session
    /// was read first in the request, or the request's own writes pass them); a write that
    /// no read preceded is checked by the store at save time, and one that passes the limits
    /// there fails the request with the save error status, writing nothing.
    pub fn with_limits(mut self, max_bytes: usize, max_keys: usize) -> Self {
        self.limits = Limits::new(max_bytes, max_keys);
        self
    }

    /// The status of the response when saving the session fails after the handler ran.
    /// Default: `500 Internal Server Error`. The handler's response is replaced, since the
    /// client must not believe a change was kept.
    pub fn with_save_error_status(mut self, status: StatusCode) -> Self {
        self.save_error_status = status;
        self
    }

    /// Where the layer reads the time. Default: the system clock. Tests pass a
    /// [`testing::MockClock`](crate::testing::MockClock).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Checks the settings and builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming what to change: a `__Host-` name with a Domain, a Path other
    /// than `/` or without Secure; `SameSite=None` without Secure; a name or attribute with
    /// bytes a cookie cannot carry; timeouts that contradict each other (a touch step not
    /// shorter than both idle timeouts, an absolute timeout shorter than the idle one, a
    /// longest session lifetime shorter than the absolute timeout), or that are longer than
    /// [`MAX_TIMEOUT`](crate::MAX_TIMEOUT).
    pub fn build(self) -> Result<SessionLayer, ConfigError> {
        self.cookie.validate()?;
        self.expiry.validate()?;
        if !self.save_error_status.is_server_error() {
            return Err(ConfigError::new(
                "the save error status must be a 5xx: the client must not take a failed save for success",
            ));
        }
        let settings = Settings {
            cookie_name: self.cookie.name.as_str().into(),
            set_cookie: SetCookie::new(&self.cookie),
            rules: self.expiry.write_rules(self.limits),
            clock: self.clock,
            save_error_status: self.save_error_status,
        };
        Ok(SessionLayer {
            begin: (self.make)(settings)?,
        })
    }
}
