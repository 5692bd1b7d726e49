//! A visit counter with client-side sessions: no store, the session sealed in its cookie.
//!
//! ```text
//! export SESSION_KEY="$(openssl rand -base64 64 | tr -d '\n')"
//! cargo run --example cookie --features client-side
//! curl -c jar -b jar http://127.0.0.1:3000/   # 0 visits before this one
//! curl -c jar -b jar http://127.0.0.1:3000/   # 1 visits before this one
//! ```
//!
//! Without `SESSION_KEY` the example makes a random key, and sessions end when it stops.
//! It serves plain http for local use: never deploy `with_plain_http_for_development`.

use axum::routing::{get, post};
use axum::Router;
use session_layer::{ClientSide, KeyRing, Session, SessionError, SessionLayer};

async fn counter(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0);
    session.insert("visits", visits + 1).await?;
    Ok(format!("{visits} visits before this one\n"))
}

async fn reset(session: Session) -> &'static str {
    session.destroy().await;
    "forgotten\n"
}

fn keys() -> Result<KeyRing, Box<dyn std::error::Error>> {
    match std::env::var("SESSION_KEY") {
        // Add the previous key after a comma while rotating: the first seals, both open.
        Ok(keys) => Ok(KeyRing::from_base64(keys.split(','))?),
        Err(_) => {
            eprintln!(
                "warning: SESSION_KEY is not set, so a random key is used and sessions will not \
                 survive a restart; set it to the base64 of 64 random bytes \
                 (openssl rand -base64 64)"
            );
            Ok(KeyRing::generate())
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let layer = SessionLayer::client_side_builder(ClientSide::new(keys()?).with_purpose("counter"))
        .with_plain_http_for_development()
        .build()?;
    let app = Router::new()
        .route("/", get(counter))
        .route("/reset", post(reset))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
