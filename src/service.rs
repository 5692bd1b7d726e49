//! [`SessionService`]: puts a [`Session`] into each request and, after the handler, writes
//! what the save decided into the response.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::{CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue, Request, Response};
use tower_service::Service;

use crate::keeper::{CookieOut, How, Kept};
use crate::observe::{self, Outcome};
use crate::request::{Begin, Core};
use crate::session::Session;
use crate::store::{StoreError, StoreErrorKind, StoreFuture};

/// The service [`SessionLayer`](crate::SessionLayer) wraps around an inner service.
#[derive(Debug, Clone)]
pub struct SessionService<S> {
    inner: S,
    begin: Arc<dyn Begin>,
}

impl<S> SessionService<S> {
    pub(crate) fn new(inner: S, begin: Arc<dyn Begin>) -> Self {
        Self { inner, begin }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`SessionService`]: the inner service's future, then the
    /// session's save, if it has to wait on a store.
    pub struct ResponseFuture<F, B> {
        #[pin]
        inner: F,
        session: Option<Session>,
        saving: Option<(StoreFuture<'static, Kept>, Response<B>)>,
    }
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("saving", &self.saving.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let core = this
            .session
            .as_ref()
            .expect("a ResponseFuture is not polled after it completed")
            .core()
            .clone();
        // The handler's store calls, and the save's, nest under the request's span.
        let _entered = core.span().enter();
        loop {
            if let Some((saving, _)) = this.saving.as_mut() {
                let out = ready!(Pin::new(saving).poll(cx));
                let (_, response) = this.saving.take().expect("polled just above");
                this.session.take();
                return Poll::Ready(Ok(respond(&*core, response, out)));
            }
            let response = ready!(this.inner.as_mut().poll(cx))?;
            if !core.state().accessed {
                this.session.take();
                observe::finished(core.span(), Outcome::Untouched);
                return Poll::Ready(Ok(response));
            }
            // Most saves need no waiting (nothing changed, an in-process store, a cookie to
            // seal): they are written here, and only a store that waits is polled again.
            match core.clone().finish().into_ready() {
                Ok(out) => {
                    this.session.take();
                    return Poll::Ready(Ok(respond(&*core, response, out)));
                }
                Err(waiting) => *this.saving = Some((waiting, response)),
            }
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let session = Session::new(self.begin.clone().begin(req.headers()));
        req.extensions_mut().insert(session.clone());
        // The inner future owns what it needs, so the ready service is called in place: no
        // clone of it per request (a clone of axum's boxed route is an allocation).
        ResponseFuture {
            inner: self.inner.call(req),
            session: Some(session),
            saving: None,
        }
    }
}

/// Writes the outcome of the save into the response: the cookie and the headers that keep
/// shared caches away, or, if the save failed, the layer's error response in its place.
fn respond<B: Default>(
    core: &dyn Core,
    mut response: Response<B>,
    out: Result<Kept, StoreError>,
) -> Response<B> {
    let settings = core.settings();
    match out {
        Ok(kept) => {
            observe::finished(core.span(), outcome(kept.how));
            let headers = response.headers_mut();
            match kept.cookie {
                CookieOut::Keep => {}
                CookieOut::Set(value) => {
                    headers.append(SET_COOKIE, value);
                }
                CookieOut::Remove => {
                    headers.append(SET_COOKIE, settings.set_cookie.removal());
                }
            }
            mark_private(headers);
            response
        }
        Err(error) => {
            observe::finished(core.span(), Outcome::Failed);
            observe::save_failed(error.kind());
            if error.kind() == StoreErrorKind::TooLarge {
                tracing::error!(
                    target: "session_layer",
                    error = %error,
                    "a session size limit was passed; nothing was saved and the response is replaced by an error"
                );
            } else {
                tracing::error!(
                    target: "session_layer",
                    error = %error,
                    "saving the session failed; the response is replaced by an error"
                );
            }
            // The client must not believe a change was kept.
            let mut failed = Response::new(B::default());
            *failed.status_mut() = settings.save_error_status;
            mark_private(failed.headers_mut());
            failed
        }
    }
}

fn outcome(how: How) -> Outcome {
    match how {
        How::Unchanged => Outcome::Loaded,
        How::Created => Outcome::Created,
        How::Written => Outcome::Written,
        How::Rotated => Outcome::Rotated,
        How::Destroyed => Outcome::Destroyed,
    }
}

/// Keeps shared caches from storing a response that depends on the session.
fn mark_private(headers: &mut HeaderMap) {
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
