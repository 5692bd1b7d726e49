//! The app of the tokens example: signs users in, mints tokens, serves its JWKS.
//!
//! ```sh
//! cargo run --example tokens-app                # http://127.0.0.1:3000
//! cargo run --example tokens-app -- --addr 127.0.0.1:4000 --issuer http://127.0.0.1:4000
//! ```
//!
//! The signing key is generated for the run unless `TOKENS_KEY_FILE` names a PKCS#8 PEM file
//! (`openssl genpkey -algorithm ed25519 -out tokens-key.pem`); the sid secret likewise comes
//! from `TOKENS_SID_SECRET` (32 characters or more) or is generated.

use session_layer_example_tokens::app::{app, AppSettings};
use session_layer_example_tokens::users::Users;
use session_layer_example_tokens::{init_logs, setting, DEFAULT_ISSUER};
use session_layer_tokens::SigningKey;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logs();
    let addr = setting("--addr", "ADDR", "127.0.0.1:3000");
    let issuer = setting("--issuer", "ISSUER", DEFAULT_ISSUER);
    let mut settings = AppSettings::generated(issuer)?;
    match std::env::var("TOKENS_KEY_FILE") {
        Ok(path) => settings.key = SigningKey::from_pkcs8_pem(&std::fs::read_to_string(path)?)?,
        Err(_) => {
            eprintln!("signing with a key generated for this run (set TOKENS_KEY_FILE to keep one)")
        }
    }
    if let Ok(secret) = std::env::var("TOKENS_SID_SECRET") {
        settings.sid_secret = secret.into_bytes();
    }
    let router = app(settings, Users::demo())?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let url = format!("http://{}", listener.local_addr()?);
    eprintln!("tokens-app on {url}: demo users alice / alice-password, bob / bob-password");
    eprintln!("  curl -c jar -d user=alice -d password=alice-password {url}/login");
    eprintln!("  curl -b jar {url}/token");
    eprintln!("  keys: {url}/.well-known/jwks.json");
    axum::serve(listener, router).await?;
    Ok(())
}
