//! A small axum app over any store, served on loopback, and the client side of it.

use std::net::SocketAddr;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use session_layer::{Session, SessionError, SessionLayer, SessionStore};

/// [`routes`] under the session layer over `store` (see [`layer`]).
pub fn router(store: impl SessionStore) -> Router {
    routes().layer(layer(store))
}

/// The app's routes, for a test that puts its own layer around them:
///
/// | route | what it does |
/// | --- | --- |
/// | `GET /get/{key}` | reads a value ("none" if absent) |
/// | `POST /set/{key}/{value}` | writes one without reading |
/// | `POST /read-then-set/{key}/{value}` | reads the session, then writes |
/// | `POST /login/{user}` | rotates the ID and sets the owner |
/// | `POST /rotate` | rotates the ID |
/// | `POST /own/{user}` | sets the owner, keeping the ID |
/// | `GET /user` | the owner ("none" if anonymous) |
/// | `GET /handle` | the session's handle ("none" if it has none) |
/// | `POST /revoke/{handle}` | ends that session of this user: "true" or "false" |
/// | `POST /revoke-others` | ends every other session of this user: how many |
/// | `POST /logout` | destroys the session |
/// | `POST /slow/{key}/{value}` | reads, waits 300 ms, then writes |
/// | `POST /idle-timeout/{seconds}` | gives the session an idle timeout of its own |
/// | `POST /expire-at/{unix_seconds}` | gives the session an end time of its own |
pub fn routes() -> Router {
    Router::new()
        .route("/get/{key}", get(read))
        .route("/set/{key}/{value}", post(write))
        .route("/read-then-set/{key}/{value}", post(read_then_write))
        .route("/login/{user}", post(login))
        .route("/rotate", post(rotate))
        .route("/own/{user}", post(own))
        .route("/user", get(user))
        .route("/handle", get(handle))
        .route("/revoke/{handle}", post(revoke))
        .route("/revoke-others", post(revoke_others))
        .route("/logout", post(logout))
        .route("/slow/{key}/{value}", post(slow_write))
        .route("/idle-timeout/{seconds}", post(idle_timeout))
        .route("/expire-at/{unix_seconds}", post(expire_at))
}

/// The session layer over `store` with the defaults, but for plain HTTP: the tests talk to
/// the app over `http://127.0.0.1`, where a `Secure` cookie would never come back, and
/// [`call`] finds the cookie under the name this gives it, `session`.
pub fn layer(store: impl SessionStore) -> SessionLayer {
    SessionLayer::builder(store)
        .with_plain_http_for_development()
        .build()
        .expect("a valid layer")
}

async fn read(session: Session, Path(key): Path<String>) -> Result<String, SessionError> {
    let value: Option<serde_json::Value> = session.get(&key).await?;
    Ok(value.map_or_else(|| "none".to_owned(), |v| v.to_string()))
}

pub(crate) async fn write(
    session: Session,
    Path((key, value)): Path<(String, String)>,
) -> Result<&'static str, SessionError> {
    session.insert(&key, value).await?;
    Ok("ok")
}

async fn read_then_write(
    session: Session,
    Path((key, value)): Path<(String, String)>,
) -> Result<&'static str, SessionError> {
    let _: Option<serde_json::Value> = session.get(&key).await?;
    session.insert(&key, value).await?;
    Ok("ok")
}

async fn rotate(session: Session) -> &'static str {
    session.rotate().await;
    "ok"
}

async fn own(session: Session, Path(user): Path<String>) -> &'static str {
    session.set_user(Some(user)).await;
    "ok"
}

async fn user(session: Session) -> Result<String, SessionError> {
    Ok(session.user().await?.unwrap_or_else(|| "none".to_owned()))
}

async fn handle(session: Session) -> Result<String, SessionError> {
    // A handle only names a stored session: read it first, so an unknown ID has none.
    Ok(match session.user().await? {
        Some(_) => session
            .handle()
            .map_or_else(|| "none".to_owned(), |h| h.to_string()),
        None => "none".to_owned(),
    })
}

async fn revoke(session: Session, Path(handle): Path<String>) -> Result<String, SessionError> {
    let Ok(handle) = handle.parse() else {
        return Ok("false".to_owned());
    };
    Ok(session.revoke(handle).await?.to_string())
}

async fn revoke_others(session: Session) -> Result<String, SessionError> {
    Ok(session.revoke_others().await?.to_string())
}

async fn login(session: Session, Path(user): Path<String>) -> Result<&'static str, SessionError> {
    session.rotate().await;
    session.set_user(Some(user)).await;
    session.insert("signed_in", true).await?;
    Ok("ok")
}

/// Reads the session, waits, then writes: a request still running when another logs out.
async fn slow_write(
    session: Session,
    Path((key, value)): Path<(String, String)>,
) -> Result<&'static str, SessionError> {
    let _: Option<serde_json::Value> = session.get(&key).await?;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    session.insert(&key, value).await?;
    Ok("ok")
}

async fn idle_timeout(
    session: Session,
    Path(seconds): Path<u64>,
) -> Result<&'static str, SessionError> {
    let idle = std::time::Duration::from_secs(seconds);
    session.set_idle_timeout(Some(idle)).await?;
    Ok("ok")
}

async fn expire_at(
    session: Session,
    Path(unix_seconds): Path<i64>,
) -> Result<&'static str, SessionError> {
    let at = time::OffsetDateTime::from_unix_timestamp(unix_seconds).ok();
    session.set_expires_at(at).await?;
    Ok("ok")
}

async fn logout(session: Session) -> &'static str {
    session.destroy().await;
    "bye"
}

/// Serves `router` on 127.0.0.1 on a free port until the test's runtime ends.
///
/// # Panics
///
/// When no loopback port can be bound.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    addr
}

/// What a test needs from one response.
#[derive(Debug)]
pub struct Reply {
    /// The response's status.
    pub status: StatusCode,
    /// The session cookie's new value, if the response set one (empty for a removal).
    pub cookie: Option<String>,
    /// The session cookie's `Max-Age` in seconds, if the response set one with it.
    pub max_age: Option<i64>,
    /// The response's body, as text.
    pub body: String,
}

/// Sends one request, with the session cookie `cookie` if given.
///
/// # Panics
///
/// When the app does not answer, or sets the session cookie more than once.
pub async fn call(
    client: &reqwest::Client,
    addr: SocketAddr,
    method: reqwest::Method,
    path: &str,
    cookie: Option<&str>,
) -> Reply {
    let mut request = client.request(method, format!("http://{addr}{path}"));
    if let Some(value) = cookie {
        request = request.header(COOKIE, format!("session={value}"));
    }
    let response = request.send().await.expect("the app answers");
    let status = response.status();
    let cookies: Vec<(String, Option<i64>)> = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.strip_prefix("session="))
        .map(|v| {
            let mut parts = v.split(';');
            let value = parts.next().unwrap_or("").to_owned();
            let max_age = parts
                .filter_map(|p| p.trim().strip_prefix("Max-Age="))
                .find_map(|n| n.parse().ok());
            (value, max_age)
        })
        .collect();
    assert!(cookies.len() <= 1, "more than one session Set-Cookie");
    let body = response.text().await.expect("a body");
    let (cookie, max_age) = cookies
        .into_iter()
        .next()
        .map_or((None, None), |(c, m)| (Some(c), m));
    Reply {
        status,
        cookie,
        max_age,
        body,
    }
}
