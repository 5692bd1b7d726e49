//! A visit counter whose sessions live in PostgreSQL, so they survive restarts of the app.
//!
//! ```text
//! cargo run --example postgres      # then open http://127.0.0.1:3000
//! DATABASE_URL=postgres://app@db.internal/app ADDR=127.0.0.1:8080 cargo run --example postgres
//! ```
//!
//! `DATABASE_URL` defaults to `postgres://postgres@127.0.0.1:5432/test`. The table is
//! `public.sessions`, created on the first run; Ctrl-C stops the server and the cleanup
//! task cleanly.

use std::time::Duration;

use axum::{routing::get, Router};
use session_layer::{Session, SessionError, SessionLayer};
use session_layer_postgres::PostgresStore;

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
    tracing_subscriber::fmt().with_env_filter("info").init();

    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let store = PostgresStore::builder()
        .with_query_timeout(Duration::from_secs(2))
        .connect(&url)
        .await?;
    store.migrate().await?;
    let cleanup = store.spawn_cleanup(Duration::from_secs(300));

    // Plain http on a developer's machine; drop this line behind TLS in production.
    let layer = SessionLayer::builder(store)
        .with_plain_http_for_development()
        .build()?;
    let app = Router::new()
        .route("/", get(count))
        .route("/forget", get(forget))
        .layer(layer);

    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "postgres counter listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    cleanup.shutdown().await;
    Ok(())
}
