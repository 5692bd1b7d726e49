//! The tokens example: two services side by side.
//!
//! - **The app** ([`app`]) signs users in with a session, mints short-lived tokens from the
//!   session (`GET /token`) and publishes its public keys (`GET /.well-known/jwks.json`).
//! - **The API** ([`api`]), a separate service, verifies those tokens offline through the
//!   app's JWKS URL (`GET /whoami` with `Authorization: Bearer <token>`). It shares no store
//!   and no secret with the app.
//!
//! `cargo run --example tokens-app` and `cargo run --example tokens-api` start them on
//! `127.0.0.1:3000` and `127.0.0.1:3001`.
//!
//! Signing out ends the session at once: it mints nothing more. A token it already minted
//! stays valid at the API until its `exp` (5 minutes). The app's introspection endpoint
//! (`POST /oauth/introspect`) answers whether a token's session is still live, for a
//! service that needs that; in production, serve it where only your services reach it.

pub mod api;
pub mod app;
pub mod users;

/// The issuer (`iss`) both services use by default: the app's address.
pub const DEFAULT_ISSUER: &str = "http://127.0.0.1:3000";
/// The audience (`aud`) the app addresses its tokens to, and the API accepts.
pub const AUDIENCE: &str = "tokens-api";

/// `--name value` from the command line, or the environment variable `env`, or `default`.
#[must_use]
pub fn setting(name: &str, env: &str, default: &str) -> String {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == name {
            if let Some(value) = args.next() {
                return value;
            }
        }
    }
    std::env::var(env).unwrap_or_else(|_| default.to_owned())
}

/// Logs to stderr at `info` (or `RUST_LOG`).
pub fn init_logs() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}
