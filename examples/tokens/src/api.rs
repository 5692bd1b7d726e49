//! The API: another service, which trusts the app's tokens and nothing else of it.

use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use session_layer_verify::{BuildError, Verified, Verifier, VerifyLayer};

use crate::AUDIENCE;

/// A verifier for the app's tokens: issuer `issuer`, audience [`AUDIENCE`], keys from
/// `jwks_url`. If the app is not up yet, it tries again every second for `wait`.
///
/// # Errors
///
/// [`BuildError`] if the key set still cannot be fetched after `wait`, or the URL is not an
/// http(s) URL.
pub async fn verifier(
    issuer: &str,
    jwks_url: &str,
    wait: Duration,
) -> Result<Verifier, BuildError> {
    let give_up = tokio::time::Instant::now() + wait;
    loop {
        let built = Verifier::builder(issuer)
            .with_audience(AUDIENCE)
            .jwks_url(jwks_url)
            .build()
            .await;
        match built {
            Err(BuildError::Fetch(e)) if tokio::time::Instant::now() < give_up => {
                tracing::info!(error = %e, "the app's key set is not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => return other,
        }
    }
}

/// The API's routes: `GET /whoami` answers who the bearer token belongs to, and refuses
/// anything else with a `401` and `WWW-Authenticate: Bearer error="invalid_token"`.
pub fn api(verifier: Verifier) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .layer(VerifyLayer::new(verifier))
}

async fn whoami(Verified(claims): Verified) -> Json<Value> {
    Json(json!({
        "user": claims.sub,
        "session": claims.sid,
        "expires_at": claims.exp,
    }))
}
