//! [`VerifyLayer`]: refuses requests without a valid token, hands the claims on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{header, HeaderMap, Request, Response};
use serde_json::{Map, Value};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::VerifyError;
use crate::verifier::Verifier;

/// The verified claims a [`VerifyLayer`] leaves in the request's extensions, for the
/// [`Verified`](crate::Verified) extractor.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedClaims(pub(crate) Arc<Map<String, Value>>);

/// The token of `Authorization: Bearer <token>`.
///
/// # Errors
///
/// [`VerifyError::Missing`] without an `Authorization` header or with another scheme,
/// [`VerifyError::Malformed`] for several headers, or one that is not text.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, VerifyError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(VerifyError::Missing)?;
    if values.next().is_some() {
        return Err(VerifyError::Malformed);
    }
    let value = value.to_str().map_err(|_| VerifyError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(VerifyError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(VerifyError::Missing);
    }
    let token = token.trim_matches(' ');
    if token.is_empty() {
        return Err(VerifyError::Malformed);
    }
    Ok(token)
}

/// A Tower layer that lets a request through only with a valid bearer token.
///
/// A request without one gets the [`VerifyError`]'s response (`401` with
/// `WWW-Authenticate: Bearer …`) and never reaches the service. A request with one reaches
/// it with the claims in its extensions, where [`Verified`](crate::Verified) finds them, and
/// the [`Verifier`] too.
///
/// ```
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use axum::{routing::get, Router};
/// use session_layer_verify::{Verified, Verifier, VerifyLayer};
///
/// # let jwks = r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1",
/// #     "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
/// let verifier = Verifier::builder("https://app.example")
///     .with_audience("billing")
///     // .jwks_url("https://app.example/.well-known/jwks.json")
///     .static_keys(jwks)
///     .build()
///     .await?;
/// let api: Router = Router::new()
///     .route("/me", get(|Verified(claims): Verified| async move { claims.sub }))
///     .layer(VerifyLayer::new(verifier));
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct VerifyLayer {
    verifier: Verifier,
}

impl VerifyLayer {
    /// Checks every request's bearer token with `verifier`.
    #[must_use]
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }
}

impl<S> Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyService {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// The service [`VerifyLayer`] wraps around another.
#[derive(Debug, Clone)]
pub struct VerifyService<S> {
    inner: S,
    verifier: Verifier,
}

/// The future of a [`VerifyService`] call.
pub type ResponseFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for VerifyService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<&'static str> + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The service that was polled ready serves this request; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        Box::pin(async move {
            let checked = match bearer_token(req.headers()) {
                Ok(token) => verifier.check(token).await,
                Err(e) => Err(e),
            };
            match checked {
                Ok(claims) => {
                    req.extensions_mut()
                        .insert(VerifiedClaims(Arc::new(claims)));
                    req.extensions_mut().insert(verifier);
                    inner.call(req).await
                }
                Err(e) => {
                    tracing::debug!(reason = e.reason(), "request refused: bearer token");
                    Ok(e.to_response())
                }
            }
        })
    }
}
