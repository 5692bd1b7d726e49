//! The [`Session`] handle a request carries.

use std::fmt;
use std::sync::{Arc, MutexGuard};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::SessionError;
use crate::id::SessionHandle;
use crate::keeper::{Ending, Fit};
use crate::record::{Metadata, Record};
use crate::request::{Core, State};
use crate::rules::Totals;
use crate::settings::Settings;
use crate::store::SessionInfo;

/// The session of one request: typed values by key, plus ID rotation, logout, "remember me"
/// and the owner used for per-user listing and revocation.
///
/// It is lazy: the store is read the first time a handler reads the session, once per
/// request; writes are collected and saved by the layer after the handler returns, as one
/// atomic per-key change. A handler that never touches the session costs no store call and
/// sends no cookie. Clones share one state.
///
/// In axum, take it as an extractor; in a plain Tower service, find it in the request's
/// extensions.
///
/// ```
/// use axum::{routing::get, Router};
/// use session_layer::{MemoryStore, Session, SessionError, SessionLayer};
///
/// async fn counter(session: Session) -> Result<String, SessionError> {
///     let visits: u64 = session.get("visits").await?.unwrap_or(0);
///     session.insert("visits", visits + 1).await?;
///     Ok(format!("{visits} visits before this one"))
/// }
///
/// let app: Router = Router::new()
///     .route("/", get(counter))
///     .layer(SessionLayer::new(MemoryStore::default()));
/// ```
#[derive(Clone)]
pub struct Session {
    core: Arc<dyn Core>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("Session")
            .field("id", &self.core.had_cookie().then_some("REDACTED"))
            .field("loaded", &self.core.loaded().is_some())
            .field("destroyed", &state.ending.destroyed)
            .field("rotate", &state.ending.rotate)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(core: Arc<dyn Core>) -> Self {
        Self { core }
    }

    pub(crate) fn core(&self) -> &Arc<dyn Core> {
        &self.core
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.core.state()
    }

    /// The stored record, read at most once per request. `None` for a new session.
    async fn record(&self) -> Result<Option<&Record>, SessionError> {
        Ok(self.core.record().await?)
    }

    /// The value under `key`, or `None` if there is none.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] if the store could not be read (the session is not treated
    /// as empty), [`SessionError::Serde`] if the value is not a `T`.
    ///
    /// ```
    /// # session_layer::doctest(|session| async move {
    /// session.insert("theme", "dark").await?;
    /// let theme: Option<String> = session.get("theme").await?;
    /// assert_eq!(theme.as_deref(), Some("dark"));
    /// # Ok(()) });
    /// ```
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        {
            let mut state = self.state();
            state.accessed = true;
            if let Some(pending) = state.ending.change.lookup(key) {
                return pending.map(|v| decode(key, v)).transpose();
            }
            if state.ending.destroyed {
                return Ok(None);
            }
        }
        let record = self.record().await?;
        // A write that raced with the load wins, as it came later.
        if let Some(pending) = self.state().ending.change.lookup(key) {
            return pending.map(|v| decode(key, v)).transpose();
        }
        record
            .and_then(|r| r.data().get(key))
            .map(|v| decode(key, v))
            .transpose()
    }

    /// Sets `key` to `value`. The layer saves the write after the handler returns, as a
    /// change to this one key, so concurrent requests that write other keys keep their
    /// writes too.
    ///
    /// It reads nothing from the store. The size limits (see
    /// [`with_limits`](crate::SessionLayerBuilder::with_limits)) are checked here against what
    /// is known: this value, the request's other writes and, if the handler read the session
    /// first, what it holds. If nothing was read, the store checks the whole session when it
    /// saves the write, in the same atomic step; a write that would pass the limits there is
    /// not saved (nothing of the request is), the response becomes the layer's save error
    /// (`500` unless [configured](crate::SessionLayerBuilder::with_save_error_status)), and an
    /// error is logged saying a session size limit was passed. Read the session first (any
    /// [`get`](Self::get)) to get [`SessionError::TooLarge`] here instead, while the handler
    /// can still react.
    ///
    /// # Errors
    ///
    /// [`SessionError::Serde`] if `value` cannot become JSON, [`SessionError::TooLarge`] if
    /// the session would pass the layer's size limits as far as is known (above), and in
    /// client-side mode [`SessionError::CookieTooLarge`] if its cookie would pass what
    /// browsers keep.
    ///
    /// ```
    /// # session_layer::doctest(|session| async move {
    /// session.insert("cart", vec!["apple", "pear"]).await?;
    /// # Ok(()) });
    /// ```
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        let value =
            serde_json::to_value(value).map_err(|e| SessionError::unwritable::<T>(key, e))?;
        // What the session's keeper can hold (a client-side cookie's size), decided on the
        // stored record when the pending writes alone cannot tell.
        let mut fit = self.core.fits(&self.state(), key, &value);
        if fit == Fit::NeedsRecord {
            self.record().await?;
            fit = self.core.fits(&self.state(), key, &value);
        }
        if let Fit::CookieTooLarge(bytes) = fit {
            return Err(SessionError::CookieTooLarge { bytes });
        }
        let limits = &self.core.settings().rules.limits;
        let mut state = self.state();
        state.accessed = true;
        // What is known of the data: what was read, unless a destroy or a clear dropped it
        // (what was not read, the store counts when it saves), with this request's writes.
        let empty = serde_json::Map::new();
        let (read, stored) = match self.core.loaded() {
            Some(Some(record)) if !state.ending.destroyed && !state.ending.change.clear => {
                (true, record.data())
            }
            _ => (false, &empty),
        };
        let before = match state.known {
            Some((on_read, totals)) if on_read == read => totals,
            _ => Totals::after(stored, &state.ending.change),
        };
        let old = match state.ending.change.lookup(key) {
            Some(pending) => pending,
            None => stored.get(key),
        };
        let after = before.with_set(key, old, &value);
        if !limits.allow(before, after) {
            return Err(SessionError::TooLarge {
                detail: if after.keys > limits.max_keys {
                    format!("{} keys, over the limit of {}", after.keys, limits.max_keys)
                } else {
                    format!(
                        "at least {} bytes of data, over the limit of {}",
                        after.bytes, limits.max_bytes
                    )
                },
            });
        }
        state.known = Some((read, after));
        state.ending.change.set(key, value);
        Ok(())
    }

    /// Removes `key`, without reading the session first.
    ///
    /// ```
    /// # session_layer::doctest(|session| async move {
    /// session.insert("draft", "text").await?;
    /// session.remove("draft").await;
    /// assert_eq!(session.get::<String>("draft").await?, None);
    /// # Ok(()) });
    /// ```
    pub async fn remove(&self, key: &str) {
        let mut state = self.state();
        state.accessed = true;
        state.ending.change.remove(key);
        state.known = None;
    }

    /// Removes `key` and returns the value it held.
    ///
    /// # Errors
    ///
    /// As for [`Session::get`].
    ///
    /// ```
    /// # session_layer::doctest(|session| async move {
    /// session.insert("flash", "Signed out").await?;
    /// assert_eq!(session.take::<String>("flash").await?.as_deref(), Some("Signed out"));
    /// assert_eq!(session.take::<String>("flash").await?, None);
    /// # Ok(()) });
    /// ```
    pub async fn take<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let value = self.get(key).await?;
        if value.is_some() {
            self.remove(key).await;
        }
        Ok(value)
    }

    /// Removes every key; the session itself (ID, owner, deadlines) stays.
    ///
    /// ```
    /// # session_layer::doctest(|session| async move {
    /// session.insert("a", 1).await?;
    /// session.clear().await;
    /// assert_eq!(session.get::<i32>("a").await?, None);
    /// # Ok(()) });
    /// ```
    pub async fn clear(&self) {
        let mut state = self.state();
        state.accessed = true;
        state.ending.change.clear();
        state.known = None;
    }

    /// Gives the session a new ID at the end of the request, carrying its data over; the old
    /// ID stops working at once. Call it at sign-in and at any change of privilege, so an ID
    /// planted before sign-in (session fixation) is worthless after it. The absolute deadline
    /// stays where it was.
    ///
    /// ```
    /// # session_layer::doctest(|session| async move {
    /// session.rotate().await;
    /// session.set_user(Some("alice")).await;
    /// # Ok(()) });
    /// ```
    pub async fn rotate(&self) {
        let mut state = self.state();
        state.accessed = true;
        state.ending.rotate = true;
    }

    /// Ends the session (sign-out): its record is deleted at the end of the request and the
    /// response removes the cookie. Values written after this call start a new, empty
    /// session with a new ID (a "signed out" flash message, say).
    ///
    /// ```
    /// # session_layer::doctest(|session| async move {
    /// session.insert("user", "alice").await?;
    /// session.destroy().await;
    /// assert_eq!(session.get::<String>("user").await?, None);
    /// # Ok(()) });
    /// ```
    pub async fn destroy(&self) {
        let mut state = self.state();
        state.accessed = true;
        state.ending = Ending {
            destroyed: true,
            ..Ending::default()
        };
        state.ending.change.clear();
        state.known = None;
    }

    /// Makes the session persistent ("remember me": the cookie outlives the browser session
    /// and the longer idle timeout applies) or browser-only. Stored with the session, so it
    /// holds on every later request until changed.
    ///
    /// ```
    /// # session_layer::doctest(|session| async move {
    /// session.set_persistent(true).await;
    /// assert!(session.metadata().await?.persistent);
    /// # Ok(()) });
    /// ```
    pub async fn set_persistent(&self, persistent: bool) {
        let mut state = self.state();
        state.accessed = true;
        state.ending.change.persistent = Some(persistent);
    }

    /// Gives the session an idle timeout of its own (or with `None`, returns it to the
    /// layer's timeout for its persistence class): it ends after this long without a
    /// request, whether persistent or not. Stored with the session, so it holds on every
    /// later request and across rotations until changed; the idle deadline restarts from
    /// this request with the new timeout. The session still ends at its absolute deadline,
    /// and its cookie gets a `Max-Age` of its remaining lifetime.
    ///
    /// # Errors
    ///
    /// [`SessionError::Expiry`] for a timeout shorter than one second, not longer than the
    /// layer's [touch step](crate::SessionLayerBuilder::with_touch_step) (activity could
    /// never move the deadline), or longer than [`MAX_TIMEOUT`](crate::MAX_TIMEOUT): the
    /// limits the layer's builder sets on its own idle timeouts. Nothing is changed then.
    ///
    /// ```
    /// # session_layer::doctest(|session| async move {
    /// use std::time::Duration;
    ///
    /// session.set_idle_timeout(Some(Duration::from_secs(10 * 60))).await?;
    /// assert_eq!(
    ///     session.metadata().await?.idle_timeout,
    ///     Some(time::Duration::minutes(10))
    /// );
    /// assert!(session.set_idle_timeout(Some(Duration::MAX)).await.is_err());
    /// # Ok(()) });
    /// ```
    pub async fn set_idle_timeout(
        &self,
        idle_timeout: Option<std::time::Duration>,
    ) -> Result<(), SessionError> {
        let idle_timeout = idle_timeout
            .map(|d| self.core.settings().own_idle_timeout(d))
            .transpose()
            .map_err(|detail| SessionError::Expiry { detail })?;
        let mut state = self.state();
        state.accessed = true;
        state.ending.change.idle_timeout = Some(idle_timeout);
        Ok(())
    }

    /// Gives the session an end time of its own (or with `None`, returns it to its creation
    /// plus the layer's absolute timeout): it ends then, however active. Stored with the
    /// session, so it holds on every later request and across rotations until changed.
    ///
    /// The end time becomes the session's absolute deadline, kept within the layer's
    /// longest session lifetime after its creation: the absolute timeout, unless the layer
    /// allows more with
    /// [`with_max_session_lifetime`](crate::SessionLayerBuilder::with_max_session_lifetime).
    /// An end time past that is cut to it; one already past ends the session with this
    /// request. Its cookie gets a `Max-Age` of its remaining lifetime.
    ///
    /// # Errors
    ///
    /// [`SessionError::Expiry`] for an end time further from now than
    /// [`MAX_TIMEOUT`](crate::MAX_TIMEOUT), which no layer accepts either. Nothing is
    /// changed then.
    ///
    /// ```
    /// # session_layer::doctest(|session| async move {
    /// use time::{Duration, OffsetDateTime};
    ///
    /// let at = OffsetDateTime::now_utc() + Duration::hours(2);
    /// session.set_expires_at(Some(at)).await?;
    /// let meta = session.metadata().await?;
    /// assert!(meta.expires() <= at, "the session ends at its end time at the latest");
    /// # Ok(()) });
    /// ```
    pub async fn set_expires_at(
        &self,
        expires_at: Option<time::OffsetDateTime>,
    ) -> Result<(), SessionError> {
        let expires_at = expires_at
            .map(|at| Settings::own_end_time(self.core.started(), at))
            .transpose()
            .map_err(|detail| SessionError::Expiry { detail })?;
        let mut state = self.state();
        state.accessed = true;
        state.ending.change.expires_at = Some(expires_at.map(crate::clock::to_millis));
        Ok(())
    }

    /// Sets (or with `None`, removes) the user this session belongs to, for
    /// [`Session::user_sessions`] and revocation. Pair it with [`Session::rotate`] at sign-in.
    ///
    /// ```
    /// # session_layer::doctest(|session| async move {
    /// session.set_user(Some("alice")).await;
    /// assert_eq!(session.user().await?.as_deref(), Some("alice"));
    /// # Ok(()) });
    /// ```
    pub async fn set_user(&self, user: Option<impl Into<String>>) {
        let mut state = self.state();
        state.accessed = true;
        state.ending.change.user = Some(user.map(Into::into));
    }

    /// The user this session belongs to, if one was set.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] if the store could not be read.
    pub async fn user(&self) -> Result<Option<String>, SessionError> {
        Ok(self.metadata().await?.user)
    }

    /// The session's metadata as it will be after this request: created, last seen,
    /// deadlines, persistence and owner. A new session reports the values it would be saved
    /// with.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] if the store could not be read.
    ///
    /// ```
    /// # session_layer::doctest(|session| async move {
    /// let meta = session.metadata().await?;
    /// assert!(meta.expires() > meta.created);
    /// # Ok(()) });
    /// ```
    pub async fn metadata(&self) -> Result<Metadata, SessionError> {
        let destroyed = {
            let mut state = self.state();
            state.accessed = true;
            state.ending.destroyed
        };
        let stored = if destroyed {
            None
        } else {
            self.record().await?.map(|r| r.meta.clone())
        };
        let state = self.state();
        let (settings, now) = (self.core.settings(), self.core.started());
        Ok(match stored {
            Some(mut meta) => {
                settings
                    .rules
                    .apply_meta(&state.ending.change, &mut meta, now);
                meta
            }
            None => settings.fresh_meta(&state.ending.change, now),
        })
    }

    /// The handle of this session as [`Session::user_sessions`] lists it, or `None` for a
    /// session that is not stored yet, or whose handle this request is about to change (a
    /// pending [`rotate`](Self::rotate) or [`destroy`](Self::destroy)): a handle taken
    /// then would name a session that is gone once the request ends.
    ///
    /// ```
    /// # session_layer::doctest(|session| async move {
    /// assert_eq!(session.handle(), None, "a new session is not stored yet");
    /// session.rotate().await;
    /// assert_eq!(session.handle(), None);
    /// # Ok(()) });
    /// ```
    #[must_use]
    pub fn handle(&self) -> Option<SessionHandle> {
        {
            let state = self.state();
            if state.ending.rotate || state.ending.destroyed {
                return None;
            }
        }
        self.core.handle()
    }

    /// The live sessions of this session's user (empty when no user is set): metadata and
    /// opaque handles, never IDs.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] if the store could not be read.
    pub async fn user_sessions(&self) -> Result<Vec<SessionInfo>, SessionError> {
        match self.user().await? {
            Some(user) => Ok(self.core.sessions_of(&user).await?),
            None => Ok(Vec::new()),
        }
    }

    /// Ends one of this user's other sessions ("sign out that device"). Returns `false`, and
    /// ends nothing, if the handle names no live session of this session's user.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] if the store failed.
    pub async fn revoke(&self, handle: SessionHandle) -> Result<bool, SessionError> {
        let Some(user) = self.user().await? else {
            return Ok(false);
        };
        let key = handle.storage_key();
        Ok(self.core.revoke(&key, &user).await?)
    }

    /// Ends every other session of this session's user ("sign out everywhere else", or after
    /// a password change) and returns how many ended. They are anonymous on their next
    /// request.
    ///
    /// In client-side mode this needs a
    /// [revocation list](crate::ClientSide::with_revocation_list): the user's other
    /// sessions signed in before now are void from now on, and the answer is `0`, since no
    /// record says how many there were.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] if the store failed, or in client-side mode without a
    /// revocation list.
    pub async fn revoke_others(&self) -> Result<u64, SessionError> {
        let Some(user) = self.user().await? else {
            return Ok(0);
        };
        Ok(self.core.revoke_others(&user).await?)
    }
}

fn decode<T: DeserializeOwned>(key: &str, value: &Value) -> Result<T, SessionError> {
    T::deserialize(value).map_err(|e| SessionError::unreadable::<T>(key, value, e))
}
