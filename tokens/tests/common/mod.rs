//! The two services of the token tests, each served on its own loopback port: the app (a
//! session layer, sign-in, minting, the JWKS and introspection endpoints) and an API that
//! verifies tokens through the app's JWKS URL. A shared test clock drives expiry.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};
use session_layer::testing::MockClock;
use session_layer::{Session, SessionLayer, SessionStore};
use session_layer_tokens::{
    introspection_router, jwks_router, SigningKey, TokenIssuer, TokenIssuerBuilder, TokenRequest,
    INTROSPECTION_PATH, JWKS_PATH,
};
use session_layer_verify::{Verified, Verifier, VerifierBuilder, VerifyLayer};
use time::OffsetDateTime;

/// The `iss` of the app's tokens.
pub const ISSUER: &str = "https://app.test";
/// The API's audience; the app also knows "billing".
pub const AUDIENCE: &str = "api";
/// The API's refetch cooldown.
pub const COOLDOWN: Duration = Duration::from_secs(10);
/// The session cookie's name (plain http on loopback).
pub const COOKIE: &str = "tokens_test";

/// One time for the session layer, the issuer and the verifier (or one each), standing
/// still until a test moves it. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct TestClock(pub MockClock);

impl TestClock {
    pub fn advance(&self, by: Duration) {
        self.0.advance(by);
    }

    pub fn now(&self) -> OffsetDateTime {
        session_layer::clock::Clock::now(&self.0)
    }

    pub fn unix(&self) -> i64 {
        self.now().unix_timestamp()
    }
}

impl session_layer::clock::Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        TestClock::now(self)
    }
}

impl session_layer_verify::Clock for TestClock {
    fn now(&self) -> SystemTime {
        TestClock::now(self).into()
    }
}

/// An issuer for the app: audiences "api" and "billing", the default lifetimes, `clock`.
pub fn issuer_builder(clock: &TestClock) -> TokenIssuerBuilder {
    TokenIssuer::builder(ISSUER, SigningKey::generate().expect("a key"))
        .with_audience(AUDIENCE)
        .with_audience("billing")
        .with_sid_secret(*b"a test secret of thirty-two bytes")
        .with_clock(clock.clone())
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .expect("the server runs");
    });
    format!("http://{addr}")
}

/// The app, running.
pub struct App {
    pub url: String,
    pub issuer: TokenIssuer,
    pub clock: TestClock,
    /// How many JWKS requests the app has answered (or refused while down).
    pub jwks_hits: Arc<AtomicUsize>,
    /// While set, the JWKS endpoint answers `503`.
    pub jwks_down: Arc<AtomicBool>,
    pub client: reqwest::Client,
}

#[derive(Clone)]
struct AppState {
    issuer: TokenIssuer,
}

#[derive(Deserialize)]
struct TokenQuery {
    aud: Option<String>,
    ttl: Option<u64>,
    role: Option<String>,
}

#[derive(Deserialize)]
struct LoginQuery {
    user: String,
}

/// The answer to a mint: the token, or the status and the error's message.
fn minted(
    result: Result<session_layer_tokens::Token, session_layer_tokens::MintError>,
) -> Response {
    match result {
        Ok(token) => token.into_string().into_response(),
        Err(e) if e.is_not_signed_in() => (StatusCode::UNAUTHORIZED, e.to_string()).into_response(),
        Err(e @ session_layer_tokens::MintError::Session(_)) => {
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn login(session: Session, Query(q): Query<LoginQuery>) -> &'static str {
    session.rotate().await;
    session.set_user(Some(q.user)).await;
    "signed in"
}

async fn token(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<TokenQuery>,
) -> Response {
    let mut request = TokenRequest::new();
    if let Some(aud) = q.aud {
        request = request.with_audience(aud);
    }
    if let Some(ttl) = q.ttl {
        request = request.with_lifetime(Duration::from_secs(ttl));
    }
    if let Some(role) = q.role {
        request = request.with_claim("role", role);
    }
    minted(state.issuer.mint_with(&session, request).await)
}

async fn logout(session: Session) -> &'static str {
    session.destroy().await;
    "signed out"
}

/// Signs out, then tries to mint in the same request.
async fn logout_then_mint(State(state): State<AppState>, session: Session) -> Response {
    session.destroy().await;
    minted(state.issuer.mint(&session).await)
}

/// Signs in, then tries to mint in the same request, before the layer saved anything.
async fn login_then_mint(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<LoginQuery>,
) -> Response {
    session.rotate().await;
    session.set_user(Some(q.user)).await;
    minted(state.issuer.mint(&session).await)
}

/// Loads the session, has it revoked in the store (as another request of the user would),
/// then tries to mint from the copy this request loaded.
async fn revoked_then_mint(State(state): State<AppState>, session: Session) -> Response {
    let Some(handle) = session.handle() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match session.revoke(handle).await {
        Ok(true) => {}
        _ => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
    minted(state.issuer.mint(&session).await)
}

async fn revoke_others(session: Session) -> Result<String, StatusCode> {
    session
        .revoke_others()
        .await
        .map(|n| n.to_string())
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
}

impl App {
    /// The app on `store`, sessions idle out after an hour.
    pub async fn start<St: SessionStore + Clone>(
        store: St,
        issuer: TokenIssuer,
        clock: &TestClock,
    ) -> App {
        Self::start_with_idle(store, issuer, clock, Duration::from_secs(3600)).await
    }

    pub async fn start_with_idle<St: SessionStore + Clone>(
        store: St,
        issuer: TokenIssuer,
        clock: &TestClock,
        idle: Duration,
    ) -> App {
        let layer = SessionLayer::builder(store.clone())
            .with_plain_http_for_development()
            .with_cookie_name(COOKIE)
            .with_idle_timeout(idle)
            .with_clock(clock.clone())
            .build()
            .expect("a valid session layer");
        let hits = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let (h, d) = (hits.clone(), down.clone());
        let jwks = jwks_router(issuer.clone()).layer(middleware::from_fn(
            move |req: Request, next: Next| {
                let (h, d) = (h.clone(), d.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    if d.load(Ordering::SeqCst) {
                        return StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                    next.run(req).await
                }
            },
        ));
        let router = Router::new()
            .route("/login", post(login))
            .route("/token", get(token))
            .route("/logout", post(logout))
            .route("/logout-then-mint", post(logout_then_mint))
            .route("/login-then-mint", post(login_then_mint))
            .route("/revoked-then-mint", post(revoked_then_mint))
            .route("/revoke-others", post(revoke_others))
            .with_state(AppState {
                issuer: issuer.clone(),
            })
            .layer(layer)
            .merge(jwks)
            .merge(introspection_router(issuer.clone(), store));
        App {
            url: serve(router).await,
            issuer,
            clock: clock.clone(),
            jwks_hits: hits,
            jwks_down: down,
            client: reqwest::Client::new(),
        }
    }

    pub fn jwks_url(&self) -> String {
        format!("{}{JWKS_PATH}", self.url)
    }

    pub fn hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }

    /// Signs `user` in and returns the `Cookie` header that carries the session.
    pub async fn login(&self, user: &str) -> String {
        let res = self
            .client
            .post(format!("{}/login?user={user}", self.url))
            .send()
            .await
            .expect("the app answers");
        assert_eq!(res.status(), StatusCode::OK);
        cookie_of(&res).expect("sign-in sets the session cookie")
    }

    /// `GET /token` with `cookie` and the query: the token, or the status and message.
    pub async fn mint(
        &self,
        cookie: Option<&str>,
        query: &str,
    ) -> Result<String, (StatusCode, String)> {
        self.send(reqwest::Method::GET, "/token", query, cookie)
            .await
    }

    /// Any of the app's routes, with `cookie`: the body, or the status and body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &str,
        cookie: Option<&str>,
    ) -> Result<String, (StatusCode, String)> {
        let mut req = self
            .client
            .request(method, format!("{}{path}?{query}", self.url));
        if let Some(cookie) = cookie {
            req = req.header(reqwest::header::COOKIE, cookie);
        }
        let res = req.send().await.expect("the app answers");
        let status = res.status();
        let body = res.text().await.expect("a body");
        if status == StatusCode::OK {
            Ok(body)
        } else {
            Err((status, body))
        }
    }

    /// The introspection endpoint's answer for `token`.
    pub async fn introspect(&self, token: &str) -> Value {
        let res = self
            .client
            .post(format!("{}{INTROSPECTION_PATH}", self.url))
            .form(&[("token", token)])
            .send()
            .await
            .expect("the app answers");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers().get(reqwest::header::CACHE_CONTROL).unwrap(),
            "no-store"
        );
        res.json().await.expect("JSON")
    }
}

/// The `name=value` of the session cookie a response sets.
pub fn cookie_of(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with(&format!("{COOKIE}=")))
        .map(str::to_owned)
}

/// The API, running: `/me` behind a `VerifyLayer`, `/ext/me` with the `Verified` extractor
/// and the verifier as an extension; both answer the claims as JSON.
pub struct Api {
    pub url: String,
    pub verifier: Verifier,
    pub client: reqwest::Client,
}

/// What the API answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub www_authenticate: Option<String>,
    pub body: String,
}

impl Answer {
    pub fn claims(&self) -> Map<String, Value> {
        assert_eq!(self.status, StatusCode::OK, "refused: {}", self.body);
        serde_json::from_str(&self.body).expect("claims as JSON")
    }

    /// A `401` with `WWW-Authenticate: Bearer error="invalid_token"`; returns the reason.
    pub fn assert_invalid_token(&self) -> &str {
        assert_eq!(self.status, StatusCode::UNAUTHORIZED, "body: {}", self.body);
        let challenge = self.www_authenticate.as_deref().expect("a challenge");
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "challenge: {challenge}"
        );
        &self.body
    }
}

async fn me(Verified(claims): Verified) -> Json<session_layer_verify::Claims> {
    Json(claims)
}

impl Api {
    /// An API trusting `ISSUER` for `AUDIENCE`, keys from `jwks_url`, on `clock`, with a
    /// 10 s cooldown; `configure` changes the rest.
    pub async fn start(
        jwks_url: &str,
        clock: &TestClock,
        configure: impl FnOnce(VerifierBuilder) -> VerifierBuilder,
    ) -> Api {
        let builder = Verifier::builder(ISSUER)
            .with_audience(AUDIENCE)
            .jwks_url(jwks_url)
            .with_refetch_cooldown(COOLDOWN)
            .with_clock(clock.clone());
        let verifier = configure(builder)
            .build()
            .await
            .expect("the verifier starts");
        let router = Router::new()
            .route("/me", get(me))
            .layer(VerifyLayer::new(verifier.clone()))
            .merge(
                Router::new()
                    .route("/ext/me", get(me))
                    .layer(Extension(verifier.clone())),
            );
        Api {
            url: serve(router).await,
            verifier,
            client: reqwest::Client::new(),
        }
    }

    /// `GET /me` with `Authorization: Bearer <token>`.
    pub async fn call(&self, token: &str) -> Answer {
        self.get("/me", Some(&format!("Bearer {token}"))).await
    }

    pub async fn get(&self, path: &str, authorization: Option<&str>) -> Answer {
        let mut req = self.client.get(format!("{}{path}", self.url));
        if let Some(value) = authorization {
            req = req.header(reqwest::header::AUTHORIZATION, value);
        }
        let res = req.send().await.expect("the API answers");
        Answer {
            status: res.status(),
            www_authenticate: res
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .map(|v| v.to_str().expect("ASCII").to_owned()),
            body: res.text().await.expect("a body"),
        }
    }
}

/// The three segments of a compact JWT, decoded.
pub fn split(token: &str) -> [Vec<u8>; 3] {
    let parts: Vec<Vec<u8>> = token
        .split('.')
        .map(|p| URL_SAFE_NO_PAD.decode(p).expect("base64url"))
        .collect();
    parts.try_into().expect("three segments")
}

/// A compact JWT of three decoded segments.
pub fn join(parts: &[Vec<u8>; 3]) -> String {
    parts
        .iter()
        .map(|p| URL_SAFE_NO_PAD.encode(p))
        .collect::<Vec<_>>()
        .join(".")
}

/// The JSON of a token's header or payload.
pub fn json_of(segment: &[u8]) -> Map<String, Value> {
    serde_json::from_slice(segment).expect("JSON")
}

/// A store on the shared Redis under a key prefix of its own, with the prefix, or `None`
/// (with a printed reason) when Redis is not running outside CI.
///
/// # Panics
///
/// Under `CI=true`, when Redis cannot be reached.
pub async fn redis_store() -> Option<(session_layer_redis::RedisStore, String)> {
    let mut tag = [0u8; 8];
    getrandom::fill(&mut tag).expect("randomness");
    let prefix = format!("tokens-work-test:{}:", URL_SAFE_NO_PAD.encode(tag));
    match session_layer_redis::RedisStore::builder(REDIS_URL)
        .with_key_prefix(prefix.clone())
        .connect()
        .await
    {
        Ok(store) => Some((store, prefix)),
        Err(e) if session_layer::testing::in_ci() => {
            panic!("CI=true needs Redis on {REDIS_URL}: {e}")
        }
        Err(e) => {
            eprintln!("skipped: no Redis on {REDIS_URL} ({e})");
            None
        }
    }
}

const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Deletes every key under `prefix` (this test's own) from the shared Redis.
pub async fn drop_redis_prefix(prefix: &str) {
    let client = redis::Client::open(REDIS_URL).expect("a URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut conn)
                .await
                .expect("DEL");
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

/// Runs each named `async fn(store)` once on a `MemoryStore` and once on Redis.
#[macro_export]
macro_rules! on_memory_and_redis {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(session_layer::MemoryStore::default()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some((store, prefix)) = $crate::common::redis_store().await {
                        super::$name(store).await;
                        $crate::common::drop_redis_prefix(&prefix).await;
                    }
                }
            )*
        }
    };
}
