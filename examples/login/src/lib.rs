//! The login example: a sign-in flow on session-layer and session-layer-auth. `examples/login.rs`
//! runs it (`cargo run --example login`); the tests build it in-process with [`router`] and
//! serve it with [`serve`].
//!
//! Sign-in, sign-out and the route guards come from session-layer-auth: the users are an
//! [`AuthnBackend`](session_layer_auth::AuthnBackend) ([`users::Users`]), handlers take an
//! `AuthSession`, and the pages for signed-in users sit behind `login_required!`. Around
//! them: CSRF protection (`tower-http`), a rate limit on sign-in and sign-out
//! (`tower_governor`, [`limit`](crate::config::Config::sign_in_per_minute)), a bound on
//! concurrent password hashes ([`users`]) and security headers.

pub mod config;
mod handlers;
mod limit;
mod pages;
pub mod users;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use session_layer::{MemoryStore, SessionLayer, SessionStore};
use session_layer_auth::{login_required, AuthManagerLayer};
use tower_http::csrf::CsrfLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use self::config::Config;
use self::users::Users;

/// Opens the session store `url` names: `memory` (the default: in this process, nothing to
/// install), or `sqlite://PATH`, `postgres://...`, `mysql://...` (MySQL or MariaDB),
/// `redis://...`.
///
/// # Errors
///
/// A message naming the store that could not be opened, or the URL that names none.
pub async fn open_store(url: &str) -> Result<Arc<dyn SessionStore>, String> {
    let scheme = url.split_once("://").map_or(url, |(scheme, _)| scheme);
    match scheme.to_ascii_lowercase().as_str() {
        "memory" => Ok(Arc::new(MemoryStore::default())),
        "sqlite" => open_sqlite(url.split_once("://").map_or("", |(_, p)| p).to_owned()).await,
        "postgres" | "postgresql" => open_postgres(url.to_owned()).await,
        "mysql" | "mariadb" => open_mysql(url.to_owned()).await,
        "redis" | "rediss" => session_layer_redis::RedisStore::connect(url)
            .await
            .map(|store| Arc::new(store) as Arc<dyn SessionStore>)
            .map_err(|e| format!("cannot open the Redis store: {e}")),
        _ => Err(format!(
            "unknown session store {scheme:?}; use memory, sqlite://PATH, postgres://..., \
             mysql://... or redis://..."
        )),
    }
}

/// What [`open_store`] returns, boxed: sqlx's futures are `Send`, but the compiler only sees
/// it at a concrete boxing site, not through the closures of a spawned test.
type Opening = Pin<Box<dyn Future<Output = Result<Arc<dyn SessionStore>, String>> + Send>>;

fn open_sqlite(path: String) -> Opening {
    Box::pin(async move {
        if path.is_empty() {
            return Err("give the SQLite file as sqlite://PATH".to_owned());
        }
        let store = session_layer_sqlite::SqliteStore::open(&path)
            .await
            .map_err(|e| format!("cannot open the SQLite store: {e}"))?;
        store
            .migrate()
            .await
            .map_err(|e| format!("cannot create the SQLite sessions table: {e}"))?;
        Ok(Arc::new(store) as Arc<dyn SessionStore>)
    })
}

fn open_postgres(url: String) -> Opening {
    Box::pin(async move {
        let store = session_layer_postgres::PostgresStore::connect(&url)
            .await
            .map_err(|e| format!("cannot open the PostgreSQL store: {e}"))?;
        store
            .migrate()
            .await
            .map_err(|e| format!("cannot create the PostgreSQL sessions table: {e}"))?;
        Ok(Arc::new(store) as Arc<dyn SessionStore>)
    })
}

fn open_mysql(url: String) -> Opening {
    Box::pin(async move {
        // sqlx reads `mysql://` URLs for MariaDB too.
        let url = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url,
        };
        let store = session_layer_mysql::MySqlStore::connect(&url)
            .await
            .map_err(|e| format!("cannot open the MySQL store: {e}"))?;
        store
            .migrate()
            .await
            .map_err(|e| format!("cannot create the MySQL sessions table: {e}"))?;
        Ok(Arc::new(store) as Arc<dyn SessionStore>)
    })
}

/// The session layer as `config` asks for it.
///
/// # Errors
///
/// The session layer's message if it refuses the settings.
pub fn build_session_layer(
    config: &Config,
    store: Arc<dyn SessionStore>,
) -> Result<SessionLayer, String> {
    let mut builder = SessionLayer::builder(store);
    if !config.behind_tls {
        // Plain http on a developer's machine: the one switch that turns `Secure` off (and
        // with it the `__Host-` name). Behind TLS the audited defaults apply unchanged.
        builder = builder.with_plain_http_for_development();
    }
    if let Some(idle) = config.idle_timeout {
        // The touch step must stay below the idle timeout, or activity would never extend a
        // session before it ends.
        builder = builder
            .with_idle_timeout(idle)
            .with_touch_step((idle / 3).min(Duration::from_secs(60)));
    }
    builder.build().map_err(|e| e.to_string())
}

/// The whole app: pages, sign-in and guards, the session layer, CSRF protection, the
/// sign-in rate limit and security headers. Serve it with [`serve`] (the rate limit needs
/// the client's address).
///
/// # Errors
///
/// A message if the session layer's settings are refused.
pub fn router(
    config: &Config,
    store: Arc<dyn SessionStore>,
    users: Users,
) -> Result<Router, String> {
    // Pages for signed-in users: anyone else is sent to sign in, and back here afterwards.
    let signed_in = Router::new()
        .route("/account", get(handlers::account))
        .route("/sessions", get(handlers::sessions))
        .route(
            "/password",
            get(handlers::password_page).post(handlers::change_password),
        )
        .route_layer(login_required!(Users, login_url = "/login"));
    // Forms that post elsewhere come back to the page that holds them.
    let session_forms = Router::new()
        .route("/sessions/end", post(handlers::end_session))
        .route("/sessions/end-others", post(handlers::end_other_sessions))
        .route_layer(login_required!(Users, login_url = "/login?next=/sessions"));
    let mut sign_in_out = Router::new()
        .route("/login", post(handlers::login))
        .route("/logout", post(handlers::logout));
    if let Some(limit) = limit::sign_in_limit(config.sign_in_per_minute) {
        sign_in_out = sign_in_out.route_layer(limit);
    }
    // Cross-site POSTs are refused by `Sec-Fetch-Site` (and `Origin` for older browsers):
    // the cookie's `SameSite=Lax` already keeps it off them, and this refuses the request
    // itself, whoever sent it, before any handler runs.
    let csrf = CsrfLayer::new().with_rejection_response(handlers::refused);
    Ok(Router::new()
        .merge(signed_in)
        .merge(session_forms)
        .merge(sign_in_out)
        .route("/", get(handlers::home))
        .route("/login", get(handlers::login_page))
        .route("/style.css", get(handlers::style))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(handlers::not_found)
        .layer(AuthManagerLayer::new(users).with_login_url("/login"))
        .layer(build_session_layer(config, store)?)
        .layer(csrf)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'",
            ),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        )))
}

/// Serves `router` on `listener`, with each request's client address (the sign-in rate
/// limit keys on it), until `shutdown` resolves.
///
/// # Errors
///
/// The I/O error that stopped the server.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
