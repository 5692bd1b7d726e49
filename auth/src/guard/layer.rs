//! [`RequireAuthLayer`] and its service [`RequireAuth`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::OriginalUri;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Request, Uri};
use tower_layer::Layer;
use tower_service::Service;

use super::{forbidden, MissingAuthLayer, SignIn, DEFAULT_CHALLENGE};
use crate::{AuthSession, AuthnBackend, AuthzBackend, Error};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
type Permissions<B> = Arc<
    dyn Fn(AuthSession<B>, <B as AuthnBackend>::User) -> BoxFuture<'static, Result<bool, Error<B>>>
        + Send
        + Sync,
>;
type Predicate<B> = Arc<dyn Fn(AuthSession<B>) -> BoxFuture<'static, bool> + Send + Sync>;
type Rejection = Arc<dyn Fn() -> Response + Send + Sync>;

enum Rule<B: AuthnBackend> {
    Login,
    Permissions(Permissions<B>),
    Predicate(Predicate<B>),
}

impl<B: AuthnBackend> Clone for Rule<B> {
    fn clone(&self) -> Self {
        match self {
            Self::Login => Self::Login,
            Self::Permissions(p) => Self::Permissions(p.clone()),
            Self::Predicate(p) => Self::Predicate(p.clone()),
        }
    }
}

/// A guard for the routes it wraps: they run only for a signed-in user, one with given
/// permissions, or requests a predicate accepts. Add it with `route_layer` (or `layer`);
/// the [`AuthManagerLayer`](crate::AuthManagerLayer) must wrap it. What a refused request
/// gets is in the [module docs](crate::guard); the
/// [`login_required!`](crate::login_required), [`permission_required!`](crate::permission_required)
/// and [`predicate_required!`](crate::predicate_required) macros build the same guards.
///
/// ```
/// use axum::{routing::get, Router};
/// use session_layer::{MemoryStore, SessionLayer};
/// use session_layer_auth::{AuthManagerLayer, RequireAuthLayer};
/// # use std::collections::HashSet;
/// # use session_layer_auth::{AuthUser, AuthnBackend, AuthzBackend, UserId};
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
/// # impl AuthzBackend for Backend { type Permission = &'static str; }
///
/// let admin = Router::new()
///     .route("/admin", get(|| async { "admins only" }))
///     .route_layer(RequireAuthLayer::<Backend>::permissions(["admin"]).with_login_url("/login"));
/// let api = Router::new()
///     .route("/api/me", get(|| async { "signed in" }))
///     .route_layer(RequireAuthLayer::<Backend>::login());
/// let app: Router = Router::new()
///     .merge(admin)
///     .merge(api)
///     .layer(AuthManagerLayer::new(Backend))
///     .layer(SessionLayer::new(MemoryStore::default()));
/// ```
#[must_use]
pub struct RequireAuthLayer<Backend: AuthnBackend> {
    rule: Rule<Backend>,
    login_url: Option<String>,
    redirect_field: String,
    challenge: HeaderValue,
    rejection: Option<Rejection>,
}

impl<B: AuthnBackend> Clone for RequireAuthLayer<B> {
    fn clone(&self) -> Self {
        Self {
            rule: self.rule.clone(),
            login_url: self.login_url.clone(),
            redirect_field: self.redirect_field.clone(),
            challenge: self.challenge.clone(),
            rejection: self.rejection.clone(),
        }
    }
}

impl<B: AuthnBackend> fmt::Debug for RequireAuthLayer<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rule = match self.rule {
            Rule::Login => "login",
            Rule::Permissions(_) => "permissions",
            Rule::Predicate(_) => "predicate",
        };
        f.debug_struct("RequireAuthLayer")
            .field("rule", &rule)
            .field("login_url", &self.login_url)
            .field("redirect_field", &self.redirect_field)
            .finish_non_exhaustive()
    }
}

impl<Backend: AuthnBackend + 'static> RequireAuthLayer<Backend> {
    fn with_rule(rule: Rule<Backend>) -> Self {
        Self {
            rule,
            login_url: None,
            redirect_field: "next".to_owned(),
            challenge: HeaderValue::from_static(DEFAULT_CHALLENGE),
            rejection: None,
        }
    }

    /// Lets signed-in users through.
    pub fn login() -> Self {
        Self::with_rule(Rule::Login)
    }

    /// Lets through signed-in users that have every one of `perms` (their own or through a
    /// group, as [`AuthzBackend::has_perm`] says); other signed-in users get a `403`.
    pub fn permissions<I>(perms: I) -> Self
    where
        Backend: AuthzBackend,
        Backend::Permission: Clone + 'static,
        I: IntoIterator<Item = Backend::Permission>,
    {
        let perms: Arc<[Backend::Permission]> = perms.into_iter().collect();
        Self::with_rule(Rule::Permissions(Arc::new(move |auth, user| {
            let perms = perms.clone();
            Box::pin(async move {
                for perm in perms.iter() {
                    let has = auth
                        .backend()
                        .has_perm(&user, perm.clone())
                        .await
                        .map_err(Error::Backend)?;
                    if !has {
                        return Ok(false);
                    }
                }
                Ok(true)
            })
        })))
    }

    /// Lets through the requests `predicate` accepts. A refused request gets the
    /// [rejection](Self::with_rejection) if one is set; otherwise an anonymous one is asked
    /// to sign in and a signed-in one gets a `403`.
    pub fn predicate<F, Fut>(predicate: F) -> Self
    where
        F: Fn(AuthSession<Backend>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        Self::with_rule(Rule::Predicate(Arc::new(move |auth| {
            Box::pin(predicate(auth))
        })))
    }

    /// Redirect anonymous requests to `login_url`, with the page they asked for in the
    /// [redirect field](Self::with_redirect_field), when it is a same-site path and
    /// `login_url` does not name one itself (`/login?next=/sessions` for a form that posts
    /// to another path keeps its `next`, as axum-login does). Default: none, a `401` with
    /// `WWW-Authenticate` (for APIs).
    pub fn with_login_url(mut self, login_url: impl Into<String>) -> Self {
        self.login_url = Some(login_url.into());
        self
    }

    /// The query parameter of the login URL that names the page to return to. Default:
    /// `next`.
    pub fn with_redirect_field(mut self, field: impl Into<String>) -> Self {
        self.redirect_field = field.into();
        self
    }

    /// The `WWW-Authenticate` challenge of the `401` for anonymous requests when there is
    /// no login URL. Default: `Cookie`.
    pub fn with_challenge(mut self, challenge: HeaderValue) -> Self {
        self.challenge = challenge;
        self
    }

    /// The response for every refused request, anonymous or not, in place of the
    /// redirect, `401` or `403`. A store or backend failure is still a `500`.
    pub fn with_rejection<F, R>(mut self, rejection: F) -> Self
    where
        F: Fn() -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.rejection = Some(Arc::new(move || rejection().into_response()));
        self
    }

    fn sign_in(&self) -> SignIn {
        match &self.login_url {
            Some(login_url) => SignIn::Redirect {
                login_url: login_url.clone(),
                field: self.redirect_field.clone(),
            },
            None => SignIn::Challenge(self.challenge.clone()),
        }
    }

    /// `None` to let the request through, or the response that refuses it.
    async fn check(&self, auth: AuthSession<Backend>, original: &Uri) -> Option<Response> {
        if let Rule::Predicate(predicate) = &self.rule {
            if predicate(auth.clone()).await {
                return None;
            }
        }
        let user = match auth.user().await {
            Ok(user) => user,
            Err(e) => return Some(e.into_response()),
        };
        let refused = |anonymous: bool| {
            Some(match (&self.rejection, anonymous) {
                (Some(rejection), _) => rejection(),
                (None, true) => self.sign_in().respond(original),
                (None, false) => forbidden(),
            })
        };
        let Some(user) = user else {
            return refused(true);
        };
        match &self.rule {
            Rule::Login => None,
            // Only a refused predicate gets here.
            Rule::Predicate(_) => refused(false),
            Rule::Permissions(has_all) => match has_all(auth, user).await {
                Ok(true) => None,
                Ok(false) => refused(false),
                Err(e) => Some(e.into_response()),
            },
        }
    }
}

impl<S, Backend: AuthnBackend> Layer<S> for RequireAuthLayer<Backend> {
    type Service = RequireAuth<S, Backend>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireAuth {
            inner,
            guard: Arc::new(self.clone()),
        }
    }
}

/// The service of [`RequireAuthLayer`].
pub struct RequireAuth<S, Backend: AuthnBackend> {
    inner: S,
    guard: Arc<RequireAuthLayer<Backend>>,
}

impl<S: Clone, B: AuthnBackend> Clone for RequireAuth<S, B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            guard: self.guard.clone(),
        }
    }
}

impl<S: fmt::Debug, B: AuthnBackend> fmt::Debug for RequireAuth<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireAuth")
            .field("inner", &self.inner)
            .field("guard", &self.guard)
            .finish()
    }
}

impl<S, Backend, ReqBody> Service<Request<ReqBody>> for RequireAuth<S, Backend>
where
    S: Service<Request<ReqBody>> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send,
    ReqBody: Send + 'static,
    Backend: AuthnBackend + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // Call the service that was made ready, keep a fresh clone for the next request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        Box::pin(async move {
            let Some(auth) = req.extensions().get::<AuthSession<Backend>>().cloned() else {
                return Ok(MissingAuthLayer.into_response());
            };
            let original = req
                .extensions()
                .get::<OriginalUri>()
                .map_or_else(|| req.uri().clone(), |o| o.0.clone());
            if let Some(refused) = guard.check(auth, &original).await {
                return Ok(refused);
            }
            inner.call(req).await.map(IntoResponse::into_response)
        })
    }
}
