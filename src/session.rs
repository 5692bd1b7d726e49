//! The [`Session`] handle a request carries.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use crate::error::SessionError;
use crate::id::{SessionHandle, SessionId, StorageKey};
use crate::layer::Shared;
use crate::record::{Change, Metadata, Record};
use crate::store::{SessionInfo, Totals};

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
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) shared: Arc<Shared>,
    /// The ID the request's cookie named, if it had the right shape.
    pub(crate) cookie_id: Option<SessionId>,
    /// The storage key of `cookie_id`, hashed on first use: a request that loads and then
    /// saves hashes its ID once.
    cookie_key: std::sync::OnceLock<StorageKey>,
    /// Whether the request carried a cookie of the session's name at all.
    pub(crate) had_cookie: bool,
    /// In client-side mode, the sealed value the request's cookie carried, if well-formed.
    #[cfg(feature = "client-side")]
    pub(crate) sealed: Option<crate::client_side::Incoming>,
    pub(crate) now: OffsetDateTime,
    pub(crate) loaded: OnceCell<Option<Record>>,
    pub(crate) state: Mutex<State>,
}

#[derive(Default)]
pub(crate) struct State {
    /// The handler read or wrote the session (the response then varies by cookie).
    pub(crate) accessed: bool,
    /// The session the cookie named is to be deleted; later writes start a new one.
    pub(crate) destroyed: bool,
    /// A new ID is to replace the current one.
    pub(crate) rotate: bool,
    pub(crate) change: Change,
    /// What the data adds up to with `change` applied, as far as this request knows it, and
    /// whether that counts what was read: kept so that many writes count in linear time.
    known: Option<(bool, Totals)>,
}

impl Inner {
    /// The storage key of the ID the cookie named, if it named one.
    pub(crate) fn cookie_key(&self) -> Option<&StorageKey> {
        let id = self.cookie_id.as_ref()?;
        Some(self.cookie_key.get_or_init(|| id.storage_key()))
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("Session")
            .field("id", &self.inner.cookie_id.as_ref().map(|_| "REDACTED"))
            .field("loaded", &self.inner.loaded.initialized())
            .field("destroyed", &state.destroyed)
            .field("rotate", &state.rotate)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(
        shared: Arc<Shared>,
        cookie_id: Option<SessionId>,
        had_cookie: bool,
        now: OffsetDateTime,
    ) -> Self {
        // Without a usable ID there is nothing to load: the session starts empty.
        let loaded = if cookie_id.is_none() {
            OnceCell::new_with(Some(None))
        } else {
            OnceCell::new()
        };
        Self {
            inner: Arc::new(Inner {
                shared,
                cookie_id,
                cookie_key: std::sync::OnceLock::new(),
                had_cookie,
                #[cfg(feature = "client-side")]
                sealed: None,
                now,
                loaded,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// A client-side session, carried by the sealed value of the request's cookie.
    #[cfg(feature = "client-side")]
    pub(crate) fn new_sealed(
        shared: Arc<Shared>,
        sealed: Option<crate::client_side::Incoming>,
        had_cookie: bool,
        now: OffsetDateTime,
    ) -> Self {
        let loaded = if sealed.is_none() {
            OnceCell::new_with(Some(None))
        } else {
            OnceCell::new()
        };
        Self {
            inner: Arc::new(Inner {
                shared,
                cookie_id: None,
                cookie_key: std::sync::OnceLock::new(),
                had_cookie,
                sealed,
                now,
                loaded,
                state: Mutex::new(State::default()),
            }),
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The stored record, read at most once per request. `None` for a new session.
    async fn record(&self) -> Result<Option<&Record>, SessionError> {
        Ok(self.loaded_record().await?)
    }

    /// As [`record`](Self::record), with the store's error as it is.
    pub(crate) async fn loaded_record(&self) -> Result<Option<&Record>, crate::StoreError> {
        let inner = &*self.inner;
        if let Some(loaded) = inner.loaded.get() {
            return Ok(loaded.as_ref());
        }
        if let Some(loaded) = self.load_at_once() {
            // Set the cell at once unless another task is setting it.
            if inner.loaded.set(loaded?).is_ok() {
                return Ok(inner.loaded.get().and_then(Option::as_ref));
            }
        }
        let loaded = inner
            .loaded
            .get_or_try_init(|| async {
                #[cfg(feature = "client-side")]
                if let Some(sealing) = &inner.shared.client_side {
                    return crate::client_side::load(inner, sealing).await;
                }
                let key = inner.cookie_key().expect("set when not preloaded");
                // The read's touch, if due, happens here, in the same store call.
                let touch = Some(&inner.shared.rules.touch);
                inner.shared.backend.load(key, touch, inner.now).await
            })
            .await?;
        Ok(loaded.as_ref())
    }

    /// The load, if it needs no waiting: a client-side cookie with no not-before check to
    /// make.
    fn load_at_once(&self) -> Option<Result<Option<Record>, crate::StoreError>> {
        #[cfg(feature = "client-side")]
        if let Some(sealing) = &self.inner.shared.client_side {
            return crate::client_side::load_at_once(&self.inner, sealing).map(Ok);
        }
        None
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
            if let Some(pending) = state.change.lookup(key) {
                return pending.map(|v| decode(key, v)).transpose();
            }
            if state.destroyed {
                return Ok(None);
            }
        }
        let record = self.record().await?;
        // A write that raced with the load wins, as it came later.
        if let Some(pending) = self.state().change.lookup(key) {
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
        let value = serde_json::to_value(value).map_err(|e| SessionError::serde(key, e))?;
        #[cfg(feature = "client-side")]
        crate::client_side::check_insert(self, key, &value).await?;
        let limits = &self.inner.shared.rules.limits;
        let mut state = self.state();
        state.accessed = true;
        // What is known of the data: what was read, unless a destroy or a clear dropped it
        // (what was not read, the store counts when it saves), with this request's writes.
        let empty = serde_json::Map::new();
        let (read, stored) = match self.inner.loaded.get() {
            Some(Some(record)) if !state.destroyed && !state.change.clear => (true, record.data()),
            _ => (false, &empty),
        };
        let before = match state.known {
            Some((on_read, totals)) if on_read == read => totals,
            _ => Totals::after(stored, &state.change),
        };
        let old = match state.change.lookup(key) {
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
        state.change.set(key, value);
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
        state.change.remove(key);
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
        state.change.clear();
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
        state.rotate = true;
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
        state.destroyed = true;
        state.rotate = false;
        state.change = Change::default();
        state.change.clear();
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
        state.change.persistent = Some(persistent);
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
        state.change.user = Some(user.map(Into::into));
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
            state.destroyed
        };
        let stored = if destroyed {
            None
        } else {
            self.record().await?.map(|r| r.meta.clone())
        };
        let state = self.state();
        let mut meta = stored.unwrap_or_else(|| self.fresh_meta(&state.change));
        state.change.apply_meta(&mut meta);
        Ok(meta)
    }

    /// The metadata a new session would be created with.
    pub(crate) fn fresh_meta(&self, change: &Change) -> Metadata {
        let now = self.inner.now;
        let expiry = &self.inner.shared.expiry;
        let persistent = change.persistent.unwrap_or(false);
        let mut record = Record::new(
            now,
            now + expiry.idle_for(persistent),
            now + expiry.absolute,
        );
        change.apply_meta(&mut record.meta);
        record.meta
    }

    /// The handle of this session as [`Session::user_sessions`] lists it, or `None` for a
    /// session that is not stored yet.
    #[must_use]
    pub fn handle(&self) -> Option<SessionHandle> {
        self.inner.cookie_key().copied().map(SessionHandle::from)
    }

    /// The live sessions of this session's user (empty when no user is set): metadata and
    /// opaque handles, never IDs.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] if the store could not be read.
    pub async fn user_sessions(&self) -> Result<Vec<SessionInfo>, SessionError> {
        match self.user().await? {
            Some(user) => Ok(self
                .inner
                .shared
                .backend
                .list_by_user(&user, self.inner.now)
                .await?),
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
        Ok(self
            .inner
            .shared
            .backend
            .delete_owned(&key, &user, self.inner.now)
            .await?)
    }

    /// Ends every other session of this session's user ("sign out everywhere else", or after
    /// a password change) and returns how many ended. They are anonymous on their next
    /// request.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] if the store failed.
    pub async fn revoke_others(&self) -> Result<u64, SessionError> {
        let Some(user) = self.user().await? else {
            return Ok(0);
        };
        let keep = self.inner.cookie_id.as_ref().map(SessionId::storage_key);
        Ok(self
            .inner
            .shared
            .backend
            .delete_by_user(&user, keep.as_ref(), self.inner.now)
            .await?)
    }
}

fn decode<T: DeserializeOwned>(key: &str, value: &Value) -> Result<T, SessionError> {
    T::deserialize(value).map_err(|e| SessionError::serde(key, e))
}
