//! [`Verified`]: the claims of a request's verified token, as an axum extractor.

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::claims::Claims;
use crate::error::VerifyError;
use crate::layer::{bearer_token, VerifiedClaims};
use crate::verifier::Verifier;

/// The claims of the request's bearer token, verified.
///
/// Behind a [`VerifyLayer`](crate::VerifyLayer) it takes the claims the layer checked.
/// Without one, it checks the token itself with the [`Verifier`] it finds in the request's
/// extensions (add it with `axum::Extension(verifier)`), so only the routes that take it
/// need a token. `T` reads the application claims (a JSON map by default). A refused token
/// is a `401` with `WWW-Authenticate: Bearer error="invalid_token"`.
///
/// ```
/// use axum::{routing::get, Extension, Router};
/// use serde::Deserialize;
/// use session_layer_verify::{Verified, Verifier};
///
/// #[derive(Deserialize)]
/// struct Roles {
///     #[serde(default)]
///     roles: Vec<String>,
/// }
///
/// async fn me(Verified(claims): Verified<Roles>) -> String {
///     format!("{} ({})", claims.sub, claims.extra.roles.join(", "))
/// }
///
/// fn api(verifier: Verifier) -> Router {
///     Router::new().route("/me", get(me)).layer(Extension(verifier))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Verified<T = Map<String, Value>>(pub Claims<T>);

impl<S, T> FromRequestParts<S> for Verified<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = VerifyError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(VerifiedClaims(claims)) = parts.extensions.get::<VerifiedClaims>() {
            return serde_json::from_value(Value::Object((**claims).clone()))
                .map(Verified)
                .map_err(VerifyError::Claims);
        }
        let verifier = parts
            .extensions
            .get::<Verifier>()
            .cloned()
            .ok_or(VerifyError::NotConfigured)?;
        let token = bearer_token(&parts.headers)?;
        verifier.verify_as(token).await.map(Verified)
    }
}

impl IntoResponse for VerifyError {
    fn into_response(self) -> Response {
        self.to_response()
    }
}
