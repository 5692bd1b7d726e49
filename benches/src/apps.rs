//! The implementations under test, the cases, and the table of rows that pairs them.
//!
//! Every implementation serves the same routes, so a case is a path plus the cookie the
//! request carries; a row that cannot be built yet (code on another branch) has no app and
//! prints "not built yet" instead of a number.

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderValue, Request, Response, Uri};
use tower::ServiceExt;

/// The 50-byte value the memory measurement stores in each session.
pub(crate) const PAYLOAD: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN";

/// What a row runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Impl {
    /// A router with no session layer at all.
    Baseline,
    /// This crate on its `MemoryStore`.
    SessionLayer,
    /// This crate on an `Arc<MemoryStore>`: the same path as the bare store.
    SessionLayerArc,
    /// This crate on a forwarding wrapper around `MemoryStore` (`testing::CountingStore`,
    /// which counts each call and passes it on): the same path as the bare store.
    SessionLayerWrapped,
    /// `tower-sessions` on its `MemoryStore`.
    TowerSessions,
    /// axum-extra's `PrivateCookieJar` (encrypted cookies, no store).
    PrivateJar,
    /// axum-extra's `SignedCookieJar` (signed cookies, no store).
    SignedJar,
    /// This crate's client-side (sealed cookie) mode.
    ClientSide,
    /// The least work a layer with this crate's request flow can do (`floor.rs`): a bound,
    /// not a session implementation. B1, B1c and B2 only.
    Floor,
}

impl Impl {
    pub(crate) const ALL: [Impl; 9] = [
        Impl::Baseline,
        Impl::SessionLayer,
        Impl::SessionLayerArc,
        Impl::SessionLayerWrapped,
        Impl::TowerSessions,
        Impl::PrivateJar,
        Impl::SignedJar,
        Impl::ClientSide,
        Impl::Floor,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Impl::Baseline => "baseline",
            Impl::SessionLayer => "session-layer",
            Impl::SessionLayerArc => "session-layer, Arc<MemoryStore>",
            Impl::SessionLayerWrapped => "session-layer, forwarding wrapper",
            Impl::TowerSessions => "tower-sessions",
            Impl::PrivateJar => "PrivateCookieJar",
            Impl::SignedJar => "SignedCookieJar",
            Impl::ClientSide => "session-layer client-side",
            Impl::Floor => "floor (least work, not a session)",
        }
    }

    /// The name on the command line (`serve <key>`, `--only <key>`).
    pub(crate) fn key(self) -> &'static str {
        match self {
            Impl::Baseline => "baseline",
            Impl::SessionLayer => "sl",
            Impl::SessionLayerArc => "sl-arc",
            Impl::SessionLayerWrapped => "sl-wrapped",
            Impl::TowerSessions => "ts",
            Impl::PrivateJar => "private-jar",
            Impl::SignedJar => "signed-jar",
            Impl::ClientSide => "sl-client",
            Impl::Floor => "floor",
        }
    }

    pub(crate) fn from_key(key: &str) -> Option<Impl> {
        Impl::ALL.into_iter().find(|i| i.key() == key)
    }

    /// Whether the session lives in the cookie itself (no server-side store).
    pub(crate) fn keeps_state_in_cookie(self) -> bool {
        matches!(self, Impl::PrivateJar | Impl::SignedJar | Impl::ClientSide)
    }

    /// A fresh app (with its own empty store), or `None` if the code is not on this branch.
    ///
    /// Routes are built once with `with_state(())`, as `axum::serve` and
    /// `into_make_service` do; a `Router<()>` called directly as a service would otherwise
    /// box each handler into a route, and apply every layer to it, on every request.
    pub(crate) fn app(self) -> Option<Router> {
        let app = match self {
            // `/read` answers what B2's handler answers, for an HTTP baseline that gets the
            // same requests as the session rows, cookie and all.
            Impl::Baseline => Router::new()
                .route("/", get(plain))
                .route("/read", get(seven)),
            Impl::SessionLayer => sl::app(),
            Impl::SessionLayerArc => sl::arc_app(),
            Impl::SessionLayerWrapped => sl::wrapped_app(),
            Impl::TowerSessions => ts::app(),
            Impl::PrivateJar => jar::private_app(),
            Impl::SignedJar => jar::signed_app(),
            Impl::ClientSide => sl::client_side_app(),
            Impl::Floor => crate::floor::app(),
        };
        Some(app.with_state(()))
    }
}

/// The cookie a case's request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// No cookie.
    Nothing,
    /// A valid session (one per concurrent task), reused by every request.
    Session,
    /// A new valid session for every request (the case ends it or rotates it).
    Fresh,
}

/// One request shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Case {
    A,
    B1,
    B1c,
    B2,
    B3,
    B4,
    Login,
    Logout,
}

impl Case {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Case::A => "A",
            Case::B1 => "B1",
            Case::B1c => "B1c",
            Case::B2 => "B2",
            Case::B3 => "B3",
            Case::B4 => "B4",
            Case::Login => "login",
            Case::Logout => "logout",
        }
    }

    pub(crate) fn what(self) -> &'static str {
        match self {
            Case::A => "no session layer",
            Case::B1 => "no cookie, handler ignores the session",
            Case::B1c => "valid cookie, handler ignores the session",
            Case::B2 => "valid cookie, handler reads a counter",
            Case::B3 => "valid cookie, handler increments the counter",
            Case::B4 => "valid cookie, handler writes a key unread",
            Case::Login => "anonymous session rotated and written",
            Case::Logout => "session destroyed",
        }
    }

    pub(crate) fn path(self) -> &'static str {
        match self {
            Case::A | Case::B1 | Case::B1c => "/",
            Case::B2 => "/read",
            Case::B3 => "/incr",
            Case::B4 => "/write",
            Case::Login => "/login",
            Case::Logout => "/logout",
        }
    }

    pub(crate) fn need(self) -> Need {
        match self {
            Case::A | Case::B1 => Need::Nothing,
            Case::B1c | Case::B2 | Case::B3 | Case::B4 => Need::Session,
            Case::Login | Case::Logout => Need::Fresh,
        }
    }
}

/// The rows of the in-process tables, in print order. The baseline row comes first: every
/// other row's ratio is to it, sample by sample.
pub(crate) const ROWS: &[(Case, Impl)] = &[
    (Case::A, Impl::Baseline),
    (Case::B1, Impl::SessionLayer),
    (Case::B1, Impl::TowerSessions),
    (Case::B1, Impl::Floor),
    (Case::B1c, Impl::SessionLayer),
    (Case::B1c, Impl::TowerSessions),
    (Case::B1c, Impl::Floor),
    (Case::B2, Impl::SessionLayer),
    (Case::B2, Impl::SessionLayerArc),
    (Case::B2, Impl::SessionLayerWrapped),
    (Case::B2, Impl::TowerSessions),
    (Case::B2, Impl::Floor),
    (Case::B2, Impl::ClientSide),
    (Case::B2, Impl::PrivateJar),
    (Case::B2, Impl::SignedJar),
    (Case::B3, Impl::SessionLayer),
    (Case::B3, Impl::SessionLayerArc),
    (Case::B3, Impl::SessionLayerWrapped),
    (Case::B3, Impl::TowerSessions),
    (Case::B3, Impl::ClientSide),
    (Case::B3, Impl::PrivateJar),
    (Case::B3, Impl::SignedJar),
    (Case::B4, Impl::SessionLayer),
    (Case::B4, Impl::SessionLayerArc),
    (Case::B4, Impl::SessionLayerWrapped),
    (Case::B4, Impl::TowerSessions),
    (Case::B4, Impl::ClientSide),
    (Case::B4, Impl::PrivateJar),
    (Case::B4, Impl::SignedJar),
    (Case::Login, Impl::SessionLayer),
    (Case::Login, Impl::TowerSessions),
    (Case::Logout, Impl::SessionLayer),
    (Case::Logout, Impl::TowerSessions),
];

/// A GET of `uri`, with `cookie` as its `Cookie` header.
pub(crate) fn request(uri: &Uri, cookie: Option<&HeaderValue>) -> Request<Body> {
    let mut req = Request::new(Body::empty());
    *req.uri_mut() = uri.clone();
    if let Some(cookie) = cookie {
        req.headers_mut().insert(COOKIE, cookie.clone());
    }
    req
}

/// Starts a session on `app` through `path` (`/setup`: counter at 7; `/payload`: the 50-byte
/// value) and returns the `Cookie` header that names it.
pub(crate) async fn new_session(app: &Router, path: &'static str) -> HeaderValue {
    let res = app
        .clone()
        .oneshot(request(&Uri::from_static(path), None))
        .await
        .expect("infallible");
    assert!(res.status().is_success(), "{path} failed: {}", res.status());
    cookie_of(&res).expect("setup sets a cookie")
}

/// The `name=value` part of the response's first `Set-Cookie`, as a request header.
pub(crate) fn cookie_of<B>(res: &Response<B>) -> Option<HeaderValue> {
    let set = res.headers().get(SET_COOKIE)?.to_str().ok()?;
    let pair = set.split(';').next()?.trim();
    HeaderValue::from_str(pair).ok()
}

async fn plain() -> &'static str {
    "ok"
}

async fn seven() -> &'static str {
    "7"
}

/// This crate, configured with its defaults (secure cookie, `__Host-` name).
pub(crate) mod sl {
    use super::*;
    use session_layer::{KeyRing, MemoryStore, Session, SessionError, SessionLayer};

    pub(super) fn app() -> Router {
        // Capacity only bounds the store; raised so the login rows' leftovers never fill it.
        let store = MemoryStore::default().with_capacity(50_000_000);
        routes().layer(SessionLayer::new(store))
    }

    /// The same store shared behind an `Arc`.
    pub(super) fn arc_app() -> Router {
        let store = MemoryStore::default().with_capacity(50_000_000);
        routes().layer(SessionLayer::new(std::sync::Arc::new(store)))
    }

    /// The same store behind a forwarding wrapper, as a user's metrics wrapper would be.
    pub(super) fn wrapped_app() -> Router {
        let store = MemoryStore::default().with_capacity(50_000_000);
        routes().layer(SessionLayer::new(
            session_layer::testing::CountingStore::new(store),
        ))
    }

    /// The same handlers with the session sealed in the cookie (AES-256-GCM, the default).
    pub(super) fn client_side_app() -> Router {
        routes().layer(SessionLayer::client_side(KeyRing::generate()))
    }

    /// The handlers of every case, with no session layer yet (the Redis rows add theirs).
    pub(crate) fn routes() -> Router {
        Router::new()
            .route("/", get(plain))
            .route("/setup", get(setup))
            .route("/payload", get(payload))
            .route("/read", get(read))
            .route("/incr", get(incr))
            .route("/write", get(write))
            .route("/login", get(login))
            .route("/logout", get(logout))
    }

    async fn setup(s: Session) -> Result<&'static str, SessionError> {
        s.insert("n", 7u64).await?;
        Ok("ok")
    }

    async fn payload(s: Session) -> Result<&'static str, SessionError> {
        s.insert("v", PAYLOAD).await?;
        Ok("ok")
    }

    async fn read(s: Session) -> Result<String, SessionError> {
        let n: u64 = s.get("n").await?.unwrap_or(0);
        Ok(n.to_string())
    }

    async fn incr(s: Session) -> Result<String, SessionError> {
        let n: u64 = s.get("n").await?.unwrap_or(0) + 1;
        s.insert("n", n).await?;
        Ok(n.to_string())
    }

    async fn write(s: Session) -> Result<&'static str, SessionError> {
        s.insert("w", 42u64).await?;
        Ok("ok")
    }

    async fn login(s: Session) -> Result<&'static str, SessionError> {
        s.rotate().await;
        s.insert("user", "alice").await?;
        Ok("ok")
    }

    async fn logout(s: Session) -> &'static str {
        s.destroy().await;
        "ok"
    }
}

/// `tower-sessions` with its defaults on its memory store.
mod ts {
    use super::*;
    use axum::http::StatusCode;
    use tower_sessions::{MemoryStore, Session, SessionManagerLayer};

    type Result<T> = std::result::Result<T, StatusCode>;

    fn fail<E>(_: E) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    pub(super) fn app() -> Router {
        Router::new()
            .route("/", get(plain))
            .route("/setup", get(setup))
            .route("/payload", get(payload))
            .route("/read", get(read))
            .route("/incr", get(incr))
            .route("/write", get(write))
            .route("/login", get(login))
            .route("/logout", get(logout))
            .layer(SessionManagerLayer::new(MemoryStore::default()))
    }

    async fn setup(s: Session) -> Result<&'static str> {
        s.insert("n", 7u64).await.map_err(fail)?;
        Ok("ok")
    }

    async fn payload(s: Session) -> Result<&'static str> {
        s.insert("v", PAYLOAD).await.map_err(fail)?;
        Ok("ok")
    }

    async fn read(s: Session) -> Result<String> {
        let n: u64 = s.get("n").await.map_err(fail)?.unwrap_or(0);
        Ok(n.to_string())
    }

    async fn incr(s: Session) -> Result<String> {
        let n: u64 = s.get("n").await.map_err(fail)?.unwrap_or(0) + 1;
        s.insert("n", n).await.map_err(fail)?;
        Ok(n.to_string())
    }

    async fn write(s: Session) -> Result<&'static str> {
        s.insert("w", 42u64).await.map_err(fail)?;
        Ok("ok")
    }

    async fn login(s: Session) -> Result<&'static str> {
        s.cycle_id().await.map_err(fail)?;
        s.insert("user", "alice").await.map_err(fail)?;
        Ok("ok")
    }

    async fn logout(s: Session) -> Result<&'static str> {
        s.flush().await.map_err(fail)?;
        Ok("ok")
    }
}

/// axum-extra's cookie jars, holding the counter in a cookie with the same attributes as a
/// session cookie (HttpOnly, Secure, SameSite=Lax, Path=/).
mod jar {
    use super::*;
    use axum_extra::extract::cookie::{Cookie, Key, PrivateCookieJar, SameSite, SignedCookieJar};

    fn cookie(name: &'static str, value: String) -> Cookie<'static> {
        Cookie::build((name, value))
            .http_only(true)
            .secure(true)
            .same_site(SameSite::Lax)
            .path("/")
            .build()
    }

    fn count(value: Option<Cookie<'static>>) -> u64 {
        value.and_then(|c| c.value().parse().ok()).unwrap_or(0)
    }

    macro_rules! jar_app {
        ($name:ident, $jar:ty) => {
            pub(super) fn $name() -> Router {
                async fn setup(jar: $jar) -> ($jar, &'static str) {
                    (jar.add(cookie("n", "7".into())), "ok")
                }
                async fn payload(jar: $jar) -> ($jar, &'static str) {
                    (jar.add(cookie("v", PAYLOAD.into())), "ok")
                }
                async fn read(jar: $jar) -> String {
                    count(jar.get("n")).to_string()
                }
                async fn incr(jar: $jar) -> ($jar, String) {
                    let n = count(jar.get("n")) + 1;
                    (jar.add(cookie("n", n.to_string())), n.to_string())
                }
                async fn write(jar: $jar) -> ($jar, &'static str) {
                    (jar.add(cookie("w", "42".into())), "ok")
                }
                Router::new()
                    .route("/", get(plain))
                    .route("/setup", get(setup))
                    .route("/payload", get(payload))
                    .route("/read", get(read))
                    .route("/incr", get(incr))
                    .route("/write", get(write))
                    .with_state(Key::generate())
            }
        };
    }

    jar_app!(private_app, PrivateCookieJar);
    jar_app!(signed_app, SignedCookieJar);
}
