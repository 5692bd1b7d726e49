//! The app: sign-in with a session, tokens minted from it, and the published keys.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use session_layer::{MemoryStore, Session, SessionLayer};
use session_layer_tokens::{
    introspection_router, jwks_router, ConfigError, KeyError, SigningKey, TokenIssuer,
};

use crate::users::Users;
use crate::AUDIENCE;

/// What the app needs to start.
#[derive(Debug)]
pub struct AppSettings {
    /// The `iss` of its tokens: the app's public URL.
    pub issuer: String,
    /// The signing key: loaded from PKCS#8 PEM, or generated for this run.
    pub key: SigningKey,
    /// The secret the tokens' `sid` is keyed with (32 bytes or more).
    pub sid_secret: Vec<u8>,
}

impl AppSettings {
    /// Settings for `issuer` with a new key and sid secret, good for this run only: after a
    /// restart, tokens signed in this run no longer verify.
    ///
    /// # Errors
    ///
    /// [`KeyError::Random`] if the OS has no randomness to give.
    pub fn generated(issuer: impl Into<String>) -> Result<Self, KeyError> {
        let mut sid_secret = vec![0u8; 32];
        getrandom::fill(&mut sid_secret).map_err(|_| KeyError::Random)?;
        Ok(Self {
            issuer: issuer.into(),
            key: SigningKey::generate()?,
            sid_secret,
        })
    }
}

#[derive(Clone)]
struct AppState {
    issuer: TokenIssuer,
    users: Users,
}

/// The app's routes, on the built-in `MemoryStore` over plain http (for local use):
///
/// | route | what it does |
/// | --- | --- |
/// | `POST /login` (form `user`, `password`) | signs in, rotating the session ID |
/// | `POST /logout` | signs out: the session ends and mints nothing more |
/// | `GET /token` | a token for the signed-in user, as JSON `{"token", "expires_at"}` |
/// | `GET /.well-known/jwks.json` | the public keys, for the API |
/// | `POST /oauth/introspect` (form `token`) | whether the token's session is still live |
///
/// # Errors
///
/// [`ConfigError`] if the settings cannot make an issuer (an empty issuer, a short sid
/// secret).
pub fn app(settings: AppSettings, users: Users) -> Result<Router, ConfigError> {
    let issuer = TokenIssuer::builder(settings.issuer, settings.key)
        .with_audience(AUDIENCE)
        .with_lifetime(Duration::from_secs(300))
        .with_sid_secret(&settings.sid_secret)
        .build()?;
    let store = MemoryStore::default();
    let sessions = SessionLayer::builder(store.clone())
        .with_plain_http_for_development()
        .build()
        .expect("the development settings are valid");
    Ok(Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/token", get(token))
        .with_state(AppState {
            issuer: issuer.clone(),
            users,
        })
        .layer(sessions)
        .merge(jwks_router(issuer.clone()))
        .merge(introspection_router(issuer, store)))
}

async fn home() -> &'static str {
    "tokens-app: POST /login (user, password), GET /token, POST /logout, \
     GET /.well-known/jwks.json, POST /oauth/introspect (token)\n"
}

#[derive(Deserialize)]
struct Login {
    user: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<Login>,
) -> Response {
    let users = state.users.clone();
    let (user, password) = (form.user.clone(), form.password);
    let known = tokio::task::spawn_blocking(move || users.check(&user, &password))
        .await
        .unwrap_or(false);
    if !known {
        return (StatusCode::UNAUTHORIZED, "wrong name or password\n").into_response();
    }
    session.rotate().await;
    session.set_user(Some(form.user.clone())).await;
    format!("signed in as {}\n", form.user).into_response()
}

async fn logout(session: Session) -> &'static str {
    session.destroy().await;
    "signed out\n"
}

async fn token(State(state): State<AppState>, session: Session) -> Response {
    match state.issuer.mint(&session).await {
        Ok(token) => Json(serde_json::json!({
            "expires_at": token.expires_at().unix_timestamp(),
            "token": token.as_str(),
        }))
        .into_response(),
        Err(e) if e.is_not_signed_in() => {
            (StatusCode::UNAUTHORIZED, format!("{e}\n")).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "minting a token failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
