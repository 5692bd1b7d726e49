//! Client-side sessions: the same [`Session`](crate::Session) API with no store, the whole
//! session sealed in its cookie.
//!
//! ```
//! use axum::{routing::get, Router};
//! use session_layer::{ClientSide, KeyRing, Session, SessionError, SessionLayer};
//!
//! async fn counter(session: Session) -> Result<String, SessionError> {
//!     let visits: u64 = session.get("visits").await?.unwrap_or(0);
//!     session.insert("visits", visits + 1).await?;
//!     Ok(format!("{visits} visits"))
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # std::env::set_var("SESSION_KEY", "xBy82L2PRACm0o8c9IXEDaF2JJ64bVKOCIasxZzxJDKqutcul8iqsPZZaOakMCRpdzd01npr/IeUKV/fjzBMtQ==");
//! let keys = KeyRing::from_base64([std::env::var("SESSION_KEY")?])?;
//! let app: Router = Router::new()
//!     .route("/", get(counter))
//!     .layer(SessionLayer::client_side(ClientSide::new(keys).with_purpose("counter")));
//! # Ok(()) }
//! ```
//!
//! All the cookie and expiry settings of [`SessionLayerBuilder`] apply, and are checked the
//! same way, through [`SessionLayer::client_side_builder`].
//!
//! # What is in the cookie
//!
//! The session's data, its idle and absolute deadlines, when it was signed in (created or
//! last rotated), its persistence ("remember me") flag, its user, a random nonce and a
//! format version, as a short text with the data as JSON, sealed by the `cookie` crate:
//!
//! - By default with its private jar: AES-256-GCM, a fresh random nonce per cookie. The
//!   client can neither read nor change the session.
//! - With [`ClientSide::signed_only`], with its signed jar: HMAC-SHA256. The client cannot
//!   change the session, but **anyone holding the cookie can read it** (it is base64url of
//!   JSON). Use it only for data you would show the user anyway.
//!
//! The sealing keys are derived (HKDF-SHA256) from each key of the [`KeyRing`] for one mode,
//! one purpose ([`ClientSide::with_purpose`]) and one cookie name, so a value sealed for
//! another cookie, another app or the other mode does not open here.
//!
//! # What the server still enforces
//!
//! - Deadlines: the idle and absolute deadlines travel sealed in the cookie and are checked
//!   on every request that reads the session; a browser that ignores `Max-Age` gains
//!   nothing. The touch step holds too: the cookie is resealed (and sent again) only when
//!   the session changed, the idle deadline would move by more than the step, the session
//!   rotates, or an old key opened it.
//! - Sign-out, with a [revocation list](ClientSide::with_revocation_list): a signed-out
//!   session's cookie, copied or re-issued, does not open again, and "sign out everywhere
//!   else" voids the user's other sessions. A sign-in ([`Session::rotate`]) counts as a new
//!   start for these checks, so the first sign-in after a user's cut-off lives.
//! - Keys: the first key of the ring seals, every key opens; a cookie opened with an old key
//!   is resealed with the first in the same response. Cookies only a removed key opens are
//!   rejected.
//! - Bad cookies: a value of the wrong shape (checked before any decoding) or one that does
//!   not open, for whatever reason, makes the request anonymous, with the same response and
//!   one `debug` log line (target `session_layer::client_side`) that never holds the value.
//! - Size: browsers drop cookies whose name and value pass 4,096 bytes. A
//!   [`Session::insert`](crate::Session::insert) that would pass it fails with
//!   [`SessionError::CookieTooLarge`](crate::SessionError::CookieTooLarge); metadata set
//!   later in the request that pushes it over (a very long user name) fails the response
//!   with the layer's save error status instead. An oversized cookie is never sent.
//!
//! # Do not choose it when
//!
//! - **Sign-out must hold at once, and there is no revocation list.** Sign-out
//!   ([`Session::destroy`](crate::Session::destroy)) sends a removal cookie, and rotation a
//!   new value, but without a list the server keeps nothing to compare a cookie with:
//!   - a client that kept a **copy of the old value** can present it until its own idle or
//!     absolute deadline passes;
//!   - a **request in flight at the sign-out** (a slow upload, a poll from another tab)
//!     that read the session before it reseals the signed-in session when it finishes,
//!     and its `Set-Cookie` signs the browser in again.
//!
//!   The remedy is [`ClientSide::with_revocation_list`]: sign-out then records the session
//!   in a store of your choice, and every request that opens a cookie checks it, so neither
//!   a copy nor a re-issued cookie opens afterwards. Without a store, keep the idle timeout
//!   short, use [`ClientSide::with_not_before`] to void a user's sessions signed in before
//!   a time the app keeps (after a password change, say), or change the keys, which voids
//!   every session at once.
//! - **Sessions are listed or ended one by one.** [`Session::user_sessions`] and
//!   [`Session::revoke`] return an error naming this limitation when a user is set (and
//!   their empty results when none is); [`Session::handle`] is always `None`.
//!   [`Session::revoke_others`] ("sign out everywhere else") works with a revocation list
//!   and is an error without one.
//! - **Sessions are large.** Everything must fit in about 3 KB of JSON. Keep large data in
//!   your own tables, or use a server-side store.
//!
//! Choose client-side sessions for small sessions where no store is at hand or wanted (a
//! stateless service, an edge deployment, a preference or a cart of a few items), and a
//! store when sessions are listed or ended one by one, or when they are large. The key
//! ring is the one secret: anyone who learns a key can forge any session, so keep keys out
//! of the code and the logs, and rotate them before the first key has sealed 2^32 cookies
//! ([`KeyRing`] says why and how).
//!
//! [`SessionLayerBuilder`]: crate::SessionLayerBuilder
//! [`SessionLayer::client_side_builder`]: crate::SessionLayer::client_side_builder
//! [`Session::user_sessions`]: crate::Session::user_sessions
//! [`Session::revoke`]: crate::Session::revoke
//! [`Session::revoke_others`]: crate::Session::revoke_others
//! [`Session::handle`]: crate::Session::handle
//! [`Session::rotate`]: crate::Session::rotate

mod keeper;
mod keyring;
mod revocation;
mod seal;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use time::OffsetDateTime;

pub use self::keyring::{KeyRing, MAX_KEYS, MIN_KEY_LEN};
use self::revocation::Revocations;
pub use self::seal::MAX_COOKIE_BYTES;
use self::seal::{Mode, Nonce, Sealer};
use crate::config::ConfigError;
use crate::record::Record;
use crate::settings::Settings;
use crate::store::{SessionStore, StoreError, StoreErrorKind};

/// The purpose keys are derived for when [`ClientSide::with_purpose`] is not called.
pub const DEFAULT_PURPOSE: &str = "session-layer";

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
type NotBeforeFuture =
    Pin<Box<dyn Future<Output = Result<Option<OffsetDateTime>, BoxError>> + Send>>;

/// How a layer keeps sessions in cookies: the keys, and the options of client-side mode.
/// Give it to [`SessionLayer::client_side`](crate::SessionLayer::client_side) or
/// [`SessionLayer::client_side_builder`](crate::SessionLayer::client_side_builder); a
/// [`KeyRing`] alone converts into one with the defaults.
///
/// | setting | default |
/// | --- | --- |
/// | sealing | encrypted and authenticated (AES-256-GCM); [`signed_only`](Self::signed_only) for readable cookies |
/// | purpose | `"session-layer"` |
/// | not-before check | none |
/// | revocation list | none: a copied cookie works until its deadline |
///
/// ```
/// use session_layer::{ClientSide, KeyRing, SessionLayer};
///
/// let layer = SessionLayer::client_side_builder(
///     ClientSide::new(KeyRing::generate()).with_purpose("shop"),
/// )
/// .with_idle_timeout(std::time::Duration::from_secs(15 * 60))
/// .build()?;
/// # Ok::<(), session_layer::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct ClientSide {
    keys: KeyRing,
    purpose: String,
    mode: Mode,
    not_before: Option<NotBefore>,
    revocations: Option<Arc<dyn SessionStore>>,
}

impl ClientSide {
    /// Client-side sessions sealed with `keys`, with the defaults above.
    pub fn new(keys: KeyRing) -> Self {
        Self {
            keys,
            purpose: DEFAULT_PURPOSE.to_owned(),
            mode: Mode::Private,
            not_before: None,
            revocations: None,
        }
    }

    /// What these cookies are for, bound into every seal: a cookie sealed for another
    /// purpose (another app sharing the keys, say) does not open here. Default:
    /// `"session-layer"`. Changing it voids every existing session.
    ///
    /// ```
    /// use session_layer::{ClientSide, KeyRing};
    ///
    /// let config = ClientSide::new(KeyRing::generate()).with_purpose("billing-portal");
    /// # let _ = config;
    /// ```
    pub fn with_purpose(mut self, purpose: impl Into<String>) -> Self {
        self.purpose = purpose.into();
        self
    }

    /// Signs the cookie instead of encrypting it (HMAC-SHA256 from the `cookie` crate's
    /// signed jar). The client still cannot change the session, but **anyone who holds the
    /// cookie can read everything in it**: data, user, deadlines (the value is base64url of
    /// JSON after the signature). Only for sessions whose contents the user may see, when
    /// readable cookies are wanted (to inspect them while debugging, say). The cookie stays
    /// `HttpOnly`, so page scripts still cannot read it. Default: off (encrypted).
    ///
    /// ```
    /// use session_layer::{ClientSide, KeyRing};
    ///
    /// let config = ClientSide::new(KeyRing::generate()).signed_only();
    /// # let _ = config;
    /// ```
    pub fn signed_only(mut self) -> Self {
        self.mode = Mode::Signed;
        self
    }

    /// A per-user "not before" time the app keeps: when a cookie's session has a user,
    /// `check(user)` is awaited on the request's first read, and a session signed in before
    /// the time it returns is void (the request is anonymous). Return `Ok(None)` when the
    /// user has no such time. Default: no check.
    ///
    /// This is how client-side sessions get "sign out everywhere" from the app's own data:
    /// store the time of the sign-out (or of the password change) with the user. A session
    /// counts as created at its last rotation ([`rotate`](crate::Session::rotate), which
    /// every sign-in calls): a sign-in after the not-before time lives, even if the session
    /// it rotated is older. To keep the current session alive past a new not-before time,
    /// rotate it in the same request. [`with_revocation_list`](Self::with_revocation_list)
    /// keeps such times itself.
    ///
    /// The check runs once per request that reads a session with a user, so back it with
    /// something fast (a cache). If it fails, the session call fails with
    /// [`SessionError::Store`](crate::SessionError::Store) and the session is neither used
    /// nor dropped.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use std::sync::{Arc, RwLock};
    /// use session_layer::{ClientSide, KeyRing};
    /// use time::OffsetDateTime;
    ///
    /// let signed_out: Arc<RwLock<HashMap<String, OffsetDateTime>>> = Arc::default();
    /// let times = signed_out.clone();
    /// let config = ClientSide::new(KeyRing::generate()).with_not_before(move |user: String| {
    ///     let times = times.clone();
    ///     async move {
    ///         Ok::<_, std::convert::Infallible>(times.read().unwrap().get(&user).copied())
    ///     }
    /// });
    /// // "Sign out everywhere" for alice:
    /// signed_out.write().unwrap().insert("alice".into(), OffsetDateTime::now_utc());
    /// # let _ = config;
    /// ```
    pub fn with_not_before<F, Fut, E>(mut self, check: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<OffsetDateTime>, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.not_before = Some(NotBefore(Arc::new(move |user| {
            let fut = check(user);
            Box::pin(async move { fut.await.map_err(Into::into) })
        })));
        self
    }

    /// Keeps a server-side revocation list in `store` (any [`SessionStore`]: a
    /// [`MemoryStore`](crate::MemoryStore) for one process, the Redis, PostgreSQL or SQLite
    /// store when several processes serve the app), so that sign-out holds:
    ///
    /// - [`Session::destroy`](crate::Session::destroy) records the session as signed out,
    ///   under a key derived from its random nonce (never the cookie value), for as long as
    ///   a copy of its cookie could live. A copied cookie does not open afterwards, and
    ///   neither does one that a request in flight at the sign-out sends back.
    /// - [`Session::revoke_others`](crate::Session::revoke_others) records a cut-off for the
    ///   user: every other session of the user signed in before it is void. It answers `0`:
    ///   how many sessions that ended, no record says.
    /// - Every request that opens a cookie checks the list: one store read, two for a
    ///   session with a user. A request that rotates the session checks again before
    ///   resealing, so a rotation cannot carry a signed-out session on.
    ///
    /// The list holds small records of its own, which need no migration beyond the store's
    /// own, and expire by themselves (the memory store and SQL stores remove them with
    /// their expired sessions). A failing list fails the request (the session is neither
    /// used nor dropped, and a sign-out that was not recorded is an error), as a failing
    /// store does. Default: no list.
    ///
    /// ```
    /// use session_layer::{ClientSide, KeyRing, MemoryStore, SessionLayer};
    ///
    /// // One process: a memory store. Several: RedisStore, PostgresStore, SqliteStore.
    /// let layer = SessionLayer::client_side(
    ///     ClientSide::new(KeyRing::generate()).with_revocation_list(MemoryStore::default()),
    /// );
    /// # let _ = layer;
    /// ```
    pub fn with_revocation_list(mut self, store: impl SessionStore) -> Self {
        self.revocations = Some(Arc::new(store));
        self
    }

    /// Checks the options against the layer's settings and derives the sealing keys.
    pub(crate) fn into_sealing(self, settings: &Settings) -> Result<Sealing, ConfigError> {
        let cookie_name = &*settings.cookie_name;
        if self.purpose.is_empty() || self.purpose.len() > 255 {
            return Err(ConfigError::new(
                "client-side sessions: the purpose must be 1 to 255 bytes long",
            ));
        }
        let keys = self
            .keys
            .derive(self.mode.label(), &self.purpose, cookie_name);
        let sealer = Sealer::new(self.mode, keys, cookie_name.to_owned());
        // A session with room for a little data must fit beside the name.
        let now = OffsetDateTime::now_utc();
        let mut probe = Record::new(now, now, now);
        probe
            .data_mut()
            .insert("x".repeat(256), "x".repeat(256).into());
        if sealer.cookie_len(&probe) > MAX_COOKIE_BYTES {
            return Err(ConfigError::new(
                "client-side sessions: the cookie name is so long that no session fits in the \
                 4,096 bytes browsers keep; use a short name",
            ));
        }
        let revocations = self
            .revocations
            .map(|store| Revocations::new(store, &self.purpose, cookie_name, settings));
        Ok(Sealing {
            sealer,
            not_before: self.not_before,
            revocations,
        })
    }
}

impl From<KeyRing> for ClientSide {
    fn from(keys: KeyRing) -> Self {
        Self::new(keys)
    }
}

impl fmt::Debug for ClientSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSide")
            .field("keys", &self.keys)
            .field("purpose", &self.purpose)
            .field("signed_only", &(self.mode == Mode::Signed))
            .field("not_before", &self.not_before.is_some())
            .field("revocation_list", &self.revocations.is_some())
            .finish()
    }
}

/// The app's per-user "not before" check.
#[derive(Clone)]
struct NotBefore(Arc<dyn Fn(String) -> NotBeforeFuture + Send + Sync>);

impl NotBefore {
    async fn check(&self, user: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        (self.0)(user.to_owned()).await.map_err(|e| {
            StoreError::with_source(
                StoreErrorKind::Unavailable,
                "the app's not-before check for the session's user failed; the session was \
                 neither used nor dropped",
                e,
            )
        })
    }
}

/// What a client-side layer shares across requests.
pub(crate) struct Sealing {
    sealer: Sealer,
    not_before: Option<NotBefore>,
    revocations: Option<Revocations>,
}

impl fmt::Debug for Sealing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealing")
            .field("sealer", &self.sealer)
            .field("not_before", &self.not_before.is_some())
            .field("revocations", &self.revocations)
            .finish()
    }
}

/// Opens `data` as a sealed cookie value, and seals it as a payload and opens that, under
/// fixed keys, in both modes; a payload that opens reseals to the same record and sign-in
/// time. It panics only if that fails. The entry point of the `unseal` fuzz target. Not
/// part of the API.
#[doc(hidden)]
pub fn fuzz_unseal(data: &[u8]) {
    use std::sync::OnceLock;

    static SEALERS: OnceLock<Vec<Sealer>> = OnceLock::new();
    let sealers = SEALERS.get_or_init(|| {
        let ring = KeyRing::new([(0u8..64).collect::<Vec<u8>>(), (64u8..128).collect()])
            .expect("a valid ring");
        [Mode::Private, Mode::Signed]
            .into_iter()
            .map(|mode| {
                let name = crate::config::DEFAULT_COOKIE_NAME;
                Sealer::new(
                    mode,
                    ring.derive(mode.label(), "fuzz", name),
                    name.to_owned(),
                )
            })
            .collect()
    });
    let now = OffsetDateTime::now_utc();
    for sealer in sealers {
        if let (true, Ok(text)) = (sealer.has_shape(data), std::str::from_utf8(data)) {
            if let Some(opened) = sealer.open(text) {
                let _ = opened.record.is_live(now);
            }
        }
        if let Ok(text) = std::str::from_utf8(data) {
            if let Some(opened) = sealer.open(&sealer.seal_raw(text)) {
                let resealed = sealer.seal_with(
                    &opened.record.meta,
                    opened.signed_in,
                    |out| seal::write_data(&opened.record, None, out),
                    &Nonce::generate(),
                    str::to_owned,
                );
                // Too large to send is a typed error, not a failure.
                if let Ok(value) = resealed {
                    let again = sealer.open(&value).expect("a resealed payload opens");
                    assert_eq!(again.record, opened.record, "resealing changed the record");
                    assert_eq!(
                        again.signed_in, opened.signed_in,
                        "resealing changed the time"
                    );
                }
            }
        }
    }
}
