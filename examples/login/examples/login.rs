//! The full app: sign-in with "remember me", pages for signed-in users behind
//! session-layer-auth's guards, "your sessions" with per-session and "all others" sign-out,
//! a password change that ends every other session, sign-out, flash messages, CSRF
//! protection and a rate limit on sign-in, on the built-in `MemoryStore`.
//!
//! ```text
//! cargo run --example login                        # then open http://127.0.0.1:3000
//! cargo run --example login -- --addr 127.0.0.1:8080 --idle-timeout-secs 300
//! cargo run --example login -- --help
//! ```

// The app's service type (auth over sessions over a choice of five stores, with TLS for
// Redis among them) is deep enough to pass the compiler's default query depth.
#![recursion_limit = "256"]

use std::process::ExitCode;
use std::time::Duration;

use session_layer_example_login as app;

use app::config::{Command, Config, USAGE};
use app::users::{Users, DEMO_USERS};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let config = match Config::parse(|name| std::env::var(name).ok(), std::env::args().skip(1)) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("login example: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), String> {
    let store = app::open_store(&config.store).await?;
    // Expired sessions are deleted in the background (a no-op where the backend expires
    // them itself, as Redis does).
    let cleanup =
        session_layer::store::spawn_cleanup(store.clone(), Duration::from_secs(300), 1_000);
    let users = Users::demo();
    let router = app::router(&config, store, users)?;
    let listener = tokio::net::TcpListener::bind(&config.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;

    let scheme = if config.behind_tls { "https" } else { "http" };
    // Only the kind of store: its URL may carry a password.
    let kind = config.store.split("://").next().unwrap_or("memory");
    println!("login example listening on {scheme}://{addr} (store: {kind})");
    for (name, password) in DEMO_USERS {
        // Demo passwords for demo users; a real app never prints a password.
        println!("  demo user: {name} / {password}");
    }
    if !config.behind_tls {
        println!(
            "  plain http for development: cookies are not Secure. Behind TLS, pass --behind-tls."
        );
    }

    let served = app::serve(listener, router, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| e.to_string());
    cleanup.shutdown().await;
    served
}
