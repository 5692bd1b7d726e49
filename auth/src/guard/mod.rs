//! Route guards: [`RequireAuthLayer`] (login, permissions or a predicate) and the
//! [`RequireUser`] extractor, with [`safe_next`] for the login page.
//!
//! A guard answers a request it refuses with:
//!
//! | the request is | the guard answers |
//! | --- | --- |
//! | anonymous, the guard has a login URL | `303 See Other` to the login URL, with `next` naming the page asked for (only ever a same-site path) |
//! | anonymous, no login URL (an API) | `401 Unauthorized` with `WWW-Authenticate` |
//! | signed in, lacking a permission or failing the predicate | `403 Forbidden` |
//! | the session store or the user backend failed | `500` (or `503`): never let through, never anonymous |

mod layer;
mod next;

use axum::extract::{FromRequestParts, OriginalUri};
use axum::response::{IntoResponse, Redirect, Response};
use http::request::Parts;
use http::{header, HeaderValue, StatusCode, Uri};

pub use self::layer::{RequireAuth, RequireAuthLayer};
pub use self::next::safe_next;
use crate::{AuthSession, AuthnBackend};

/// The `WWW-Authenticate` challenge of a `401`, unless changed: the session cookie scheme,
/// which a client satisfies by signing in through the login page.
pub(crate) const DEFAULT_CHALLENGE: &str = "Cookie";

/// How a guard answers an anonymous request.
#[derive(Debug, Clone)]
pub(crate) enum SignIn {
    /// Redirect to this login URL, naming the page in the field.
    Redirect { login_url: String, field: String },
    /// `401` with this challenge.
    Challenge(HeaderValue),
}

impl SignIn {
    pub(crate) fn respond(&self, original: &Uri) -> Response {
        match self {
            Self::Redirect { login_url, field } => {
                Redirect::to(&next::login_location(login_url, field, original)).into_response()
            }
            Self::Challenge(challenge) => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, challenge.clone())],
                "sign in required",
            )
                .into_response(),
        }
    }
}

pub(crate) fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, "forbidden").into_response()
}

/// The URI the client asked for, before any nesting stripped a prefix.
pub(crate) fn original_uri(parts: &Parts) -> Uri {
    parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.clone(), |o| o.0.clone())
}

/// An extractor for handlers that need a signed-in user: it holds the user, or refuses the
/// request the way the [`AuthManagerLayer`](crate::AuthManagerLayer) is configured (a
/// redirect to its [login URL](crate::AuthManagerLayer::with_login_url), or a `401` with
/// `WWW-Authenticate`), or with a `500` when the store or the backend failed.
///
/// ```
/// use axum::{routing::get, Router};
/// use session_layer::{MemoryStore, SessionLayer};
/// use session_layer_auth::{AuthManagerLayer, RequireUser};
/// # use session_layer_auth::{AuthUser, AuthnBackend, UserId};
/// # #[derive(Debug, Clone)] struct User { name: String }
/// # impl AuthUser for User {
/// #     type Id = String;
/// #     fn id(&self) -> String { self.name.clone() }
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
/// async fn account(RequireUser(user): RequireUser<Backend>) -> String {
///     format!("Signed in as {}", user.name)
/// }
///
/// let app: Router = Router::new()
///     .route("/account", get(account))
///     .layer(AuthManagerLayer::new(Backend).with_login_url("/login"))
///     .layer(SessionLayer::new(MemoryStore::default()));
/// ```
#[derive(Debug, Clone)]
pub struct RequireUser<Backend: AuthnBackend>(pub Backend::User);

impl<S, Backend> FromRequestParts<S> for RequireUser<Backend>
where
    S: Send + Sync,
    Backend: AuthnBackend + 'static,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = AuthSession::<Backend>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        match auth.user().await {
            Ok(Some(user)) => Ok(Self(user)),
            Ok(None) => {
                let config = auth.config();
                let sign_in = match &config.login_url {
                    Some(login_url) => SignIn::Redirect {
                        login_url: login_url.clone(),
                        field: config.redirect_field.clone(),
                    },
                    None => SignIn::Challenge(config.challenge.clone()),
                };
                Err(sign_in.respond(&original_uri(parts)))
            }
            Err(e) => Err(e.into_response()),
        }
    }
}

/// The rejection when a handler takes an [`AuthSession`] but no
/// [`AuthManagerLayer`](crate::AuthManagerLayer) wraps the route. It is a `500`, and the
/// log says how to fix it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct MissingAuthLayer;

impl std::fmt::Display for MissingAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "no auth session in this request: add `.layer(AuthManagerLayer::new(backend))` to \
             the router, before the SessionLayer and after the routes that use it",
        )
    }
}

impl std::error::Error for MissingAuthLayer {}

impl IntoResponse for MissingAuthLayer {
    fn into_response(self) -> Response {
        tracing::error!(target: "session_layer_auth", "{self}");
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S, Backend> FromRequestParts<S> for AuthSession<Backend>
where
    S: Send + Sync,
    Backend: AuthnBackend + 'static,
{
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AuthSession<Backend>>()
            .cloned()
            .ok_or(MissingAuthLayer)
    }
}
