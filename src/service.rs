//! [`SessionService`]: puts a [`Session`] into each request and saves it afterwards.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue, Request, Response};
use tower_service::Service;

use crate::clock::to_millis;
use crate::config::MAX_COOKIE_AGE;
use crate::cookie_header;
use crate::id::SessionId;
use crate::layer::Shared;
use crate::record::{Change, Metadata, Record, Touch};
use crate::session::Session;
use crate::store::{Applied, Rotated, StoreError, StoreErrorKind, Totals};

/// How many fresh IDs to try when a new ID is taken (which 256 random bits make a sign of a
/// broken random source rather than of bad luck).
const CREATE_ATTEMPTS: usize = 3;

/// The service [`SessionLayer`](crate::SessionLayer) wraps around an inner service.
#[derive(Debug, Clone)]
pub struct SessionService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> SessionService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }
}

type Finishing<B> = Pin<Box<dyn Future<Output = Response<B>> + Send>>;

pin_project_lite::pin_project! {
    /// The response future of [`SessionService`]: the inner service's future, then, only if
    /// the response needs a store call, the save.
    pub struct ResponseFuture<F, B> {
        #[pin]
        inner: F,
        session: Option<Session>,
        finishing: Option<Finishing<B>>,
    }
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("saving", &self.finishing.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default + Send + 'static,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(finishing) = this.finishing.as_mut() {
            return finishing.as_mut().poll(cx).map(Ok);
        }
        let mut response = match this.inner.poll(cx) {
            Poll::Ready(Ok(response)) => response,
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => return Poll::Pending,
        };
        let session = this
            .session
            .take()
            .expect("a ResponseFuture is not polled after it completed");
        if !session.state().accessed {
            return Poll::Ready(Ok(response));
        }
        // Most requests that used the session need no store call at the end (a read inside
        // the touch step), and a client-side save seldom waits: finish them here, without
        // boxing a future.
        #[cfg(feature = "client-side")]
        if let Some(sealing) = &session.inner().shared.client_side {
            if let Some(out) = crate::client_side::save_now(&session, sealing) {
                write_cookie(&session, &mut response, out);
                return Poll::Ready(Ok(response));
            }
        }
        if let Some(out) = decide_without_store(&session) {
            write_cookie(&session, &mut response, Ok(out));
            return Poll::Ready(Ok(response));
        }
        let mut finishing: Finishing<B> = Box::pin(async move {
            finish(&session, &mut response).await;
            response
        });
        match finishing.as_mut().poll(cx) {
            Poll::Ready(response) => Poll::Ready(Ok(response)),
            Poll::Pending => {
                *this.finishing = Some(finishing);
                Poll::Pending
            }
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let session = session_for(self.shared.clone(), req.headers());
        req.extensions_mut().insert(session.clone());

        // The inner future owns what it needs, so the ready service is called in place: no
        // clone of it per request (a clone of axum's boxed route is an allocation).
        ResponseFuture {
            inner: self.inner.call(req),
            session: Some(session),
            finishing: None,
        }
    }
}

/// The request's session, named by the session ID in its cookie (or, in client-side mode,
/// carried by the cookie).
fn session_for(shared: Arc<Shared>, headers: &HeaderMap) -> Session {
    let now = to_millis(shared.clock.now());
    #[cfg(feature = "client-side")]
    if let Some(sealing) = &shared.client_side {
        return crate::client_side::session_for(shared.clone(), sealing, headers, now);
    }
    let found = cookie_header::find(headers, shared.cookie.name.as_bytes(), SessionId::parse);
    Session::new(shared, found.first_valid, found.present, now)
}

/// What the response should say about the cookie.
pub(crate) enum CookieOut {
    Keep,
    Set(SessionId, Metadata),
    Remove,
    /// A client-side session's new sealed value, as its whole `Set-Cookie`.
    #[cfg(feature = "client-side")]
    Sealed(HeaderValue),
}

/// Runs the one store operation the request needs, then writes the headers.
async fn finish<B: Default>(session: &Session, response: &mut Response<B>) {
    if !session.state().accessed {
        return;
    }
    let out = save(session).await;
    write_cookie(session, response, out);
}

/// What to say about the cookie when the request needs no store call at the end (it changed
/// nothing), or `None` when it needs one. [`save`] asks this first, and the response future
/// asks it before boxing the save at all.
fn decide_without_store(session: &Session) -> Option<CookieOut> {
    let inner = session.inner();
    #[cfg(feature = "client-side")]
    if inner.shared.client_side.is_some() {
        return None;
    }
    {
        let state = session.state();
        if state.destroyed || state.rotate || !state.change.is_empty() {
            return None;
        }
    }
    let Some(id) = &inner.cookie_id else {
        return Some(nothing_kept(session));
    };
    Some(match inner.loaded.get() {
        None => CookieOut::Keep,
        // Unknown or expired: never adopted, and nothing to keep.
        Some(None) => nothing_kept(session),
        Some(Some(record)) if renews_cookie(&record.meta, inner.now) => {
            CookieOut::Set(id.clone(), record.meta.clone())
        }
        Some(Some(_)) => CookieOut::Keep,
    })
}

/// Writes the outcome of the save into the response.
fn write_cookie<B: Default>(
    session: &Session,
    response: &mut Response<B>,
    out: Result<CookieOut, StoreError>,
) {
    let shared = &session.inner().shared;
    match out {
        Ok(out) => {
            let headers = response.headers_mut();
            match out {
                CookieOut::Keep => {}
                CookieOut::Set(id, meta) => {
                    let value = set_cookie(shared, id.text(), &meta, session.inner().now);
                    headers.append(SET_COOKIE, value);
                }
                #[cfg(feature = "client-side")]
                CookieOut::Sealed(value) => {
                    headers.append(SET_COOKIE, value);
                }
                CookieOut::Remove => {
                    headers.append(SET_COOKIE, shared.set_cookie.removal());
                }
            }
            mark_private(headers);
        }
        Err(error) if error.kind() == StoreErrorKind::TooLarge => {
            tracing::error!(
                target: "session_layer",
                error = %error,
                "a session size limit was passed; nothing was saved and the response is replaced by an error"
            );
            *response = save_failed(shared);
        }
        Err(error) => {
            tracing::error!(
                target: "session_layer",
                error = %error,
                "saving the session failed; the response is replaced by an error"
            );
            *response = save_failed(shared);
        }
    }
}

/// The response that replaces the handler's when the save failed.
fn save_failed<B: Default>(shared: &Shared) -> Response<B> {
    let mut failed = Response::new(B::default());
    *failed.status_mut() = shared.save_error_status;
    mark_private(failed.headers_mut());
    failed
}

async fn save(session: &Session) -> Result<CookieOut, StoreError> {
    let inner = session.inner();
    #[cfg(feature = "client-side")]
    if let Some(sealing) = &inner.shared.client_side {
        return crate::client_side::save(session, sealing).await;
    }
    // A request that changed nothing needs no store call: one place decides what it says.
    if let Some(out) = decide_without_store(session) {
        return Ok(out);
    }
    let (destroyed, rotate, mut change) = {
        // The request is over: the change moves to the save instead of being copied.
        let mut state = session.state();
        (
            state.destroyed,
            state.rotate,
            std::mem::take(&mut state.change),
        )
    };
    let store = &inner.shared.backend;
    // The save is judged by the clock now, not when the request began: a session that
    // expired while a long request ran stays expired.
    let now = to_millis(inner.shared.clock.now());

    if destroyed {
        if let Some(key) = inner.cookie_key() {
            store.delete(key).await?;
        }
        return create_or_clear(session, &change).await;
    }

    let Some(id) = &inner.cookie_id else {
        return create_or_clear(session, &change).await;
    };
    let loaded = inner.loaded.get();
    if let Some(None) = loaded {
        // Loaded and found nothing: unknown or expired. Never adopt the client's ID.
        return create_or_clear(session, &change).await;
    }
    let loaded = loaded.and_then(Option::as_ref);
    let rules = &inner.shared.rules;

    // Persistence changes the idle timeout, so the deadline moves with it. Any other due
    // touch was made by the load, or is made by the store with the change.
    if let Some(persistent) = change.persistent {
        change.touch = Some(Touch {
            seen: now,
            idle_deadline: now + inner.shared.expiry.idle_for(persistent),
        });
    }
    let touched_by_load = loaded.is_some_and(|r| renews_cookie(&r.meta, inner.now));
    let key = *inner.cookie_key().expect("the cookie named an ID");

    if rotate {
        for _ in 0..CREATE_ATTEMPTS {
            let new_id = SessionId::generate();
            let new_key = new_id.storage_key();
            match store.rotate(&key, &new_key, &change, rules, now).await? {
                Rotated::TooLarge(totals) => return Err(too_large(totals)),
                Rotated::Done(meta) => return Ok(CookieOut::Set(new_id, meta)),
                Rotated::Gone => return create_or_clear(session, &change).await,
                Rotated::Collision => continue,
                #[allow(unreachable_patterns)]
                _ => break,
            }
        }
        return Err(collision_error());
    }

    match store.apply(&key, &change, rules, now).await? {
        Applied::Done(meta)
            if change.persistent.is_some() || touched_by_load || renews_cookie(&meta, now) =>
        {
            Ok(CookieOut::Set(id.clone(), meta))
        }
        Applied::Done(_) => Ok(CookieOut::Keep),
        Applied::TooLarge(totals) => Err(too_large(totals)),
        // The session ended while this request ran (logout elsewhere, expiry): its writes go
        // to a new session, never back into the old one.
        _ => create_or_clear(session, &change).await,
    }
}

/// Whether a persistent session's idle deadline was moved at `now` (by this request's load
/// or write, as the store reports it), so its cookie's `Max-Age` is renewed. A session
/// created at `now` already got its cookie. Another request's touch in the same millisecond
/// also counts, which only resends the same cookie.
fn renews_cookie(meta: &Metadata, now: time::OffsetDateTime) -> bool {
    meta.persistent && meta.last_seen == now && meta.created != now
}

/// The save error for a write that would pass the size limits. It names no key or value.
fn too_large(totals: Totals) -> StoreError {
    StoreError::new(
        StoreErrorKind::TooLarge,
        format!(
            "a session size limit was passed: the write would make the session {} keys and {} bytes of data; nothing was saved (read the session before writing to get SessionError::TooLarge from insert, or raise the limits)",
            totals.keys, totals.bytes
        ),
    )
}

/// The record a new session holding `change` starts with, or `None` when the request wrote
/// nothing worth keeping (then [`nothing_kept`] says what to do with the cookie).
pub(crate) fn fresh_record(session: &Session, change: &Change) -> Option<Record> {
    if change.set.is_empty() && !matches!(change.user, Some(Some(_))) {
        return None;
    }
    let mut record = Record::from_parts(serde_json::Map::new(), session.fresh_meta(change));
    let mut fresh = change.clone();
    fresh.touch = None;
    fresh.apply_to(&mut record);
    Some(record)
}

/// With no session to keep: remove a cookie that named no live session, else send nothing.
pub(crate) fn nothing_kept(session: &Session) -> CookieOut {
    if session.inner().had_cookie {
        CookieOut::Remove
    } else {
        CookieOut::Keep
    }
}

/// Stores a new session holding `change`, if the request wrote anything worth keeping, or
/// clears a cookie that named no live session.
async fn create_or_clear(session: &Session, change: &Change) -> Result<CookieOut, StoreError> {
    let Some(record) = fresh_record(session, change) else {
        return Ok(nothing_kept(session));
    };
    for _ in 0..CREATE_ATTEMPTS {
        let id = SessionId::generate();
        if session
            .inner()
            .shared
            .backend
            .create(&id.storage_key(), &record)
            .await?
        {
            return Ok(CookieOut::Set(id, record.meta));
        }
    }
    Err(collision_error())
}

fn collision_error() -> StoreError {
    StoreError::new(
        StoreErrorKind::Other,
        "three fresh session IDs in a row were already taken; the random source or the store is broken",
    )
}

/// The `Set-Cookie` that sets the session cookie to `value`, with the `Max-Age` of a
/// persistent session.
pub(crate) fn set_cookie(
    shared: &Shared,
    value: &str,
    meta: &Metadata,
    now: time::OffsetDateTime,
) -> HeaderValue {
    let max_age = meta.persistent.then(|| {
        let remaining = (meta.expires() - now).max(time::Duration::ZERO);
        let cap = time::Duration::try_from(MAX_COOKIE_AGE).unwrap_or(time::Duration::MAX);
        remaining.min(cap)
    });
    shared.set_cookie.set(value, max_age)
}

/// Keeps shared caches from storing a response that depends on the session.
fn mark_private(headers: &mut http::HeaderMap) {
    // One walk over the few headers a response has, instead of a hashed lookup per name.
    let (mut varies, mut cache_control, mut private) = (false, false, false);
    for (name, value) in headers.iter() {
        if *name == VARY {
            varies |= value.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case("cookie"))
            });
        } else if *name == CACHE_CONTROL {
            cache_control = true;
            private |= value.to_str().is_ok_and(|v| {
                v.split(',').any(|d| {
                    let d = d.trim();
                    d.eq_ignore_ascii_case("private") || d.eq_ignore_ascii_case("no-store")
                })
            });
        }
    }
    if !varies {
        headers.append(VARY, HeaderValue::from_static("Cookie"));
    }
    if !cache_control {
        headers.append(CACHE_CONTROL, HeaderValue::from_static("private"));
    } else if !private {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private"));
    }
}
