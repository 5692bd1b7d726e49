//! Client-side sessions over HTTP, through `tower::ServiceExt::oneshot` on an axum router:
//! the session behaviours of the core, run in every mode (one suite: a memory store,
//! encrypted cookies, signed cookies), and what only client-side mode has: key rotation,
//! the size budget, tampering, and the limits of revocation.

mod behaviours;
mod budget;
mod keys;
mod revocation;
mod revocation_list;
mod tampering;

use std::time::Duration;

use axum::body::Body;
use axum::extract::Query;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt as _;
use session_layer::testing::MockClock;
use session_layer::{
    ClientSide, KeyRing, MemoryStore, Session, SessionError, SessionLayer, SessionLayerBuilder,
};
use tower::ServiceExt as _;

pub(crate) const NAME: &str = "__Host-session";

/// Where sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Store,
    Private,
    Signed,
}

pub(crate) const CLIENT_MODES: [Mode; 2] = [Mode::Private, Mode::Signed];

pub(crate) fn key(seed: u8) -> Vec<u8> {
    (0..64u8)
        .map(|i| i.wrapping_mul(seed | 1).wrapping_add(seed))
        .collect()
}

pub(crate) fn ring(seeds: &[u8]) -> KeyRing {
    KeyRing::new(seeds.iter().map(|s| key(*s))).unwrap()
}

/// A layer builder of `mode`, on `clock`; client-side modes seal with `keys`.
pub(crate) fn builder(mode: Mode, keys: KeyRing, clock: &MockClock) -> SessionLayerBuilder {
    match mode {
        Mode::Store => SessionLayer::builder(MemoryStore::default()),
        Mode::Private => SessionLayer::client_side_builder(keys),
        Mode::Signed => SessionLayer::client_side_builder(ClientSide::new(keys).signed_only()),
    }
    .with_clock(clock.clone())
}

async fn count(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    Ok(visits.to_string())
}

async fn read(session: Session) -> Result<String, SessionError> {
    Ok(session.get::<u64>("visits").await?.unwrap_or(0).to_string())
}

async fn remember(session: Session) -> Result<String, SessionError> {
    session.set_persistent(true).await;
    count(session).await
}

async fn login(session: Session) -> Result<String, SessionError> {
    session.rotate().await;
    session.set_user(Some("alice")).await;
    Ok(String::new())
}

async fn logout(session: Session) -> &'static str {
    session.destroy().await;
    "bye"
}

async fn whoami(session: Session) -> Result<String, SessionError> {
    let meta = session.metadata().await?;
    Ok(format!("{:?} {}", meta.user, meta.persistent))
}

#[derive(serde::Deserialize)]
struct Put {
    key: String,
    len: usize,
}

/// Stores `len` bytes under `key`; a refused write answers 413 with the error's text.
async fn put(session: Session, Query(put): Query<Put>) -> (StatusCode, String) {
    match session.insert(&put.key, "x".repeat(put.len)).await {
        Ok(()) => (StatusCode::OK, String::new()),
        Err(e @ SessionError::CookieTooLarge { .. }) => {
            (StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(serde::Deserialize)]
struct User {
    name: String,
}

async fn set_user(session: Session, Query(user): Query<User>) -> &'static str {
    session.set_user(Some(user.name)).await;
    ""
}

async fn list(session: Session) -> (StatusCode, String) {
    match session.user_sessions().await {
        Ok(list) => (StatusCode::OK, list.len().to_string()),
        Err(e) => (StatusCode::NOT_IMPLEMENTED, e.to_string()),
    }
}

async fn revoke_others(session: Session) -> (StatusCode, String) {
    match session.revoke_others().await {
        Ok(n) => (StatusCode::OK, n.to_string()),
        Err(e) => (StatusCode::NOT_IMPLEMENTED, e.to_string()),
    }
}

#[derive(serde::Deserialize)]
struct Expiry {
    idle_secs: Option<u64>,
    end_unix: Option<i64>,
}

/// Gives the session an idle timeout and/or an end time of its own.
async fn expiry(session: Session, Query(e): Query<Expiry>) -> Result<String, SessionError> {
    if let Some(secs) = e.idle_secs {
        session
            .set_idle_timeout(Some(Duration::from_secs(secs)))
            .await?;
    }
    if let Some(unix) = e.end_unix {
        let at = time::OffsetDateTime::from_unix_timestamp(unix).unwrap();
        session.set_expires_at(Some(at)).await?;
    }
    Ok(String::new())
}

pub(crate) fn app(layer: SessionLayer) -> Router {
    Router::new()
        .route("/count", get(count))
        .route("/read", get(read))
        .route("/untouched", get(|| async { "hi" }))
        .route("/remember", get(remember))
        .route("/login", get(login))
        .route("/logout", get(logout))
        .route("/whoami", get(whoami))
        .route("/put", get(put))
        .route("/user", get(set_user))
        .route("/list", get(list))
        .route("/revoke-others", get(revoke_others))
        .route("/expiry", get(expiry))
        .layer(layer)
}

/// What a test checks in a response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: String,
    /// Every `Set-Cookie` header.
    pub(crate) set_cookies: Vec<String>,
    pub(crate) vary: Option<String>,
    pub(crate) cache_control: Option<String>,
}

impl Reply {
    /// The one `Set-Cookie` of the session cookie, if any.
    pub(crate) fn set_cookie(&self) -> Option<&str> {
        assert!(
            self.set_cookies.len() <= 1,
            "more than one Set-Cookie: {:?}",
            self.set_cookies
        );
        self.set_cookies.first().map(String::as_str)
    }

    /// The value the response set (empty for a removal).
    pub(crate) fn cookie_value(&self) -> Option<&str> {
        let set = self.set_cookie()?;
        let pair = set.split(';').next().unwrap();
        Some(pair.strip_prefix(NAME).unwrap().strip_prefix('=').unwrap())
    }

    pub(crate) fn removes_cookie(&self) -> bool {
        self.set_cookie()
            .is_some_and(|c| c.starts_with(&format!("{NAME}=;")) && c.contains("Max-Age=0"))
    }

    pub(crate) fn max_age(&self) -> Option<u64> {
        self.set_cookie()?
            .split(';')
            .find_map(|a| a.trim().strip_prefix("Max-Age="))
            .map(|v| v.parse().unwrap())
    }
}

/// Sends one request with `cookie` as the session cookie's value.
pub(crate) async fn send(app: &Router, path: &str, cookie: Option<&str>) -> Reply {
    let mut req = Request::get(path);
    if let Some(value) = cookie {
        req = req.header(header::COOKIE, format!("{NAME}={value}"));
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let headers = res.headers().clone();
    let text = |name| {
        headers
            .get(name)
            .map(|v: &header::HeaderValue| v.to_str().unwrap().to_owned())
    };
    Reply {
        status: res.status(),
        set_cookies: headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect(),
        vary: text(header::VARY),
        cache_control: text(header::CACHE_CONTROL),
        body: String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec())
            .unwrap(),
    }
}

/// A browser with one cookie: it sends the session cookie and keeps what responses set.
pub(crate) struct Browser {
    pub(crate) app: Router,
    pub(crate) cookie: Option<String>,
}

impl Browser {
    pub(crate) fn new(layer: SessionLayer) -> Self {
        Self::on(app(layer))
    }

    pub(crate) fn on(app: Router) -> Self {
        Self { app, cookie: None }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Reply {
        let reply = send(&self.app, path, self.cookie.as_deref()).await;
        if let Some(value) = reply.cookie_value() {
            self.cookie = (!value.is_empty()).then(|| value.to_owned());
        }
        reply
    }
}

pub(crate) fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}
