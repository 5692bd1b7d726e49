//! [`AuthSession`], the signed-in user of one request.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use session_layer::id::SessionHandle;
use session_layer::store::SessionInfo;
use session_layer::{Session, SessionError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;

use crate::layer::Config;
use crate::{AuthUser, AuthnBackend, Error, UserId};

/// What sign-in keeps in the session: the user's ID and a digest of its auth hash.
#[derive(Serialize, Deserialize)]
struct Stored<Id> {
    id: Id,
    /// SHA-256 of [`AuthUser::session_auth_hash`], hex: the session store never holds the
    /// password hash itself.
    hash: String,
}

/// The user of one request: who is signed in, sign-in, sign-out, and the user's sessions.
///
/// The [`AuthManagerLayer`](crate::AuthManagerLayer) puts one in every request; take it as
/// an extractor. The user is loaded lazily, at most once per request (whether the guards,
/// [`RequireUser`](crate::RequireUser) or the handler asks first): the session is read, the
/// backend's [`get_user`](AuthnBackend::get_user) is called, and the auth hash the session
/// was signed in with is compared in constant time with the user's current one. If the
/// hashes differ (the password changed) or the user is gone, the session is ended and the
/// request is anonymous. Clones share one state.
///
/// ```
/// use axum::{routing::post, Form, Router};
/// use axum::response::{IntoResponse, Redirect, Response};
/// use session_layer::{MemoryStore, SessionLayer};
/// use session_layer_auth::{AuthManagerLayer, AuthSession, Error};
/// # use session_layer_auth::{AuthUser, AuthnBackend, UserId};
/// # #[derive(Debug, Clone)] struct User;
/// # impl AuthUser for User {
/// #     type Id = i64;
/// #     fn id(&self) -> i64 { 1 }
/// #     fn session_auth_hash(&self) -> &[u8] { b"" }
/// # }
/// # #[derive(Clone)] struct Backend;
/// # impl AuthnBackend for Backend {
/// #     type User = User;
/// #     type Credentials = Credentials;
/// #     type Error = std::convert::Infallible;
/// #     async fn authenticate(&self, _: Credentials) -> Result<Option<User>, Self::Error> { Ok(None) }
/// #     async fn get_user(&self, _: &UserId<Self>) -> Result<Option<User>, Self::Error> { Ok(None) }
/// # }
/// # #[derive(serde::Deserialize)] struct Credentials { username: String, password: String }
///
/// async fn login(
///     mut auth: AuthSession<Backend>,
///     Form(creds): Form<Credentials>,
/// ) -> Result<Response, Error<Backend>> {
///     let Some(user) = auth.authenticate(creds).await? else {
///         return Ok(Redirect::to("/login?failed").into_response());
///     };
///     auth.login(&user).await?;
///     Ok(Redirect::to("/").into_response())
/// }
///
/// let app: Router = Router::new()
///     .route("/login", post(login))
///     .layer(AuthManagerLayer::new(Backend))
///     .layer(SessionLayer::new(MemoryStore::default()));
/// ```
pub struct AuthSession<Backend: AuthnBackend> {
    backend: Backend,
    session: Session,
    state: Arc<State<Backend>>,
}

struct State<Backend: AuthnBackend> {
    config: Arc<Config>,
    /// `None` until the user is loaded (or signed in or out) in this request.
    user: Mutex<Option<Option<Backend::User>>>,
    /// The request's span, whose `user.id` is recorded once the user is known.
    span: tracing::Span,
}

impl<Backend: AuthnBackend> Clone for AuthSession<Backend> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            session: self.session.clone(),
            state: self.state.clone(),
        }
    }
}

impl<Backend: AuthnBackend> fmt::Debug for AuthSession<Backend> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let loaded = self.state.user.try_lock().ok().map(|u| match &*u {
            None => "not loaded",
            Some(None) => "anonymous",
            Some(Some(_)) => "signed in",
        });
        f.debug_struct("AuthSession")
            .field("session", &self.session)
            .field("user", &loaded.unwrap_or("loading"))
            .finish_non_exhaustive()
    }
}

impl<Backend: AuthnBackend> AuthSession<Backend> {
    pub(crate) fn new(
        session: Session,
        backend: Backend,
        config: Arc<Config>,
        span: tracing::Span,
    ) -> Self {
        Self {
            backend,
            session,
            state: Arc::new(State {
                config,
                user: Mutex::new(None),
                span,
            }),
        }
    }

    pub(crate) fn config(&self) -> &Config {
        &self.state.config
    }

    /// The user backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The request's [`Session`], for the app's own values.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The signed-in user, or `None` for an anonymous request. Loaded at most once per
    /// request; see the [type docs](Self) for the checks it makes.
    ///
    /// # Errors
    ///
    /// [`Error::Session`] if the session store failed, [`Error::Backend`] if the backend's
    /// [`get_user`](AuthnBackend::get_user) did. The request is then neither signed in nor
    /// anonymous: answer with the error (it is a `500` response).
    pub async fn user(&self) -> Result<Option<Backend::User>, Error<Backend>> {
        let mut slot = self.state.user.lock().await;
        if let Some(user) = &*slot {
            return Ok(user.clone());
        }
        let user = self.load().await?;
        if let Some(user) = &user {
            self.state
                .span
                .record("user.id", tracing::field::display(user.id()));
        }
        *slot = Some(user.clone());
        Ok(user)
    }

    async fn load(&self) -> Result<Option<Backend::User>, Error<Backend>> {
        let key = self.config().data_key;
        let stored: Stored<UserId<Backend>> = match self.session.get(key).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return Ok(None),
            Err(SessionError::Serde { .. }) => {
                // Written by a build whose user ID type differed: nobody can be signed in
                // with it.
                self.end("the stored sign-in could not be read").await;
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let Some(user) = self
            .backend
            .get_user(&stored.id)
            .await
            .map_err(Error::Backend)?
        else {
            self.end("its user no longer exists").await;
            return Ok(None);
        };
        let current = hex_digest(user.session_auth_hash());
        if bool::from(current.as_bytes().ct_eq(stored.hash.as_bytes())) {
            Ok(Some(user))
        } else {
            self.end("its user's credentials changed").await;
            Ok(None)
        }
    }

    /// Ends the session of a sign-in that no longer holds.
    async fn end(&self, why: &'static str) {
        tracing::info!(target: "session_layer_auth", "session ended: {why}");
        self.session.destroy().await;
    }

    /// Checks `creds` with the backend and returns their user, or `None` if they are
    /// wrong. It does not sign the user in: call [`login`](Self::login) for that.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] if the backend failed.
    pub async fn authenticate(
        &self,
        creds: Backend::Credentials,
    ) -> Result<Option<Backend::User>, Error<Backend>> {
        self.backend
            .authenticate(creds)
            .await
            .map_err(Error::Backend)
    }

    /// Signs `user` in. The session gets a new ID at the end of the request (the old one
    /// stops working, so an ID planted before sign-in is worthless), its owner is recorded
    /// for [`user_sessions`](Self::user_sessions) and revocation, and the user's ID and a
    /// digest of its auth hash are stored.
    ///
    /// What the session held before depends on who held it:
    ///
    /// | the session was | after `login` |
    /// | --- | --- |
    /// | anonymous | the same data (a cart, say) under a new ID |
    /// | signed in as this user | the same data under a new ID |
    /// | signed in as another user | ended (its record deleted), and a new, empty session started: nothing of the previous user's, not even its sign-in time or "remember me" |
    ///
    /// # Errors
    ///
    /// [`Error::Session`] if the session store could not be read or the values not written.
    pub async fn login(&mut self, user: &Backend::User) -> Result<(), Error<Backend>> {
        let key = self.config().data_key;
        let id = user.id();
        let mut slot = self.state.user.lock().await;
        let previous = match self.session.get::<Stored<serde_json::Value>>(key).await {
            Ok(previous) => previous.map(|p| Some(p.id)),
            // Unreadable: nobody can tell whose it was, so it is treated as someone else's.
            Err(SessionError::Serde { .. }) => Some(None),
            Err(e) => return Err(e.into()),
        };
        let same_user = match previous {
            None => true,
            Some(previous) => previous.is_some() && previous == serde_json::to_value(&id).ok(),
        };
        if same_user {
            self.session.rotate().await;
        } else {
            // Values written after this start a new session with a new ID.
            self.session.destroy().await;
        }
        self.session.set_user(Some(id.to_string())).await;
        self.session
            .insert(
                key,
                Stored {
                    id: &id,
                    hash: hex_digest(user.session_auth_hash()),
                },
            )
            .await?;
        self.state
            .span
            .record("user.id", tracing::field::display(&id));
        *slot = Some(Some(user.clone()));
        Ok(())
    }

    /// Signs out: the session is deleted at the end of the request and its cookie removed.
    /// Returns the user who was signed in, if any.
    ///
    /// # Errors
    ///
    /// As for [`user`](Self::user), which it calls to return the user; the session is ended
    /// even then.
    pub async fn logout(&mut self) -> Result<Option<Backend::User>, Error<Backend>> {
        let user = self.user().await;
        self.session.destroy().await;
        *self.state.user.lock().await = Some(None);
        user
    }

    /// The live sessions of the signed-in user ("your devices"), this one included; empty
    /// for an anonymous request. Compare [`SessionInfo::handle`] with
    /// [`Session::handle`] (through [`session`](Self::session)) to mark the current one.
    ///
    /// # Errors
    ///
    /// As for [`user`](Self::user), and [`Error::Session`] if the store could not list them.
    pub async fn user_sessions(&self) -> Result<Vec<SessionInfo>, Error<Backend>> {
        if self.user().await?.is_none() {
            return Ok(Vec::new());
        }
        Ok(self.session.user_sessions().await?)
    }

    /// Ends one of the signed-in user's sessions ("sign out that device"). Returns `false`,
    /// and ends nothing, for an anonymous request or a handle that names no live session of
    /// this user.
    ///
    /// # Errors
    ///
    /// As for [`user`](Self::user), and [`Error::Session`] if the store failed.
    pub async fn revoke(&self, handle: SessionHandle) -> Result<bool, Error<Backend>> {
        if self.user().await?.is_none() {
            return Ok(false);
        }
        Ok(self.session.revoke(handle).await?)
    }

    /// Ends every other session of the signed-in user ("sign out everywhere else") and
    /// returns how many ended; `0` for an anonymous request. A password change needs no call
    /// to it: the other sessions end on their next request, when their auth hash no longer
    /// matches.
    ///
    /// # Errors
    ///
    /// As for [`user`](Self::user), and [`Error::Session`] if the store failed.
    pub async fn revoke_others(&self) -> Result<u64, Error<Backend>> {
        if self.user().await?.is_none() {
            return Ok(0);
        }
        Ok(self.session.revoke_others().await?)
    }
}

fn hex_digest(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for b in digest {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}
