//! A visit counter whose sessions live in Redis.
//!
//! ```text
//! cargo run --example redis                                   # Redis at 127.0.0.1:6379
//! REDIS_URL=redis://10.0.0.5:6379 cargo run --example redis   # another server
//! ```
//!
//! Then open <http://127.0.0.1:3000> and reload: the count survives restarts of this app,
//! and several copies of it (set `ADDR=127.0.0.1:3001` for a second one) share sessions.
//! Look at what Redis holds with `redis-cli --scan --pattern 'example:session:*'`: hashes
//! of session IDs, never the cookie values themselves.
//!
//! It serves plain http for local use, so the layer is built with the development switch;
//! drop `with_plain_http_for_development` behind TLS.

use axum::routing::get;
use axum::Router;
use session_layer::{Session, SessionError, SessionLayer};
use session_layer_redis::RedisStore;

async fn counter(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0);
    session.insert("visits", visits + 1).await?;
    Ok(format!("{} visits, counted in Redis\n", visits + 1))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let store = RedisStore::builder(url)
        .with_key_prefix("example:session:")
        .connect()
        .await?;
    let layer = SessionLayer::builder(store)
        .with_plain_http_for_development()
        .build()?;
    let app = Router::new().route("/", get(counter)).layer(layer);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    // The Redis URL is not printed: it may carry a password.
    println!("counting visits on http://{addr}, sessions in Redis");
    axum::serve(listener, app).await?;
    Ok(())
}
