//! The counter app with its sessions observed: `GET /metrics` answers the layer's counters
//! and store latencies in Prometheus' text format, and `RUST_LOG=session_layer=debug` prints
//! each request's session span (never an ID or a value).
//!
//! ```sh
//! cargo run --example metrics --features metrics
//! curl -s http://127.0.0.1:3000/ -c jar -b jar; curl -s http://127.0.0.1:3000/metrics
//! ```

use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusBuilder;
use session_layer::{MemoryStore, Session, SessionError, SessionLayer};
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::EnvFilter;

async fn counter(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0);
    session.insert("visits", visits + 1).await?;
    Ok(format!("{visits} visits before this one\n"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `RUST_LOG=session_layer=debug` prints each request's span and its store calls' spans
    // as they close, with their fields (never an ID or a value).
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::from_default_env())
        .with_span_events(FmtSpan::CLOSE)
        .init();
    // The exporter keeps what the `metrics` facade records; the route renders it.
    let prometheus = PrometheusBuilder::new().install_recorder()?;
    let layer = SessionLayer::builder(MemoryStore::default())
        .with_plain_http_for_development()
        .build()?;
    let app = Router::new()
        .route("/", get(counter))
        .layer(layer)
        .route("/metrics", get(move || async move { prometheus.render() }));
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("counter with metrics on http://{addr} (GET /metrics)");
    axum::serve(listener, app).await?;
    Ok(())
}
