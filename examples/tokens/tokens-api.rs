//! The API of the tokens example: verifies the app's tokens through its JWKS URL.
//!
//! ```sh
//! cargo run --example tokens-api                # http://127.0.0.1:3001
//! cargo run --example tokens-api -- --jwks-url http://127.0.0.1:4000/.well-known/jwks.json \
//!     --issuer http://127.0.0.1:4000
//! ```

use std::time::Duration;

use session_layer_example_tokens::api::{api, verifier};
use session_layer_example_tokens::{init_logs, setting, DEFAULT_ISSUER};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logs();
    let addr = setting("--addr", "ADDR", "127.0.0.1:3001");
    let issuer = setting("--issuer", "ISSUER", DEFAULT_ISSUER);
    let default_jwks = format!("{issuer}/.well-known/jwks.json");
    let jwks_url = setting("--jwks-url", "JWKS_URL", &default_jwks);
    let verifier = verifier(&issuer, &jwks_url, Duration::from_secs(60)).await?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let url = format!("http://{}", listener.local_addr()?);
    eprintln!("tokens-api on {url}, trusting the keys at {jwks_url}");
    eprintln!("  curl -H \"Authorization: Bearer $TOKEN\" {url}/whoami");
    axum::serve(listener, api(verifier)).await?;
    Ok(())
}
