//! The smallest app: a visit counter on the built-in `MemoryStore`.
//!
//! ```text
//! cargo run --example counter            # then open http://127.0.0.1:3000
//! ADDR=127.0.0.1:8080 cargo run --example counter
//! ```

use axum::{routing::get, Router};
use session_layer::{MemoryStore, Session, SessionError, SessionLayer};

async fn count(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    Ok(format!("You have been here {visits} time(s).\n"))
}

async fn forget(session: Session) -> &'static str {
    session.destroy().await;
    "Forgotten.\n"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Plain http on a developer's machine: the one switch that turns `Secure` off. Drop it
    // behind TLS in production, and the defaults (`__Host-`, Secure, HttpOnly, SameSite=Lax)
    // apply.
    let layer = SessionLayer::builder(MemoryStore::default())
        .with_plain_http_for_development()
        .build()?;
    let app = Router::new()
        .route("/", get(count))
        .route("/forget", get(forget))
        .layer(layer);

    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("counter listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
