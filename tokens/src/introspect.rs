//! The introspection endpoint: whether a token's session still lives.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use http::{header, HeaderValue};
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use session_layer::SessionStore;

use crate::issuer::TokenIssuer;

/// Where [`introspection_router`] answers.
pub const INTROSPECTION_PATH: &str = "/oauth/introspect";

/// A router answering `POST /oauth/introspect` (form field `token`, as RFC 7662 asks) with
/// `{"active": true, ...}` while the token verifies *and* the session that minted it is
/// still live in `store`, and `{"active": false}` otherwise.
///
/// A revoked session mints no new tokens, but the tokens it already minted stay valid until
/// their `exp`. A service that must see a revocation at once asks here instead of (or after)
/// verifying offline; it costs a call and a store lookup per check.
///
/// The answer only tells a caller about a token it already holds, but mount the router
/// where only your services reach it (an internal listener, or behind your own auth layer).
///
/// ```
/// use axum::Router;
/// use session_layer::MemoryStore;
/// use session_layer_tokens::{introspection_router, SigningKey, TokenIssuer};
///
/// let store = MemoryStore::default();
/// let issuer = TokenIssuer::builder("https://app.example", SigningKey::generate()?)
///     .with_audience("billing")
///     .with_sid_secret([7u8; 32])
///     .build()?;
/// // The same store (clones share it) as the app's `SessionLayer`.
/// let internal: Router = introspection_router(issuer, store.clone());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn introspection_router<S, St>(issuer: TokenIssuer, store: St) -> Router<S>
where
    St: SessionStore,
{
    let state = Introspect {
        issuer,
        store: Arc::new(store),
    };
    Router::new()
        .route(INTROSPECTION_PATH, post(introspect::<St>))
        .with_state(state)
}

struct Introspect<St> {
    issuer: TokenIssuer,
    store: Arc<St>,
}

impl<St> Clone for Introspect<St> {
    fn clone(&self) -> Self {
        Self {
            issuer: self.issuer.clone(),
            store: self.store.clone(),
        }
    }
}

#[derive(Deserialize)]
struct Request {
    token: String,
}

#[derive(Deserialize)]
struct Standard {
    iss: String,
    sub: String,
    sid: String,
    nbf: i64,
    exp: i64,
}

#[derive(Serialize)]
struct Answer {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
}

async fn introspect<St: SessionStore>(
    State(state): State<Introspect<St>>,
    Form(req): Form<Request>,
) -> Response {
    let answer = match active(&state, &req.token).await {
        Ok(Some(claims)) => Answer {
            active: true,
            sub: Some(claims.sub),
            sid: Some(claims.sid),
            exp: Some(claims.exp),
        },
        Ok(None) => Answer {
            active: false,
            sub: None,
            sid: None,
            exp: None,
        },
        Err(status) => return status.into_response(),
    };
    let mut res = Json(answer).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The token's claims if it verifies and its session lives; `Err` if the store failed.
async fn active<St: SessionStore>(
    state: &Introspect<St>,
    token: &str,
) -> Result<Option<Standard>, http::StatusCode> {
    let issuer = &state.issuer;
    let Some(claims) = verify(issuer, token) else {
        return Ok(None);
    };
    let now = issuer.now_for_store();
    let unix = now.unix_timestamp();
    if unix >= claims.exp || unix < claims.nbf {
        return Ok(None);
    }
    let sessions = state
        .store
        .list_by_user(&claims.sub, now)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "introspection: the store could not list sessions");
            http::StatusCode::SERVICE_UNAVAILABLE
        })?;
    let live = sessions
        .iter()
        .any(|info| info.meta.is_live(now) && issuer.sid(&info.handle) == claims.sid);
    Ok(live.then_some(claims))
}

fn verify(issuer: &TokenIssuer, token: &str) -> Option<Standard> {
    if token.len() > 8 * 1024 {
        return None;
    }
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.alg != Algorithm::EdDSA {
        return None;
    }
    let key = issuer.decoding_key(&header.kid?)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    // Times are checked against the issuer's clock, by the caller.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation.set_issuer(&[issuer.issuer()]);
    let data = jsonwebtoken::decode::<Standard>(token, &key, &validation).ok()?;
    (data.claims.iss == issuer.issuer()).then_some(data.claims)
}
