//! Shared pieces of the core's tests: a real `MemoryStore` that counts the operations the
//! layer runs and can be switched to fail, and an app that uses every session feature.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, Request, Response, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use session_layer::id::{SessionHandle, StorageKey};
use session_layer::record::{Change, Record};
use session_layer::store::{Applied, Rotated, SessionInfo, StoreFuture, TouchRule, WriteRules};
use session_layer::testing::MockClock;
use session_layer::{
    MemoryStore, Session, SessionError, SessionLayer, SessionLayerBuilder, SessionStore,
    StoreError, StoreErrorKind,
};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tower::ServiceExt;

/// Counts of each store operation.
#[derive(Debug, Default)]
pub struct Counts {
    pub create: AtomicUsize,
    pub load: AtomicUsize,
    pub apply: AtomicUsize,
    pub rotate: AtomicUsize,
    pub delete: AtomicUsize,
    pub by_user: AtomicUsize,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.reads() + self.writes()
    }
    pub fn reads(&self) -> usize {
        self.load.load(Ordering::SeqCst) + self.by_user.load(Ordering::SeqCst)
    }
    pub fn writes(&self) -> usize {
        [&self.create, &self.apply, &self.rotate, &self.delete]
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .sum()
    }
    pub fn get(c: &AtomicUsize) -> usize {
        c.load(Ordering::SeqCst)
    }
}

/// A `MemoryStore` that counts calls and fails every call while `down` is set. Its calls
/// answer at once, as the store it wraps does; while `waits` is set, every call waits once.
#[derive(Debug, Clone, Default)]
pub struct Instrumented {
    pub inner: MemoryStore,
    pub counts: Arc<Counts>,
    pub down: Arc<AtomicBool>,
    pub waits: Arc<AtomicBool>,
}

impl Instrumented {
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Counts the call on `c`, then answers with `call` unless the backend is down.
    fn call<'a, T: Send + 'a>(
        &'a self,
        c: &'a AtomicUsize,
        call: impl FnOnce() -> StoreFuture<'a, T> + Send + 'a,
    ) -> StoreFuture<'a, T> {
        let answer = move || {
            c.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                StoreFuture::ready(Err(StoreError::new(
                    StoreErrorKind::Unavailable,
                    "test backend is down",
                )))
            } else {
                call()
            }
        };
        if self.waits.load(Ordering::SeqCst) {
            StoreFuture::boxed(async move {
                tokio::task::yield_now().await;
                answer().await
            })
        } else {
            answer()
        }
    }
}

impl SessionStore for Instrumented {
    fn create<'a>(&'a self, key: &'a StorageKey, record: &'a Record) -> StoreFuture<'a, bool> {
        self.call(&self.counts.create, || self.inner.create(key, record))
    }
    fn load<'a>(
        &'a self,
        key: &'a StorageKey,
        touch: Option<&'a TouchRule>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<Record>> {
        self.call(&self.counts.load, move || self.inner.load(key, touch, now))
    }
    fn apply<'a>(
        &'a self,
        key: &'a StorageKey,
        change: &'a Change,
        rules: &'a WriteRules,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Applied> {
        self.call(&self.counts.apply, move || {
            self.inner.apply(key, change, rules, now)
        })
    }
    fn rotate<'a>(
        &'a self,
        old: &'a StorageKey,
        new: &'a StorageKey,
        change: &'a Change,
        rules: &'a WriteRules,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Rotated> {
        self.call(&self.counts.rotate, move || {
            self.inner.rotate(old, new, change, rules, now)
        })
    }
    fn delete<'a>(&'a self, key: &'a StorageKey) -> StoreFuture<'a, ()> {
        self.call(&self.counts.delete, || self.inner.delete(key))
    }
    fn delete_owned<'a>(
        &'a self,
        key: &'a StorageKey,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        self.call(&self.counts.by_user, move || {
            self.inner.delete_owned(key, user, now)
        })
    }
    fn list_by_user<'a>(
        &'a self,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<SessionInfo>> {
        self.call(&self.counts.by_user, move || {
            self.inner.list_by_user(user, now)
        })
    }
    fn delete_by_user<'a>(
        &'a self,
        user: &'a str,
        except: Option<&'a StorageKey>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, u64> {
        self.call(&self.counts.by_user, move || {
            self.inner.delete_by_user(user, except, now)
        })
    }
    fn delete_expired(&self, now: OffsetDateTime, batch: usize) -> StoreFuture<'_, u64> {
        self.call(&self.counts.delete, move || {
            self.inner.delete_expired(now, batch)
        })
    }
}

/// State the test app's slow handler waits on.
#[derive(Clone, Default)]
pub struct Gates {
    pub loaded: Arc<Notify>,
    pub release: Arc<Notify>,
}

pub fn routes(gates: Gates) -> Router {
    Router::new()
        .route("/untouched", get(|| async { "ok" }))
        .route("/get/{key}", get(get_key))
        .route("/incr", post(incr))
        .route("/set/{key}/{value}", post(set_key))
        .route("/remove/{key}", post(remove_key))
        .route("/clear", post(clear))
        .route("/login/{user}", post(login))
        .route("/login_and_write/{user}", post(login_and_write))
        .route("/rotate", post(rotate))
        .route("/logout", post(logout))
        .route("/logout_then_flash", post(logout_then_flash))
        .route("/remember/{on}", post(remember))
        .route("/whoami", get(whoami))
        .route("/meta", get(meta))
        .route("/sessions", get(sessions))
        .route("/revoke/{handle}", post(revoke))
        .route("/revoke_others", post(revoke_others))
        .route("/slow_incr", post(slow_incr))
        .route("/slow_remember", post(slow_remember))
        .route("/big/{bytes}", post(big))
        .route("/many/{keys}", post(many))
        .route("/get_twice", get(get_twice))
        .with_state(gates)
}

async fn get_key(session: Session, Path(key): Path<String>) -> Result<String, SessionError> {
    let value: Option<serde_json::Value> = session.get(&key).await?;
    Ok(value.map(|v| v.to_string()).unwrap_or_default())
}

async fn get_twice(session: Session) -> Result<String, SessionError> {
    let a: Option<u64> = session.get("n").await?;
    let b: Option<u64> = session.get("n").await?;
    let c: Option<String> = session.get("other").await?;
    Ok(format!("{a:?}{b:?}{c:?}"))
}

async fn incr(session: Session) -> Result<String, SessionError> {
    let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
    session.insert("n", n).await?;
    Ok(n.to_string())
}

async fn set_key(
    session: Session,
    Path((k, v)): Path<(String, String)>,
) -> Result<(), SessionError> {
    session.insert(&k, v).await
}

async fn remove_key(session: Session, Path(k): Path<String>) {
    session.remove(&k).await;
}

async fn clear(session: Session) {
    session.clear().await;
}

async fn login(session: Session, Path(user): Path<String>) {
    session.rotate().await;
    session.set_user(Some(user)).await;
}

async fn login_and_write(session: Session, Path(user): Path<String>) -> Result<(), SessionError> {
    session.rotate().await;
    session.set_user(Some(user)).await;
    session.insert("welcome", true).await
}

async fn rotate(session: Session) {
    session.rotate().await;
}

async fn logout(session: Session) {
    session.destroy().await;
}

async fn logout_then_flash(session: Session) -> Result<(), SessionError> {
    session.destroy().await;
    session.insert("flash", "Signed out").await
}

async fn remember(session: Session, Path(on): Path<bool>) -> Result<(), SessionError> {
    session.set_persistent(on).await;
    session.insert("remembered", on).await
}

async fn whoami(session: Session) -> Result<String, SessionError> {
    Ok(session.user().await?.unwrap_or_default())
}

async fn meta(session: Session) -> Result<String, SessionError> {
    let m = session.metadata().await?;
    Ok(format!(
        "{} {} {} {}",
        m.idle_deadline.unix_timestamp(),
        m.absolute_deadline.unix_timestamp(),
        m.persistent,
        m.created.unix_timestamp()
    ))
}

async fn sessions(session: Session) -> Result<String, SessionError> {
    let mine = session.handle();
    let list = session.user_sessions().await?;
    Ok(list
        .iter()
        .map(|i| {
            format!(
                "{}{}",
                i.handle,
                if Some(i.handle) == mine { "*" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(","))
}

async fn revoke(session: Session, Path(handle): Path<String>) -> Result<String, SessionError> {
    let handle: SessionHandle = handle.parse().expect("a handle");
    Ok(session.revoke(handle).await?.to_string())
}

async fn revoke_others(session: Session) -> Result<String, SessionError> {
    Ok(session.revoke_others().await?.to_string())
}

async fn slow_incr(State(gates): State<Gates>, session: Session) -> Result<String, SessionError> {
    let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
    gates.loaded.notify_one();
    gates.release.notified().await;
    session.insert("n", n).await?;
    Ok(n.to_string())
}

/// Reads, waits for the test, then makes the session persistent and writes.
async fn slow_remember(
    State(gates): State<Gates>,
    session: Session,
) -> Result<String, SessionError> {
    let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
    gates.loaded.notify_one();
    gates.release.notified().await;
    session.set_persistent(true).await;
    session.insert("n", n).await?;
    Ok(n.to_string())
}

async fn big(session: Session, Path(bytes): Path<usize>) -> Result<(), SessionError> {
    session.insert("big", "x".repeat(bytes)).await
}

async fn many(session: Session, Path(keys): Path<usize>) -> Result<(), SessionError> {
    for i in 0..keys {
        session.insert(&format!("k{i}"), i).await?;
    }
    Ok(())
}

/// A test app: the routes above under a layer over an instrumented store and a mock clock.
pub struct TestApp {
    pub router: Router,
    pub store: Instrumented,
    pub clock: MockClock,
    pub gates: Gates,
    pub cookie_name: String,
}

impl TestApp {
    pub fn new() -> Self {
        Self::with(|b| b)
    }

    pub fn with(configure: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder) -> Self {
        let store = Instrumented::default();
        let clock = MockClock::new();
        let gates = Gates::default();
        let layer = configure(SessionLayer::builder(store.clone()).with_clock(clock.clone()))
            .build()
            .expect("valid test configuration");
        Self {
            router: routes(gates.clone()).layer(layer),
            store,
            clock,
            gates,
            cookie_name: session_layer::DEFAULT_COOKIE_NAME.to_owned(),
        }
    }

    /// Sends a request with the given cookie value (if any).
    pub async fn send(&self, method: &str, uri: &str, cookie: Option<&str>) -> Response<Body> {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(value) = cookie {
            req = req.header(header::COOKIE, format!("{}={value}", self.cookie_name));
        }
        self.request(req.body(Body::empty()).unwrap()).await
    }

    pub async fn request(&self, req: Request<Body>) -> Response<Body> {
        self.router.clone().oneshot(req).await.unwrap()
    }

    /// Moves the clock.
    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

/// The `Set-Cookie` headers of a response.
pub fn set_cookies(res: &Response<Body>) -> Vec<String> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The value the response sets for the session cookie, if it sets one that is not a removal.
pub fn new_value(res: &Response<Body>) -> Option<String> {
    let cookies = set_cookies(res);
    assert!(cookies.len() <= 1, "more than one Set-Cookie: {cookies:?}");
    let c = cookie::Cookie::parse(cookies.first()?.clone()).unwrap();
    (!c.value().is_empty()).then(|| c.value().to_owned())
}

pub async fn body(res: Response<Body>) -> String {
    use http_body_util::BodyExt;
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

pub fn ok(res: &Response<Body>) {
    assert_eq!(res.status(), StatusCode::OK);
}
