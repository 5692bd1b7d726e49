//! The JWKS endpoint: the issuer's public keys at `/.well-known/jwks.json`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{header, HeaderValue};

use crate::issuer::TokenIssuer;

/// Where [`jwks_router`] answers.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// A router answering `GET /.well-known/jwks.json` with the issuer's key set (every `next`,
/// `current` and `retired` key) and `Cache-Control: public, max-age=N`, where `N` is the
/// issuer's [`jwks_max_age`](TokenIssuer::jwks_max_age): the same time the rotation waits
/// before a next key signs and before a retired key goes. Merge it into the app's router.
///
/// ```
/// use axum::Router;
/// use session_layer_tokens::{jwks_router, SigningKey, TokenIssuer};
///
/// let issuer = TokenIssuer::builder("https://app.example", SigningKey::generate()?)
///     .with_audience("billing")
///     .with_sid_secret([7u8; 32])
///     .build()?;
/// let app: Router = Router::new().merge(jwks_router(issuer));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn jwks_router<S>(issuer: TokenIssuer) -> Router<S> {
    Router::new()
        .route(JWKS_PATH, get(serve))
        .with_state(issuer)
}

async fn serve(State(issuer): State<TokenIssuer>) -> Response {
    let max_age = issuer.jwks_max_age().as_secs();
    let mut res = Json(issuer.jwks()).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::try_from(format!("public, max-age={max_age}")).expect("ASCII"),
    );
    res
}
