//! What the auth tests share: the SQLite + Argon2 backend of the `sqlite_users` example, an
//! app that uses every part of the crate, served on loopback, and a browser-like client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use reqwest::cookie::{CookieStore, Jar};
use serde::Deserialize;
use session_layer::{MemoryStore, Session, SessionError, SessionLayer, DEV_COOKIE_NAME};
use session_layer_auth::{
    login_required, permission_required, predicate_required, safe_next, AuthManagerLayer,
    AuthSession, AuthnBackend, Error, RequireUser,
};

pub(crate) mod users {
    use session_layer_auth::{AuthUser, AuthnBackend, AuthzBackend, UserId};
    include!("../../examples/sqlite_users/users.rs");
}

pub(crate) use users::{Backend, Credentials};

pub(crate) const ALICE_PASSWORD: &str = "alice-password";
pub(crate) const BOB_PASSWORD: &str = "bob-password";

/// Skips a test outside CI (after saying why) and fails it in CI, where every server the
/// tests need must be there.
pub(crate) fn skip<T>(reason: &str) -> Option<T> {
    if session_layer::testing::in_ci() {
        panic!("CI=true but {reason}");
    }
    eprintln!("skipped: {reason}");
    None
}

/// A key prefix no other test (or engineer) on the shared Redis uses.
pub(crate) fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "session-layer-auth-test:{}:{}:{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// The session layer the tests use on `store`: plain http, as loopback tests have no TLS.
pub(crate) fn layer(store: impl session_layer::SessionStore) -> SessionLayer {
    SessionLayer::builder(store)
        .with_plain_http_for_development()
        .build()
        .expect("a valid configuration")
}

/// A layer over a fresh `MemoryStore`.
pub(crate) async fn memory() -> Option<SessionLayer> {
    Some(layer(MemoryStore::default()))
}

/// A layer over the shared Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`), under a
/// prefix of its own.
pub(crate) async fn redis() -> Option<SessionLayer> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    match session_layer_redis::RedisStore::builder(url.as_str())
        .with_key_prefix(unique_prefix())
        .connect()
        .await
    {
        Ok(store) => Some(layer(store)),
        Err(e) => skip(&format!("no Redis at REDIS_URL or 127.0.0.1:6379 ({e})")),
    }
}

/// Runs `case` once per session store: `<case>_on_memory` and `<case>_on_redis`.
#[macro_export]
macro_rules! on_every_store {
    ($($case:ident),* $(,)?) => {
        mod on_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(layer) = $crate::common::memory().await {
                        super::$case(layer).await;
                    }
                }
            )*
        }
        mod on_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(layer) = $crate::common::redis().await {
                        super::$case(layer).await;
                    }
                }
            )*
        }
    };
}

/// The served app, its backend and its two users: alice (an admin, through the `admins`
/// group) and bob.
pub(crate) struct App {
    pub(crate) addr: SocketAddr,
    pub(crate) backend: Backend,
    pub(crate) alice: i64,
    pub(crate) bob: i64,
}

impl App {
    /// A new client with a cookie jar of its own: another browser.
    pub(crate) fn browser(&self) -> Browser {
        Browser::new(self.addr)
    }
}

pub(crate) async fn start(sessions: SessionLayer) -> App {
    let backend = Backend::open("sqlite::memory:")
        .await
        .expect("an in-memory users database");
    let alice = backend
        .add_user("alice", ALICE_PASSWORD, &[])
        .await
        .unwrap();
    let bob = backend
        .add_user("bob", BOB_PASSWORD, &["beta"])
        .await
        .unwrap();
    backend.grant_group("admins", "admin").await.unwrap();
    backend.add_to_group(alice, "admins").await.unwrap();
    let addr = serve(app(backend.clone(), sessions)).await;
    App {
        addr,
        backend,
        alice,
        bob,
    }
}

pub(crate) async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn login(
    mut auth: AuthSession<Backend>,
    Form(creds): Form<Credentials>,
) -> Result<Response, Error<Backend>> {
    let next = creds.next.clone();
    let Some(user) = auth.authenticate(creds).await? else {
        return Ok((StatusCode::UNAUTHORIZED, "wrong name or password").into_response());
    };
    auth.login(&user).await?;
    let next = next.as_deref().and_then(safe_next).unwrap_or("/");
    Ok(Redirect::to(next).into_response())
}

async fn logout(mut auth: AuthSession<Backend>) -> Result<String, Error<Backend>> {
    let user = auth.logout().await?;
    Ok(format!(
        "signed out {}",
        user.map_or_else(|| "nobody".to_owned(), |u| u.username)
    ))
}

async fn whoami(auth: AuthSession<Backend>) -> Result<String, Error<Backend>> {
    Ok(auth
        .user()
        .await?
        .map_or_else(|| "anonymous".to_owned(), |u| u.username))
}

async fn traced(auth: AuthSession<Backend>) -> Result<&'static str, Error<Backend>> {
    auth.user().await?;
    tracing::info!("the handler ran");
    Ok("traced")
}

#[derive(Deserialize)]
struct NewPassword {
    password: String,
}

/// The password form: the new hash ends every other session of the user on its next
/// request; signing in again keeps this one.
async fn change_password(
    mut auth: AuthSession<Backend>,
    RequireUser(user): RequireUser<Backend>,
    Form(form): Form<NewPassword>,
) -> Result<Response, Error<Backend>> {
    let backend = auth.backend().clone();
    backend
        .set_password(user.id, &form.password)
        .await
        .map_err(Error::Backend)?;
    let Some(user) = auth
        .backend()
        .get_user(&user.id)
        .await
        .map_err(Error::Backend)?
    else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    auth.login(&user).await?;
    Ok("password changed".into_response())
}

async fn note(session: Session) -> Result<String, SessionError> {
    Ok(session
        .get::<String>("note")
        .await?
        .unwrap_or_else(|| "none".to_owned()))
}

async fn set_note(
    session: Session,
    Path(text): Path<String>,
) -> Result<&'static str, SessionError> {
    session.insert("note", text).await?;
    Ok("noted")
}

async fn remember(session: Session) -> &'static str {
    session.set_persistent(true).await;
    "remembered"
}

async fn remembered(session: Session) -> Result<String, SessionError> {
    Ok(session.metadata().await?.persistent.to_string())
}

async fn owner(session: Session) -> Result<String, SessionError> {
    Ok(session.user().await?.unwrap_or_else(|| "none".to_owned()))
}

async fn devices(auth: AuthSession<Backend>) -> Result<String, Error<Backend>> {
    Ok(auth.user_sessions().await?.len().to_string())
}

async fn revoke_others(auth: AuthSession<Backend>) -> Result<String, Error<Backend>> {
    Ok(auth.revoke_others().await?.to_string())
}

async fn in_beta(auth: AuthSession<Backend>) -> bool {
    use session_layer_auth::AuthzBackend;
    let Ok(Some(user)) = auth.user().await else {
        return false;
    };
    auth.backend()
        .has_perm(&user, "beta".to_owned())
        .await
        .unwrap_or(false)
}

/// The app: every guard, extractor and `AuthSession` call the crate has.
pub(crate) fn app(backend: Backend, sessions: SessionLayer) -> Router {
    // A `route_layer` guards the routes added before it, so each guard gets its own router.
    let guarded =
        |path, body: &'static str| Router::new().route(path, get(move || async move { body }));
    Router::new()
        .merge(
            guarded("/account", "your account")
                .route_layer(login_required!(Backend, login_url = "/login")),
        )
        .merge(guarded("/api/me", "you, over the API").route_layer(login_required!(Backend)))
        .merge(
            guarded("/admin", "admins only").route_layer(permission_required!(
                Backend,
                login_url = "/login",
                "admin"
            )),
        )
        .merge(
            guarded("/api/admin", "admins only, over the API")
                .route_layer(permission_required!(Backend, "admin")),
        )
        .merge(
            guarded("/beta", "the beta")
                .route_layer(predicate_required!(in_beta, StatusCode::NOT_FOUND)),
        )
        .route(
            "/me",
            get(|RequireUser(user): RequireUser<Backend>| async move { user.username }),
        )
        .route("/whoami", get(whoami))
        .route("/traced", get(traced))
        .route("/login", get(|| async { "the login page" }).post(login))
        .route("/logout", post(logout))
        .route("/password", post(change_password))
        .route("/note", get(note))
        .route("/note/{text}", post(set_note))
        .route("/owner", get(owner))
        .route("/remember", post(remember))
        .route("/remembered", get(remembered))
        .route("/devices", get(devices))
        .route("/revoke-others", post(revoke_others))
        .layer(AuthManagerLayer::new(backend).with_login_url("/login"))
        .layer(sessions)
}

/// One answer, as a user would look at it.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) location: Option<String>,
    pub(crate) www_authenticate: Option<String>,
    pub(crate) body: String,
}

/// A browser: a client with its own cookie jar that does not follow redirects.
pub(crate) struct Browser {
    pub(crate) addr: SocketAddr,
    jar: Arc<Jar>,
    client: reqwest::Client,
}

impl Browser {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Self { addr, jar, client }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The value of the session cookie the jar holds, if any.
    pub(crate) fn cookie(&self) -> Option<String> {
        let url = self.url("/").parse().unwrap();
        let header = self.jar.cookies(&url)?;
        let prefix = format!("{DEV_COOKIE_NAME}=");
        header
            .to_str()
            .unwrap()
            .split("; ")
            .find_map(|pair| pair.strip_prefix(&prefix).map(str::to_owned))
    }

    pub(crate) async fn get(&self, path: &str) -> Answer {
        answer(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    pub(crate) async fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        answer(
            self.client
                .post(self.url(path))
                .form(form)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Signs in; panics unless the app redirects, as it does after a sign-in.
    pub(crate) async fn sign_in(&self, username: &str, password: &str) {
        let res = self
            .post("/login", &[("username", username), ("password", password)])
            .await;
        assert_eq!(
            res.status,
            StatusCode::SEE_OTHER,
            "sign-in as {username}: {res:?}"
        );
    }

    pub(crate) async fn whoami(&self) -> String {
        let res = self.get("/whoami").await;
        assert_eq!(res.status, StatusCode::OK, "{res:?}");
        res.body
    }
}

/// One GET with exactly this session cookie (or none), from a client without a jar.
pub(crate) async fn get_with_cookie(addr: SocketAddr, path: &str, cookie: Option<&str>) -> Answer {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = client.get(format!("http://{addr}{path}"));
    if let Some(cookie) = cookie {
        req = req.header("cookie", format!("{DEV_COOKIE_NAME}={cookie}"));
    }
    answer(req.send().await.unwrap()).await
}

async fn answer(res: reqwest::Response) -> Answer {
    let header = |name| {
        res.headers()
            .get(name)
            .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let location = header(reqwest::header::LOCATION);
    let www_authenticate = header(reqwest::header::WWW_AUTHENTICATE);
    let status = res.status();
    Answer {
        status: StatusCode::from_u16(status.as_u16()).unwrap(),
        location,
        www_authenticate,
        body: res.text().await.unwrap(),
    }
}
