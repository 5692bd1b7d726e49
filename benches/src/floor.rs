//! The floor: the least work a session layer with this crate's request flow can
//! do for B1, B1c and B2, measured beside the real ones so the targets can be read against
//! what is possible at all on this machine.
//!
//! It is not a session implementation. Per request it finds the cookie by its name, checks
//! the ID's shape and hashes it (with this crate's own `SessionId`, so those costs are the
//! same), puts a handle into the request's extensions, and, on a read, looks the hash up in
//! a sharded map under a mutex, reads the one value from the stored JSON text, and marks the
//! response `Vary: Cookie` and `Cache-Control: private`. It leaves out everything else a
//! session must do: times, expiry and touches, loading once per request, tracking and saving
//! changes, size limits, store errors, a store trait, and the axum extractor's rejection.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::routing::get;
use axum::Router;
use http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use session_layer::id::{SessionId, StorageKey};

const SHARDS: usize = 80;
const COOKIE_NAME: &[u8] = b"__Host-session=";

/// Storage keys are hashes already: their first bytes are the table's hash.
#[derive(Default)]
struct FirstBytes(u64);

impl Hasher for FirstBytes {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&bytes[..8]);
        self.0 = u64::from_le_bytes(first);
    }
}

type Shard = HashMap<StorageKey, Arc<[u8]>, BuildHasherDefault<FirstBytes>>;

struct Store {
    shards: Box<[Mutex<Shard>]>,
}

impl Store {
    fn shard(&self, key: &StorageKey) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[key.as_bytes()[31] as usize % SHARDS]
            .lock()
            .expect("no panics while held")
    }
}

/// The handle a request carries.
#[derive(Clone)]
struct Handle(Arc<State>);

struct State {
    store: Arc<Store>,
    id: Option<SessionId>,
    accessed: AtomicBool,
    loaded: OnceLock<Option<Arc<[u8]>>>,
    written: Mutex<Option<Vec<u8>>>,
}

impl Handle {
    /// The value under `key`: one lookup, then one walk of the stored JSON object.
    fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.0.accessed.store(true, Ordering::Relaxed);
        let loaded = self.0.loaded.get_or_init(|| {
            let key = self.0.id.as_ref()?.storage_key();
            self.0.store.shard(&key).get(&key).cloned()
        });
        serde_json::from_str(find(loaded.as_deref()?, key)?.get()).ok()
    }

    /// Stores `{"n": value}` as a new session at the end of the request (for `/setup`).
    fn create(&self, value: u64) {
        self.0.accessed.store(true, Ordering::Relaxed);
        let json = serde_json::to_vec(&serde_json::json!({ "n": value })).expect("JSON");
        *self.0.written.lock().expect("no panics while held") = Some(json);
    }
}

/// The raw value of `key` in the JSON object `text`.
fn find<'a>(text: &'a [u8], key: &str) -> Option<&'a RawValue> {
    struct Find<'k>(&'k str);
    impl<'de> Visitor<'de> for Find<'_> {
        type Value = Option<&'de RawValue>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(k) = map.next_key::<&'de str>()? {
                if k == self.0 {
                    found = Some(map.next_value()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    serde_json::Deserializer::from_slice(text)
        .deserialize_map(Find(key))
        .ok()
        .flatten()
}

/// The ID in the first `Cookie` header that names the session cookie, if well-formed.
fn session_id(headers: &HeaderMap) -> Option<SessionId> {
    headers.get_all(COOKIE).iter().find_map(|header| {
        let header = header.as_bytes();
        let at = memchr::memmem::find(header, COOKIE_NAME)? + COOKIE_NAME.len();
        let value = &header[at..];
        let end = memchr::memchr(b';', value).unwrap_or(value.len());
        SessionId::parse(&value[..end])
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Handle {
    type Rejection = StatusCode;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Handle>()
            .cloned()
            .ok_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

#[derive(Clone)]
struct FloorLayer(Arc<Store>);

impl<S> tower::Layer<S> for FloorLayer {
    type Service = FloorService<S>;
    fn layer(&self, inner: S) -> FloorService<S> {
        FloorService {
            inner,
            store: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct FloorService<S> {
    inner: S,
    store: Arc<Store>,
}

impl<S, B, R> tower::Service<Request<B>> for FloorService<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = FloorFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let handle = Handle(Arc::new(State {
            store: self.store.clone(),
            id: session_id(req.headers()),
            accessed: AtomicBool::new(false),
            loaded: OnceLock::new(),
            written: Mutex::new(None),
        }));
        req.extensions_mut().insert(handle.clone());
        FloorFuture {
            inner: self.inner.call(req),
            handle: Some(handle),
        }
    }
}

pin_project_lite::pin_project! {
    struct FloorFuture<F> {
        #[pin]
        inner: F,
        handle: Option<Handle>,
    }
}

impl<F, R, E> Future for FloorFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = Result<Response<R>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = match this.inner.poll(cx) {
            Poll::Ready(Ok(res)) => res,
            other => return other,
        };
        let handle = this.handle.take().expect("polled after completion");
        if !handle.0.accessed.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(res));
        }
        let headers = res.headers_mut();
        if let Some(json) = handle.0.written.lock().expect("no panics").take() {
            let id = SessionId::generate();
            let key = id.storage_key();
            handle.0.store.shard(&key).insert(key, json.into());
            let cookie = format!("__Host-session={}; Path=/", id.expose());
            headers.append(SET_COOKIE, HeaderValue::from_str(&cookie).expect("legal"));
        }
        if !headers.contains_key(VARY) {
            headers.append(VARY, HeaderValue::from_static("Cookie"));
        }
        if !headers.contains_key(CACHE_CONTROL) {
            headers.append(CACHE_CONTROL, HeaderValue::from_static("private"));
        }
        Poll::Ready(Ok(res))
    }
}

async fn plain() -> &'static str {
    "ok"
}

async fn setup(s: Handle) -> &'static str {
    s.create(7);
    "ok"
}

async fn read(s: Handle) -> String {
    s.get::<u64>("n").unwrap_or(0).to_string()
}

/// The floor's app: the routes of B1, B1c and B2, and `/setup` to start a session.
pub(crate) fn app() -> Router {
    let store = Arc::new(Store {
        shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
    });
    Router::new()
        .route("/", get(plain))
        .route("/setup", get(setup))
        .route("/read", get(read))
        .layer(FloorLayer(store))
}
