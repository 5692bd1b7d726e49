//! Sessions for axum and any Tower service: secure cookies, ID rotation at sign-in, real
//! sign-out, idle and absolute timeouts that both hold, "remember me", per-user listing and
//! revocation, and pluggable stores that only ever see a hash of the session ID.
//!
//! ```
//! use axum::{routing::get, Router};
//! use session_layer::{MemoryStore, Session, SessionError, SessionLayer};
//!
//! async fn handler(session: Session) -> Result<String, SessionError> {
//!     let visits: u64 = session.get("visits").await?.unwrap_or(0);
//!     session.insert("visits", visits + 1).await?;
//!     Ok(format!("{visits} visits"))
//! }
//!
//! let app: Router = Router::new()
//!     .route("/", get(handler))
//!     .layer(SessionLayer::new(MemoryStore::default()));
//! ```
//!
//! # How a request goes
//!
//! 1. The layer finds the cookie named exactly as configured (byte for byte: no
//!    percent-decoding, trimming or case folding) across all `Cookie` headers and checks the
//!    value's shape. If several cookies carry the name, the first whose value is a well-formed
//!    ID wins; values are never merged. At most 256 cookie pairs are read. A missing or
//!    malformed cookie makes an anonymous request: no store call, no error.
//! 2. The handler's first read loads the record, once, moving its idle deadline in the same
//!    store call when that is due ([`SessionStore::load`]). Writes are collected
//!    per key; a write reads nothing.
//! 3. After the handler, the layer runs at most one store operation (create, update, a write
//!    that no read preceded, rotate or delete) and only then writes `Set-Cookie`. A session nobody wrote to is
//!    never stored. A save whose session ended meanwhile (a logout in another tab, expiry)
//!    never brings it back: the request's own writes go to a new session with a new ID
//!    instead, the one case where a request makes two store calls.
//! 4. Responses that read or wrote the session get `Vary: Cookie` and `Cache-Control:
//!    private`.
//!
//! # Typed sessions
//!
//! Keep what belongs together in one struct under one key, and give handlers an extractor
//! that reads it, so no handler spells the key or the type again:
//!
//! ```
//! use axum::extract::FromRequestParts;
//! use axum::http::request::Parts;
//! use axum::{routing::post, Router};
//! use serde::{Deserialize, Serialize};
//! use session_layer::{MemoryStore, Session, SessionError, SessionLayer};
//!
//! #[derive(Debug, Default, Serialize, Deserialize)]
//! struct Cart {
//!     items: Vec<String>,
//! }
//!
//! /// The cart of the request's session, and the session to save it in.
//! struct CartSession {
//!     session: Session,
//!     cart: Cart,
//! }
//!
//! impl CartSession {
//!     const KEY: &'static str = "cart";
//!
//!     async fn save(&self) -> Result<(), SessionError> {
//!         self.session.insert(Self::KEY, &self.cart).await
//!     }
//! }
//!
//! impl<S: Send + Sync> FromRequestParts<S> for CartSession {
//!     type Rejection = axum::response::Response;
//!
//!     async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
//!         use axum::response::IntoResponse;
//!         let session = Session::from_request_parts(parts, state)
//!             .await
//!             .map_err(IntoResponse::into_response)?;
//!         let cart = session
//!             .get(Self::KEY)
//!             .await
//!             .map_err(IntoResponse::into_response)?
//!             .unwrap_or_default();
//!         Ok(Self { session, cart })
//!     }
//! }
//!
//! async fn add(mut cart: CartSession) -> Result<String, SessionError> {
//!     cart.cart.items.push("apple".to_owned());
//!     cart.save().await?;
//!     Ok(format!("{} items", cart.cart.items.len()))
//! }
//!
//! let app: Router = Router::new()
//!     .route("/cart/add", post(add))
//!     .layer(SessionLayer::new(MemoryStore::default()));
//! # session_layer::doctest(|session| async move {
//! # let cart = CartSession { session: session.clone(), cart: Cart { items: vec!["pear".into()] } };
//! # cart.save().await?;
//! # let read: Cart = session.get(CartSession::KEY).await?.unwrap();
//! # assert_eq!(read.items, ["pear"]);
//! # Ok(()) });
//! ```
//!
//! # Flash messages
//!
//! [`flash::set_flash`] keeps a note ("Signed out", "Password changed") in the session for
//! the next page only; [`flash::take_flash`] shows it once.
//!
//! # Stores
//!
//! [`MemoryStore`] is built in. `session-layer-redis`, `session-layer-postgres` and
//! `session-layer-sqlite` implement the same [`SessionStore`] contract and pass the same
//! conformance suite ([`testing`]).
//!
//! Without a store, the `client-side` feature keeps each session sealed in its cookie
//! ([`client_side`]): the same [`Session`] API, with limits on size and revocation.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `axum` | on | the [`Session`] extractor for axum handlers |
//! | `testing` | off | [`testing::MockClock`] and the store conformance suite, for store authors |
//! | `client-side` | off | [`client_side`]: sessions sealed in their cookie, no store (`SessionLayer::client_side`) |
//! | `metrics` | off | counters and a store-latency histogram through the [`metrics`](https://docs.rs/metrics) facade (see below) |
//!
//! # Observability
//!
//! Through `tracing`, at debug level: a `session` span per request (`cookie`: whether one
//! came; `outcome`: `untouched`, `loaded`, `created`, `written`, `rotated`, `destroyed` or
//! `failed`), a `store_call` span per store call (`op`, `store`, `duration_us`, `error`), and
//! a debug event with a `reason` for each request whose cookie named no live session. An
//! error event when a save fails. None of them ever holds an ID, cookie value or stored value.
//!
//! With the `metrics` feature, through whatever recorder the app installs (a Prometheus
//! exporter, say: `examples/metrics.rs`):
//!
//! | metric | kind | labels |
//! | --- | --- | --- |
//! | `session_layer_sessions_created_total` | counter | |
//! | `session_layer_sessions_rotated_total` | counter | |
//! | `session_layer_sessions_destroyed_total` | counter | |
//! | `session_layer_sessions_revoked_total` | counter | |
//! | `session_layer_anonymous_total` | counter | `reason`: `malformed`, `unknown_or_expired`, `expired`, `revoked` |
//! | `session_layer_save_failures_total` | counter | `kind`: `unavailable`, `timeout`, `corrupt`, `full`, `too_large`, `other` |
//! | `session_layer_store_call_seconds` | histogram | `op`: `load`, `create`, `apply`, `rotate`, `delete`, ... |
//!
//! Without axum, a Tower service finds the [`Session`] in the request's extensions:
//!
//! ```
//! # async fn run() {
//! use http::{Request, Response};
//! use session_layer::{MemoryStore, Session, SessionLayer};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! let svc = SessionLayer::new(MemoryStore::default()).layer(service_fn(
//!     |req: Request<()>| async move {
//!         let session = req.extensions().get::<Session>().unwrap().clone();
//!         session.insert("seen", true).await.unwrap();
//!         Ok::<_, std::convert::Infallible>(Response::new(String::new()))
//!     },
//! ));
//! let res = svc.oneshot(Request::new(())).await.unwrap();
//! assert!(res.headers().contains_key("set-cookie"));
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run());
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "client-side")]
pub mod client_side;
pub mod clock;
mod config;
mod cookie_header;
mod error;
#[cfg(feature = "axum")]
mod extract;
pub mod flash;
#[doc(hidden)]
pub mod fuzz;
pub mod id;
mod keeper;
mod layer;
mod observe;
pub mod record;
mod request;
mod rules;
mod service;
mod session;
mod set_cookie;
mod settings;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "client-side")]
pub use client_side::{ClientSide, KeyRing};
pub use config::{
    ConfigError, SameSite, DEFAULT_COOKIE_NAME, DEV_COOKIE_NAME, MAX_COOKIE_AGE, MAX_TIMEOUT,
};
pub use error::SessionError;
#[cfg(feature = "axum")]
pub use extract::MissingSessionLayer;
pub use layer::{SessionLayer, SessionLayerBuilder};
pub use service::{ResponseFuture, SessionService};
pub use session::Session;
pub use store::memory::MemoryStore;
pub use store::{SessionStore, StoreError, StoreErrorKind};

/// Runs a doc example against a fresh session on a [`MemoryStore`]. Not part of the API.
#[doc(hidden)]
pub fn doctest<F, Fut>(f: F)
where
    F: FnOnce(Session) -> Fut,
    Fut: std::future::Future<Output = Result<(), SessionError>>,
{
    let layer = SessionLayer::new(MemoryStore::default());
    let session = layer.session_for(&http::HeaderMap::new());
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime for the example")
        .block_on(f(session))
        .expect("the example succeeds");
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
