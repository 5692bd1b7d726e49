//! [`AuthManagerLayer`], its service [`AuthManager`] and [`AuthManagerLayerBuilder`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, StatusCode};
use session_layer::{Session, SessionLayer};
use tower_layer::{Layer, Stack};
use tower_service::Service;
use tracing::instrument::Instrumented;
use tracing::Instrument;

use crate::{AuthSession, AuthnBackend};

/// The session key sign-in stores the user under, unless [changed](AuthManagerLayer::with_data_key).
pub const DEFAULT_DATA_KEY: &str = "session_layer_auth.user";

/// What every request of one [`AuthManagerLayer`] shares.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) data_key: &'static str,
    /// Where [`RequireUser`](crate::RequireUser) sends anonymous requests; `None`: a `401`.
    pub(crate) login_url: Option<String>,
    pub(crate) redirect_field: String,
    pub(crate) challenge: HeaderValue,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_key: DEFAULT_DATA_KEY,
            login_url: None,
            redirect_field: "next".to_owned(),
            challenge: HeaderValue::from_static(crate::guard::DEFAULT_CHALLENGE),
        }
    }
}

/// The Tower layer that gives every request an [`AuthSession`]. It sits under a
/// [`SessionLayer`] (add it to the router before the `SessionLayer`, so the session layer
/// wraps it), and loads nothing itself: the user is loaded when a guard, an extractor or a
/// handler first asks, at most once per request.
///
/// Each request runs in a span named `auth` whose `user.id` field is recorded once the user
/// is known. Nothing else is recorded: no session ID, cookie or auth hash.
///
/// ```
/// use axum::{routing::get, Router};
/// use session_layer::{MemoryStore, SessionLayer};
/// use session_layer_auth::AuthManagerLayer;
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
/// #     type Credentials = ();
/// #     type Error = std::convert::Infallible;
/// #     async fn authenticate(&self, _: ()) -> Result<Option<User>, Self::Error> { Ok(None) }
/// #     async fn get_user(&self, _: &UserId<Self>) -> Result<Option<User>, Self::Error> { Ok(None) }
/// # }
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(AuthManagerLayer::new(Backend).with_login_url("/login"))
///     .layer(SessionLayer::new(MemoryStore::default()));
/// ```
#[must_use]
pub struct AuthManagerLayer<Backend: AuthnBackend> {
    backend: Backend,
    config: Arc<Config>,
}

impl<Backend: AuthnBackend> Clone for AuthManagerLayer<Backend> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            config: self.config.clone(),
        }
    }
}

impl<Backend: AuthnBackend> fmt::Debug for AuthManagerLayer<Backend> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthManagerLayer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<Backend: AuthnBackend> AuthManagerLayer<Backend> {
    /// A layer that loads users through `backend`.
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            config: Arc::new(Config::default()),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// The session key the signed-in user is stored under. Default: [`DEFAULT_DATA_KEY`].
    pub fn with_data_key(mut self, data_key: &'static str) -> Self {
        self.config_mut().data_key = data_key;
        self
    }

    /// Where [`RequireUser`](crate::RequireUser) redirects an anonymous request, with the
    /// path it asked for in the [redirect field](Self::with_redirect_field) (only ever a
    /// same-site path). Default: none, a `401` with `WWW-Authenticate` instead.
    pub fn with_login_url(mut self, login_url: impl Into<String>) -> Self {
        self.config_mut().login_url = Some(login_url.into());
        self
    }

    /// The query parameter of the login URL that names the page to return to. Default:
    /// `next`.
    pub fn with_redirect_field(mut self, field: impl Into<String>) -> Self {
        self.config_mut().redirect_field = field.into();
        self
    }

    /// The `WWW-Authenticate` challenge of [`RequireUser`](crate::RequireUser)'s `401`.
    /// Default: `Cookie`, for a session cookie set by the login page.
    pub fn with_challenge(mut self, challenge: HeaderValue) -> Self {
        self.config_mut().challenge = challenge;
        self
    }
}

impl<S, Backend: AuthnBackend> Layer<S> for AuthManagerLayer<Backend> {
    type Service = AuthManager<S, Backend>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthManager {
            inner,
            backend: self.backend.clone(),
            config: self.config.clone(),
        }
    }
}

/// The service of [`AuthManagerLayer`]: puts an [`AuthSession`] in each request.
pub struct AuthManager<S, Backend: AuthnBackend> {
    inner: S,
    backend: Backend,
    config: Arc<Config>,
}

impl<S: Clone, Backend: AuthnBackend> Clone for AuthManager<S, Backend> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            backend: self.backend.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug, Backend: AuthnBackend> fmt::Debug for AuthManager<S, Backend> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthManager")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, Backend, ReqBody, ResBody> Service<Request<ReqBody>> for AuthManager<S, Backend>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    Backend: AuthnBackend + 'static,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let Some(session) = req.extensions().get::<Session>().cloned() else {
            tracing::error!(
                target: "session_layer_auth",
                "no session in this request: add the SessionLayer to the router after the \
                 AuthManagerLayer, so that it wraps it"
            );
            let mut res = Response::new(ResBody::default());
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return ResponseFuture {
                kind: Kind::Missing { res: Some(res) },
            };
        };
        let span = tracing::info_span!(target: "session_layer_auth", "auth", user.id = tracing::field::Empty);
        let auth = AuthSession::new(
            session,
            self.backend.clone(),
            self.config.clone(),
            span.clone(),
        );
        req.extensions_mut().insert(auth);
        ResponseFuture {
            kind: Kind::Inner {
                future: self.inner.call(req).instrument(span),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`AuthManager`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Inner { #[pin] future: Instrumented<F> },
        Missing { res: Option<Response<B>> },
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx),
            KindProj::Missing { res } => {
                Poll::Ready(Ok(res.take().expect("polled after completion")))
            }
        }
    }
}

/// The session layer and the auth layer together, as [`AuthManagerLayerBuilder::build`]
/// returns them: one `.layer(...)` call adds both, in the right order.
pub type AuthManagerStack<Backend> = Stack<AuthManagerLayer<Backend>, SessionLayer>;

/// Builds the session and auth layers in one, the way axum-login's builder of the same
/// name does: `AuthManagerLayerBuilder::new(backend, session_layer).build()`.
///
/// ```
/// use axum::{routing::get, Router};
/// use session_layer::{MemoryStore, SessionLayer};
/// use session_layer_auth::AuthManagerLayerBuilder;
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
/// #     type Credentials = ();
/// #     type Error = std::convert::Infallible;
/// #     async fn authenticate(&self, _: ()) -> Result<Option<User>, Self::Error> { Ok(None) }
/// #     async fn get_user(&self, _: &UserId<Self>) -> Result<Option<User>, Self::Error> { Ok(None) }
/// # }
///
/// let session_layer = SessionLayer::new(MemoryStore::default());
/// let auth_layer = AuthManagerLayerBuilder::new(Backend, session_layer).build();
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(auth_layer);
/// ```
#[derive(Clone)]
#[must_use]
pub struct AuthManagerLayerBuilder<Backend: AuthnBackend> {
    auth: AuthManagerLayer<Backend>,
    session: SessionLayer,
}

impl<Backend: AuthnBackend> fmt::Debug for AuthManagerLayerBuilder<Backend> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthManagerLayerBuilder")
            .field("auth", &self.auth)
            .field("session", &self.session)
            .finish()
    }
}

impl<Backend: AuthnBackend> AuthManagerLayerBuilder<Backend> {
    /// Auth through `backend` under `session_layer`.
    pub fn new(backend: Backend, session_layer: SessionLayer) -> Self {
        Self {
            auth: AuthManagerLayer::new(backend),
            session: session_layer,
        }
    }

    /// As [`AuthManagerLayer::with_data_key`].
    pub fn with_data_key(mut self, data_key: &'static str) -> Self {
        self.auth = self.auth.with_data_key(data_key);
        self
    }

    /// As [`AuthManagerLayer::with_login_url`].
    pub fn with_login_url(mut self, login_url: impl Into<String>) -> Self {
        self.auth = self.auth.with_login_url(login_url);
        self
    }

    /// The two layers, the session layer outside.
    pub fn build(self) -> AuthManagerStack<Backend> {
        Stack::new(self.auth, self.session)
    }
}
