//! Verify the short-lived session tokens a `session-layer-tokens` issuer mints, offline, in
//! any axum or Tower service: no call to the issuing app per request, no dependency on its
//! sessions or stores.
//!
//! A token is a JWT signed with `EdDSA` (Ed25519). The [`Verifier`] checks:
//!
//! - the header's `alg` is `EdDSA`: `none`, `HS256` (even "signed" with the public key) and
//!   every other algorithm are refused;
//! - the signature, against the key its `kid` names in the issuer's published key set (a
//!   JWKS document, fetched from a URL or given statically);
//! - `exp` and `nbf`, with a small leeway (10 seconds by default), against a [`Clock`];
//! - `iss` is the issuer you trust, and `aud` holds one of your audiences.
//!
//! ```
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{routing::get, Router};
//! use session_layer_verify::{Verified, Verifier, VerifyLayer};
//!
//! # let jwks = r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1",
//! #     "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
//! let verifier = Verifier::builder("https://app.example")
//!     .with_audience("billing")
//!     // In a service: .jwks_url("https://app.example/.well-known/jwks.json")
//!     .static_keys(jwks)
//!     .build()
//!     .await?;
//!
//! async fn invoices(Verified(claims): Verified) -> String {
//!     format!("invoices of {}", claims.sub)
//! }
//!
//! let api: Router = Router::new()
//!     .route("/invoices", get(invoices))
//!     .layer(VerifyLayer::new(verifier));
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
//! ```
//!
//! # The key-set cache
//!
//! With [`VerifierBuilder::jwks_url`], the set is fetched when the verifier is built and
//! again once the response's `Cache-Control: max-age` has run out (5 minutes when it names
//! none). A token naming a `kid` the set does not hold triggers a refetch, but at most one
//! per cooldown (10 seconds by default) across all requests: a flood of made-up `kid`s
//! cannot hammer the issuer. If a fetch fails, the last good set is kept for a bounded
//! time ([`VerifierBuilder::with_max_stale`], 1 hour); after that tokens cannot be checked
//! and requests get a `503`.
//!
//! # What a token proves, and for how long
//!
//! A token proves that, when it was minted, its `sub` was signed in to a live session (its
//! `sid`). Revoking that session (sign-out, "sign out everywhere", a password change) stops
//! it minting new tokens, but **a token already minted stays valid until its `exp`**: at
//! most the issuer's configured lifetime (5 minutes by default). A service that must honour
//! a revocation at once asks the issuer's introspection endpoint whether the token's `sid`
//! still lives, at the cost of a call per check.
//!
//! # Errors
//!
//! A refused token is a [`VerifyError`]: a `401` with
//! `WWW-Authenticate: Bearer error="invalid_token"` (just `Bearer` when no token was sent).
//! Malformed headers and garbage tokens are `401`s, never panics. Neither tokens nor keys
//! appear in errors, logs or `Debug` output.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `axum` | on | the [`Verified`] extractor and `IntoResponse` for [`VerifyError`] |

#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's example compiles.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod claims;
mod clock;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod keys;
mod layer;
mod verifier;

pub use claims::Claims;
pub use clock::{Clock, SystemClock};
pub use error::{BuildError, FetchError, VerifyError};
#[cfg(feature = "axum")]
pub use extract::Verified;
pub use layer::{bearer_token, ResponseFuture, VerifyLayer, VerifyService};
pub use verifier::{Verifier, VerifierBuilder};
