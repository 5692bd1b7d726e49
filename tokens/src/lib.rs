//! Short-lived tokens minted from a live `session-layer` session, for other services to
//! verify offline against the app's published keys.
//!
//! A signed-in user's session mints a JWT signed with `EdDSA` (Ed25519). Another service
//! (with `session-layer-verify`, or any JWT library that speaks `EdDSA` and JWKS) checks it
//! without calling the app: the keys are published at `/.well-known/jwks.json`.
//!
//! ```
//! use axum::{http::StatusCode, routing::get, Router};
//! use session_layer::{MemoryStore, Session, SessionLayer};
//! use session_layer_tokens::{jwks_router, SigningKey, TokenIssuer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Keep the PEM of the key (`to_pkcs8_pem`) and the sid secret in your secret store.
//! let issuer = TokenIssuer::builder("https://app.example", SigningKey::generate()?)
//!     .with_audience("billing")
//!     .with_sid_secret([7u8; 32])
//!     .build()?;
//!
//! async fn token(
//!     axum::extract::State(issuer): axum::extract::State<TokenIssuer>,
//!     session: Session,
//! ) -> Result<String, StatusCode> {
//!     match issuer.mint(&session).await {
//!         Ok(token) => Ok(token.into_string()),
//!         Err(e) if e.is_not_signed_in() => Err(StatusCode::UNAUTHORIZED),
//!         Err(_) => Err(StatusCode::INTERNAL_SERVER_ERROR),
//!     }
//! }
//!
//! let app: Router = Router::new()
//!     .route("/token", get(token))
//!     .with_state(issuer.clone())
//!     .merge(jwks_router(issuer))
//!     .layer(SessionLayer::new(MemoryStore::default()));
//! # Ok(()) }
//! ```
//!
//! # The token
//!
//! Claims: `iss`, `aud` (one or more of the issuer's audiences), `sub` (the session's user),
//! `sid`, `iat`, `nbf`, `exp`, `jti`, and the application claims of a [`TokenRequest`].
//! `sid` names the session without revealing it: an HMAC-SHA256, under a secret of the
//! issuer, of the session's handle, never its ID or storage key.
//!
//! Only a live, signed-in session that is already saved mints: an anonymous, destroyed,
//! revoked or expired session gets a [`MintError`] saying which, and no token. The issuer
//! asks the session's store whether the session still lives, so minting needs a
//! server-side store (a client-side session cannot be looked up: [`MintError::Session`]).
//!
//! # Revocation: what a token survives
//!
//! Revoking a session (sign-out, [`Session::revoke`](session_layer::Session::revoke),
//! [`Session::revoke_others`](session_layer::Session::revoke_others)) stops it minting,
//! **but a token already minted stays valid until its `exp`**, at most the configured
//! lifetime (5 minutes by default, never past the session's own deadline). Keep the
//! lifetime short. A service that must honour a revocation at once calls the
//! [introspection endpoint](introspection_router), which answers whether the token's
//! session still lives.
//!
//! # Key rotation
//!
//! Each key is `next` (published, not signing), `current` (signing) or `retired`
//! (published, no longer signing):
//!
//! 1. [`TokenIssuer::publish_next`] a new key; verifiers pick it up on their next fetch.
//! 2. After one JWKS cache time ([`TokenIssuerBuilder::with_jwks_max_age`], 5 minutes),
//!    [`TokenIssuer::rotate`]: the next key signs, the old one is retired.
//!    ([`TokenIssuer::rotate_now`] skips the wait when a key is compromised.)
//! 3. [`TokenIssuer::prune`] removes a retired key once every token it signed has expired
//!    and every verifier's cache has moved on: the maximum lifetime, plus the cache time,
//!    plus a minute.
//!
//! Keys are loaded from PKCS#8 PEM or generated; this crate never writes them anywhere.
//! Persist them, with their states, where you keep secrets, and rebuild the issuer with
//! [`TokenIssuerBuilder::with_next_key`] and [`TokenIssuerBuilder::with_retired_key`]
//! after a restart. Private keys and tokens never appear in `Debug`, errors or logs.

#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's example compiles.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod error;
mod introspect;
mod issuer;
mod jwks;
mod keys;
mod token;

pub use error::{ConfigError, KeyError, MintError};
pub use introspect::{introspection_router, INTROSPECTION_PATH};
pub use issuer::{TokenIssuer, TokenIssuerBuilder};
pub use jsonwebtoken::jwk::{Jwk, JwkSet};
pub use jwks::{jwks_router, JWKS_PATH};
pub use keys::{KeyState, KeyStatus, PrivateKeyPem, SigningKey};
pub use token::{Token, TokenRequest};
