// The three apps of a live migration from axum-login 0.18 + tower-sessions 0.14: `before`
// (as it runs today), `during` (both layers, every signed-in user moved on their next
// request) and `after` (the old layer removed). The same routes answer in each.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use session_layer::{Session, SessionError, SessionLayer};
use session_layer_auth::{login_required, AuthManagerLayer, AuthSession, Error};

use crate::{migrate, ours, theirs};

/// Today's app: axum-login 0.18 on tower-sessions, its backend implementing axum-login's
/// traits.
pub(crate) fn before<S>(
    backend: theirs::Backend,
    old_sessions: tower_sessions::SessionManagerLayer<S>,
) -> Router
where
    S: tower_sessions::SessionStore + Clone,
{
    use axum_login::AuthSession;

    type Auth = AuthSession<theirs::Backend>;

    async fn whoami(auth: Auth) -> String {
        auth.user
            .map_or_else(|| "anonymous".to_owned(), |u| u.username)
    }
    async fn login(mut auth: Auth, Form(creds): Form<theirs::Credentials>) -> Response {
        match auth.authenticate(creds).await {
            Ok(Some(user)) => match auth.login(&user).await {
                Ok(()) => Redirect::to("/").into_response(),
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            },
            Ok(None) => StatusCode::UNAUTHORIZED.into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    }
    async fn add_to_cart(auth: Auth, Path(item): Path<String>) -> StatusCode {
        match auth.session.insert("cart", vec![item]).await {
            Ok(()) => StatusCode::OK,
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    Router::new()
        .route("/account", get(|| async { "your account" }))
        .route_layer(axum_login::login_required!(
            theirs::Backend,
            login_url = "/login"
        ))
        .route("/", get(whoami))
        .route("/login", post(login))
        .route("/cart/{item}", post(add_to_cart))
        .layer(axum_login::AuthManagerLayerBuilder::new(backend, old_sessions).build())
}

/// The app on session-layer: what `during` and `after` serve.
fn routes() -> Router {
    type Auth = AuthSession<ours::Backend>;

    async fn whoami(auth: Auth) -> Result<String, Error<ours::Backend>> {
        Ok(auth
            .user()
            .await?
            .map_or_else(|| "anonymous".to_owned(), |u| u.username))
    }
    async fn login(
        mut auth: Auth,
        Form(creds): Form<ours::Credentials>,
    ) -> Result<Response, Error<ours::Backend>> {
        let Some(user) = auth.authenticate(creds).await? else {
            return Ok(StatusCode::UNAUTHORIZED.into_response());
        };
        auth.login(&user).await?;
        Ok(Redirect::to("/").into_response())
    }
    async fn cart(session: Session) -> Result<String, SessionError> {
        let cart: Option<Vec<String>> = session.get("cart").await?;
        Ok(cart.unwrap_or_default().join(","))
    }

    Router::new()
        .route("/account", get(|| async { "your account" }))
        .route_layer(login_required!(ours::Backend, login_url = "/login"))
        .route("/", get(whoami))
        .route("/login", post(login))
        .route("/cart", get(cart))
}

/// Both layers side by side, under their own cookie names: every request that still
/// carries an old session moves it to a new one.
pub(crate) fn during<S>(
    backend: ours::Backend,
    new_sessions: SessionLayer,
    old_sessions: tower_sessions::SessionManagerLayer<S>,
) -> Router
where
    S: tower_sessions::SessionStore + Clone,
{
    routes()
        .layer(axum::middleware::from_fn(
            migrate::move_old_session::<ours::Backend>,
        ))
        .layer(AuthManagerLayer::new(backend).with_login_url("/login"))
        .layer(new_sessions)
        .layer(old_sessions)
}

/// The old layer and the middleware removed: old cookies are ignored.
pub(crate) fn after(backend: ours::Backend, new_sessions: SessionLayer) -> Router {
    routes()
        .layer(AuthManagerLayer::new(backend).with_login_url("/login"))
        .layer(new_sessions)
}
