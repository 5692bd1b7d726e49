//! A visit counter whose sessions live in MySQL or MariaDB, so they survive restarts of the app.
//!
//! ```text
//! cargo run --example mysql         # then open http://127.0.0.1:3000
//! MYSQL_URL=mysql://app:secret@db.internal/app ADDR=127.0.0.1:8080 cargo run --example mysql
//! ```
//!
//! `MYSQL_URL` defaults to `mysql://root@127.0.0.1:3306/test`. The table is `sessions` in
//! that database, created on the first run; Ctrl-C stops the server and the cleanup
//! task cleanly.

use std::time::Duration;

use axum::{routing::get, Router};
use session_layer::{Session, SessionError, SessionLayer};
use session_layer_mysql::MySqlStore;

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

    let url =
        std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    let store = MySqlStore::builder()
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
        "mysql counter listening on http://{}",
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
