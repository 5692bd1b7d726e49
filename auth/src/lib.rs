//! Sign-in, route guards and sign-out on credential change, on top of
//! [`session_layer`]'s sessions.
//!
//! - Backend traits shaped like axum-login 0.18's ([`AuthUser`], [`AuthnBackend`],
//!   [`AuthzBackend`]): a backend written for axum-login compiles here with only its `use`
//!   lines changed.
//! - [`AuthSession`], an extractor: [`user`](AuthSession::user), [`login`](AuthSession::login)
//!   (a new session ID, the owner recorded for "your devices" and revocation),
//!   [`logout`](AuthSession::logout), the user's sessions and their revocation.
//! - [`AuthManagerLayer`], under the [`SessionLayer`](session_layer::SessionLayer): loads
//!   the user lazily, at most once per request, and ends the session when the user's
//!   credentials changed (the auth hash compared in constant time) or the user is gone.
//! - Guards ([`guard`]): [`RequireAuthLayer`] (or the [`login_required!`],
//!   [`permission_required!`] and [`predicate_required!`] macros) and the [`RequireUser`]
//!   extractor; redirects to the login page carry a `next` that only ever names a same-site
//!   path ([`safe_next`]).
//!
//! ```
//! use std::collections::HashMap;
//! use axum::response::{IntoResponse, Redirect, Response};
//! use axum::routing::{get, post};
//! use axum::{Form, Router};
//! use session_layer::{MemoryStore, SessionLayer};
//! use session_layer_auth::{
//!     login_required, AuthManagerLayer, AuthSession, AuthUser, AuthnBackend, Error,
//!     RequireUser, UserId,
//! };
//!
//! #[derive(Debug, Clone)]
//! struct User {
//!     name: String,
//!     password_hash: String,
//! }
//!
//! impl AuthUser for User {
//!     type Id = String;
//!     fn id(&self) -> String {
//!         self.name.clone()
//!     }
//!     fn session_auth_hash(&self) -> &[u8] {
//!         // Changes with the password: every session signed in before ends.
//!         self.password_hash.as_bytes()
//!     }
//! }
//!
//! #[derive(Clone)]
//! struct Users(HashMap<String, User>);
//!
//! #[derive(serde::Deserialize)]
//! struct Credentials {
//!     name: String,
//!     password: String,
//! }
//!
//! impl AuthnBackend for Users {
//!     type User = User;
//!     type Credentials = Credentials;
//!     type Error = std::convert::Infallible;
//!
//!     async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, Self::Error> {
//!         // A real backend verifies an Argon2 hash here.
//!         let user = self.0.get(&creds.name);
//!         Ok(user.filter(|u| u.password_hash == creds.password).cloned())
//!     }
//!
//!     async fn get_user(&self, name: &UserId<Self>) -> Result<Option<User>, Self::Error> {
//!         Ok(self.0.get(name).cloned())
//!     }
//! }
//!
//! async fn login(
//!     mut auth: AuthSession<Users>,
//!     Form(creds): Form<Credentials>,
//! ) -> Result<Response, Error<Users>> {
//!     match auth.authenticate(creds).await? {
//!         Some(user) => {
//!             auth.login(&user).await?;
//!             Ok(Redirect::to("/account").into_response())
//!         }
//!         None => Ok(Redirect::to("/login?failed").into_response()),
//!     }
//! }
//!
//! async fn account(RequireUser(user): RequireUser<Users>) -> String {
//!     format!("Signed in as {}", user.name)
//! }
//!
//! let users = Users(HashMap::new());
//! let app: Router = Router::new()
//!     .route("/admin", get(|| async { "signed-in users only" }))
//!     .route_layer(login_required!(Users, login_url = "/login"))
//!     .route("/account", get(account))
//!     .route("/login", post(login))
//!     .layer(AuthManagerLayer::new(users).with_login_url("/login"))
//!     .layer(SessionLayer::new(MemoryStore::default()));
//! ```
//!
//! # What sign-in stores
//!
//! One session value (under [`DEFAULT_DATA_KEY`]) holds the user's ID and a SHA-256 digest
//! of its [`session_auth_hash`](AuthUser::session_auth_hash): the session store never
//! holds the password hash. The session's owner (for
//! [`user_sessions`](AuthSession::user_sessions) and revocation) is the ID's `Display`
//! form.
//!
//! # Tracing
//!
//! Each request runs in a span named `auth` whose `user.id` is recorded once the user is
//! loaded or signs in. No span or event of this crate carries a session ID, a cookie, an
//! auth hash or a password.
//!
//! # Coming from axum-login
//!
//! The traits are the same. `AuthSession::user` is a method (the user is loaded lazily, and
//! a store failure is an error, not an anonymous request), as are `backend` and `session`;
//! `login` always gives a new ID and ends another user's session. The guards redirect with
//! `303` and a same-site `next` only, answer `401` with `WWW-Authenticate` where axum-login
//! answers a bare `401` or `403`, and answer a signed-in user who lacks a permission with
//! `403` rather than a redirect to the login page. `MIGRATING.md` in the repository has the
//! full list, and a recipe for moving signed-in users over while both layers run.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod error;
pub mod guard;
mod layer;
mod macros;
mod session;

pub use backend::{AuthUser, AuthnBackend, AuthzBackend, UserId};
pub use error::Error;
pub use guard::{safe_next, MissingAuthLayer, RequireAuth, RequireAuthLayer, RequireUser};
pub use layer::{
    AuthManager, AuthManagerLayer, AuthManagerLayerBuilder, AuthManagerStack, ResponseFuture,
    DEFAULT_DATA_KEY,
};
pub use session::AuthSession;
