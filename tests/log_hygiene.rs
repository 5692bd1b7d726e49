//! Log hygiene: representative flows of every mode (the memory store, client-side cookies in
//! both sealing modes with a key ring, Redis, SQLite, PostgreSQL), failures included, under a subscriber that
//! keeps every event and span at TRACE; afterwards no cookie value, session ID or key the
//! run issued or sent appears in anything logged, in any common encoding.

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use session_layer::id::SessionId;
use session_layer::testing::MockClock;
use session_layer::{ClientSide, KeyRing, SessionLayer, DEFAULT_COOKIE_NAME};
use session_layer_test_support::logs::LogCapture;

/// Sends requests like a browser and tells the capture about every cookie value it sees.
struct Client {
    app: Router,
    logs: &'static LogCapture,
    sent: usize,
}

impl Client {
    fn new(app: Router, logs: &'static LogCapture) -> Self {
        Self { app, logs, sent: 0 }
    }

    /// Sends `path` with `cookie`; returns the status and the cookie the response set.
    async fn send(&mut self, path: &str, cookie: Option<&str>) -> (StatusCode, Option<String>) {
        let read_only = path.starts_with("/get/") || path == "/whoami" || path == "/sessions";
        let mut req = if read_only {
            Request::get(path)
        } else {
            Request::post(path)
        };
        if let Some(value) = cookie {
            self.logs.forbid("cookie value sent", value);
            req = req.header(header::COOKIE, format!("{DEFAULT_COOKIE_NAME}={value}"));
        }
        let res = tower::ServiceExt::oneshot(self.app.clone(), req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        self.sent += 1;
        let set = common::set_cookies(&res)
            .first()
            .map(|c| cookie::Cookie::parse(c.clone()).unwrap().value().to_owned())
            .filter(|v| !v.is_empty());
        if let Some(value) = &set {
            self.logs.forbid("cookie value issued", value);
        }
        (res.status(), set)
    }

    /// Runs the flows every mode shares: a visit, sign-in, writes, "remember me", a listing
    /// and revocation attempt, sign-out, replays of dead and forged cookies.
    async fn common_flows(&mut self) {
        let (_, first) = self.send("/incr", None).await;
        let first = first.expect("a new session");
        self.send("/get/n", Some(&first)).await;
        let (_, signed_in) = self.send("/login_and_write/alice", Some(&first)).await;
        let signed_in = signed_in.expect("a rotated session");
        self.send("/remember/true", Some(&signed_in)).await;
        self.send("/set/theme/dark", Some(&signed_in)).await;
        self.send("/sessions", Some(&signed_in)).await;
        self.send("/revoke_others", Some(&signed_in)).await;
        self.send("/whoami", Some(&first)).await;
        self.send("/logout_then_flash", Some(&signed_in)).await;
        self.send("/whoami", Some(&signed_in)).await;
        let forged = SessionId::generate().expose();
        self.send("/incr", Some(&forged)).await;
        self.send("/get/n", Some("' OR 1=1--")).await;
        let mut flipped = first.into_bytes();
        flipped[10] ^= 0x01;
        self.send("/get/n", Some(&String::from_utf8(flipped).unwrap()))
            .await;
    }
}

fn finish(logs: &LogCapture, what: &str, requests: usize) {
    logs.assert_clean();
    assert!(
        logs.lines() > 0,
        "nothing was logged, so the check proves nothing"
    );
    println!(
        "hostile: log hygiene ({what}): {requests} requests; {} lines logged so far at TRACE \
         checked against {} secret forms",
        logs.lines(),
        logs.secrets()
    );
}

#[tokio::test]
async fn the_memory_store_logs_no_cookie_value_even_when_it_fails() {
    let logs = LogCapture::global();
    let store = common::Instrumented::default();
    let layer = SessionLayer::builder(store.clone()).build().unwrap();
    let mut client = Client::new(common::routes(common::Gates::default()).layer(layer), logs);
    client.common_flows().await;

    // Failures: the store down on load, on save, on sign-out.
    let (_, live) = client.send("/login_and_write/bob", None).await;
    let live = live.unwrap();
    store.set_down(true);
    for path in ["/incr", "/set/a/b", "/login/bob", "/logout", "/sessions"] {
        let (status, set) = client.send(path, Some(&live)).await;
        assert!(status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE);
        assert!(set.is_none());
    }
    client.send("/set/a/b", None).await;
    store.set_down(false);
    assert!(
        logs.contains("session_layer"),
        "the failures were not logged"
    );
    finish(logs, "memory store", client.sent);
}

#[tokio::test]
async fn client_side_sessions_log_no_cookie_value_and_no_key() {
    let logs = LogCapture::global();
    let old: Vec<u8> = (0..64u8)
        .map(|i| i.wrapping_mul(7).wrapping_add(3))
        .collect();
    let new: Vec<u8> = (0..64u8)
        .map(|i| i.wrapping_mul(13).wrapping_add(5))
        .collect();
    for key in [&old, &new] {
        logs.forbid_bytes("client-side key", key);
        logs.forbid("client-side key (base64)", STANDARD.encode(key));
    }
    let clock = MockClock::new();
    let mut requests = 0;
    // Encrypted and signed-only cookies, and encrypted ones with a revocation list (whose
    // sign-outs and cut-offs the flows record and check).
    for (signed, listed) in [(false, false), (true, false), (false, true)] {
        let list = session_layer::MemoryStore::default();
        let config = |keys: KeyRing| {
            let mut c = ClientSide::new(keys).with_purpose("log-test");
            if listed {
                c = c.with_revocation_list(list.clone());
            }
            if signed {
                c.signed_only()
            } else {
                c
            }
        };
        let ring = |keys: &[&Vec<u8>]| {
            KeyRing::from_base64(keys.iter().map(|k| STANDARD.encode(k))).expect("a valid ring")
        };
        let layer = |keys: KeyRing| {
            SessionLayer::client_side_builder(config(keys))
                .with_clock(clock.clone())
                .build()
                .unwrap()
        };
        let routes = || common::routes(common::Gates::default());
        // A cookie under the old key, then the ring rotated: resealed with the new one.
        let mut before = Client::new(routes().layer(layer(ring(&[&old]))), logs);
        let (_, sealed_old) = before.send("/set/cart/apple", None).await;
        let mut client = Client::new(routes().layer(layer(ring(&[&new, &old]))), logs);
        client.send("/get/cart", sealed_old.as_deref()).await;
        client.common_flows().await;
        // A cookie only a removed key opens, and one past its idle deadline.
        let mut removed = Client::new(routes().layer(layer(ring(&[&new]))), logs);
        removed.send("/get/cart", sealed_old.as_deref()).await;
        let (_, fresh) = client.send("/incr", None).await;
        clock.advance(std::time::Duration::from_secs(2 * 3600));
        client.send("/get/n", fresh.as_deref()).await;
        requests += before.sent + client.sent + removed.sent;
    }
    assert!(
        logs.contains("reason=malformed"),
        "rejected cookies were not logged"
    );
    finish(logs, "client-side", requests);
}

#[tokio::test]
async fn redis_sessions_log_no_cookie_value() {
    let logs = LogCapture::global();
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let store = match session_layer_redis::RedisStore::builder(url.as_str())
        .with_key_prefix("session-layer-log-test:")
        .connect()
        .await
    {
        Ok(store) => store,
        Err(e) if !session_layer::testing::in_ci() => {
            eprintln!("skipped: no Redis at REDIS_URL or 127.0.0.1:6379 ({e})");
            return;
        }
        Err(e) => panic!("CI=true but no Redis at REDIS_URL or 127.0.0.1:6379 ({e})"),
    };
    let layer = SessionLayer::new(store);
    let mut client = Client::new(common::routes(common::Gates::default()).layer(layer), logs);
    client.common_flows().await;
    for i in 0..3 {
        client
            .send(&format!("/login_and_write/user{i}"), None)
            .await;
    }
    finish(logs, "Redis", client.sent);
}

#[tokio::test]
async fn sqlite_sessions_log_no_cookie_value() {
    let logs = LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let store = session_layer_sqlite::SqliteStore::builder()
        .open(dir.path().join("sessions.db"))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let layer = SessionLayer::new(store);
    let mut client = Client::new(common::routes(common::Gates::default()).layer(layer), logs);
    client.common_flows().await;
    finish(logs, "SQLite", client.sent);
}

#[tokio::test]
async fn postgres_sessions_log_no_cookie_value() {
    let logs = LogCapture::global();
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    // Named like the store crate's test schemas, so its tests drop it once it is stale.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let schema = format!(
        "sl_test_{secs}_{}",
        &SessionId::generate().storage_key().to_hex()[..12]
    );
    let builder = session_layer_postgres::PostgresStore::builder()
        .with_schema(&schema)
        .unwrap();
    let store = match builder.connect(&url).await {
        Ok(store) => store,
        Err(e) if !session_layer::testing::in_ci() => {
            eprintln!("skipped: no PostgreSQL at DATABASE_URL or 127.0.0.1:5432 ({e})");
            return;
        }
        Err(e) => panic!("CI=true but no PostgreSQL at DATABASE_URL or 127.0.0.1:5432 ({e})"),
    };
    store.migrate().await.unwrap();
    let pool = store.pool().clone();
    let layer = SessionLayer::new(store);
    let mut client = Client::new(common::routes(common::Gates::default()).layer(layer), logs);
    client.common_flows().await;
    let _ = session_layer_postgres::sqlx::raw_sql(session_layer_postgres::sqlx::AssertSqlSafe(
        format!("DROP SCHEMA \"{schema}\" CASCADE"),
    ))
    .execute(&pool)
    .await;
    finish(logs, "PostgreSQL", client.sent);
}
