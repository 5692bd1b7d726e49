//! Sign-in against users kept in SQLite with Argon2 password hashes, the backend written
//! in axum-login 0.18's shape (`users.rs`).
//!
//! ```text
//! cargo run -p session-layer-auth --example sqlite_users     # then open http://127.0.0.1:3000
//! ```
//!
//! Demo user: `ferris` / `hunter2-but-longer` (an admin). Plain http for local use only:
//! behind TLS, drop `with_plain_http_for_development`.

use axum::extract::Query;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use session_layer::{MemoryStore, SessionLayer};
use session_layer_auth::{
    login_required, permission_required, safe_next, AuthManagerLayer, AuthSession, Error,
    RequireUser,
};

// The tests use the backend calls this demo does not (deleting a user, closing the database).
#[allow(dead_code)]
mod users {
    use session_layer_auth::{AuthUser, AuthnBackend, AuthzBackend, UserId};
    include!("users.rs");
}

use users::{Backend, Credentials};

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

async fn login_page(Query(Next { next }): Query<Next>) -> Html<String> {
    let next = next.as_deref().and_then(safe_next).unwrap_or("/");
    // `safe_next` allows no quote or angle bracket unencoded, so it is safe in the attribute.
    Html(format!(
        "<form method=post action=/login>\
         <input name=username placeholder=username> \
         <input name=password type=password placeholder=password> \
         <input type=hidden name=next value=\"{next}\"> <button>Sign in</button></form>"
    ))
}

async fn login(
    mut auth: AuthSession<Backend>,
    Form(creds): Form<Credentials>,
) -> Result<Response, Error<Backend>> {
    let next = creds.next.clone();
    let Some(user) = auth.authenticate(creds).await? else {
        return Ok(Redirect::to("/login?failed").into_response());
    };
    auth.login(&user).await?;
    let next = next.as_deref().and_then(safe_next).unwrap_or("/");
    Ok(Redirect::to(next).into_response())
}

async fn logout(mut auth: AuthSession<Backend>) -> Result<Redirect, Error<Backend>> {
    auth.logout().await?;
    Ok(Redirect::to("/login"))
}

async fn home(RequireUser(user): RequireUser<Backend>) -> Html<String> {
    Html(format!(
        "<p>Signed in as {}.</p><form method=post action=/logout><button>Sign out</button></form>",
        user.username
    ))
}

async fn devices(auth: AuthSession<Backend>) -> Result<String, Error<Backend>> {
    Ok(format!(
        "{} signed-in sessions",
        auth.user_sessions().await?.len()
    ))
}

fn app(backend: Backend, sessions: SessionLayer) -> Router {
    Router::new()
        .route("/admin", get(|| async { "admins only" }))
        .route_layer(permission_required!(Backend, login_url = "/login", "admin"))
        .route("/devices", get(devices))
        .route_layer(login_required!(Backend, login_url = "/login"))
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .layer(AuthManagerLayer::new(backend).with_login_url("/login"))
        .layer(sessions)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend = Backend::open("sqlite::memory:").await?;
    let ferris = backend
        .add_user("ferris", "hunter2-but-longer", &[])
        .await?;
    backend.grant_group("admins", "admin").await?;
    backend.add_to_group(ferris, "admins").await?;

    let sessions = SessionLayer::builder(MemoryStore::default())
        .with_plain_http_for_development()
        .build()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(backend, sessions)).await?;
    Ok(())
}
