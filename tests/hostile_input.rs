//! Hostile input from clients, and the store misbehaving in ways a client cannot cause but
//! an attacker would love: odd bytes and huge `Cookie` headers (in process and over a real
//! socket), IDs that collide in the store, and sessions pushed past their size limits.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, StatusCode};
use common::{body, new_value, ok, set_cookies, Counts, TestApp};
use serde_json::json;
use session_layer::clock::Clock as _;
use session_layer::id::{SessionId, StorageKey};
use session_layer::record::{Change, Record};
use session_layer::store::{Applied, Rotated, SessionInfo, StoreFuture, TouchRule, WriteRules};
use session_layer::{MemoryStore, SessionLayer, SessionStore};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Sends one `Cookie` header of raw bytes to `/get/n` and returns the status and body.
async fn with_cookie_header(app: &TestApp, raw: &[u8]) -> (StatusCode, String, Duration) {
    let started = Instant::now();
    let req = Request::get("/get/n")
        .header(header::COOKIE, HeaderValue::from_bytes(raw).unwrap())
        .body(Body::empty())
        .unwrap();
    let res = app.request(req).await;
    let status = res.status();
    (status, body(res).await, started.elapsed())
}

#[tokio::test]
async fn odd_bytes_huge_headers_and_ten_thousand_cookies_are_anonymous_and_quick() {
    let app = TestApp::new();
    let id = new_value(&app.send("POST", "/incr", None).await).unwrap();
    let loads = Counts::get(&app.store.counts.load);

    let high: Vec<u8> = (0x80..=0xff).collect();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "every byte 0x80-0xFF as the value",
            [b"__Host-session=".as_slice(), &high].concat(),
        ),
        (
            "every byte 0x80-0xFF as the name",
            [high.as_slice(), b"=x"].concat(),
        ),
        (
            "a 64 KiB value",
            [b"__Host-session=".as_slice(), &[b'A'; 64 * 1024]].concat(),
        ),
        (
            "a 64 KiB header of junk",
            [b"x=".as_slice(), &[b';'; 64 * 1024]].concat(),
        ),
        ("only separators", vec![b';'; 10_000]),
        ("only equals signs", vec![b'='; 10_000]),
        ("an unterminated quote", b"__Host-session=\"AAAA".to_vec()),
    ];
    let mut ten_thousand = Vec::new();
    for i in 0..10_000 {
        ten_thousand.extend_from_slice(format!("c{i}=v; ").as_bytes());
    }
    ten_thousand.extend_from_slice(format!("__Host-session={id}").as_bytes());
    cases.push(("10,000 cookies, the session's last", ten_thousand));
    for byte in 0x80..=0xffu8 {
        cases.push(("one high byte", vec![b'a', b'=', byte]));
    }
    let count = cases.len();
    for (what, raw) in cases {
        let (status, text, took) = with_cookie_header(&app, &raw).await;
        assert_eq!(status, StatusCode::OK, "{what}");
        assert_eq!(text, "", "{what}: not anonymous");
        assert!(took < Duration::from_secs(2), "{what}: took {took:?}");
    }
    // Only the cookie past the 256-pair cap was well-formed, so nothing reached the store.
    assert_eq!(Counts::get(&app.store.counts.load), loads);

    // A big but honest header (one 64 KiB cookie of another app, then the session's) still
    // finds the session.
    let honest = format!("big={}; __Host-session={id}", "v".repeat(64 * 1024));
    let (status, text, _) = with_cookie_header(&app, honest.as_bytes()).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "1"));
    println!(
        "hostile: {} odd or huge Cookie headers, each anonymous",
        count
    );
}

/// Serves the test routes on a free loopback port.
async fn serve(layer: SessionLayer) -> std::net::SocketAddr {
    let app = common::routes(common::Gates::default()).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Writes raw bytes to the server and reads what comes back until it closes or 2 s pass.
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn nul_cr_and_lf_in_a_cookie_never_reach_the_layer_and_the_server_keeps_serving() {
    let addr = serve(
        SessionLayer::builder(MemoryStore::default())
            .with_plain_http_for_development()
            .build()
            .unwrap(),
    )
    .await;
    let cases: [&[u8]; 5] = [
        b"session=a\0b",
        b"session=a\rb",
        b"session=a\r\nX-Injected: 1",
        b"session=\x01\x02\x7f",
        b"session=a\nb",
    ];
    for cookie in cases {
        let mut request =
            b"GET /get/n HTTP/1.1\r\nHost: t\r\nConnection: close\r\nCookie: ".to_vec();
        request.extend_from_slice(cookie);
        request.extend_from_slice(b"\r\n\r\n");
        let answer = raw_exchange(addr, &request).await;
        let status_line = answer.lines().next().unwrap_or("");
        // The HTTP server refuses the request (400) or, for a line break that ends the
        // header early, serves it as a request whose cookie is the part before the break:
        // an anonymous one. Never a 500, never a session.
        assert!(
            status_line.contains(" 400 ") || status_line.contains(" 200 "),
            "{:?}: {status_line:?}",
            String::from_utf8_lossy(cookie)
        );
        // At most the removal of the malformed cookie: never a session.
        let answer = answer.to_ascii_lowercase();
        let issued = answer
            .lines()
            .filter(|l| l.starts_with("set-cookie:"))
            .any(|l| !l.contains("max-age=0"));
        assert!(
            !issued,
            "{:?} got a session",
            String::from_utf8_lossy(cookie)
        );
    }
    let answer = raw_exchange(
        addr,
        b"POST /incr HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the server stopped serving"
    );
    println!(
        "hostile: {} Cookie headers with NUL, CR or LF over a socket",
        cases.len()
    );
}

/// A real `MemoryStore` in which someone else already holds the key of the next `collide`
/// sessions the layer creates or rotates into, as if the random source repeated itself.
#[derive(Debug, Clone)]
struct Taken {
    inner: MemoryStore,
    collide: Arc<AtomicUsize>,
    planted: Arc<std::sync::Mutex<Vec<StorageKey>>>,
}

impl Taken {
    fn new(collide: usize) -> Self {
        Self {
            inner: MemoryStore::default(),
            collide: Arc::new(AtomicUsize::new(collide)),
            planted: Arc::default(),
        }
    }

    /// Puts another session's record under `key`, if collisions are still due.
    async fn plant(&self, key: &StorageKey) {
        let due = self
            .collide
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if due {
            let now = OffsetDateTime::now_utc();
            let mut other = Record::new(
                now,
                now + time::Duration::hours(1),
                now + time::Duration::hours(2),
            );
            other
                .data_mut()
                .insert("owner".into(), json!("someone else"));
            assert!(self.inner.create(key, &other).await.unwrap());
            self.planted.lock().unwrap().push(*key);
        }
    }
}

impl SessionStore for Taken {
    fn create<'a>(&'a self, key: &'a StorageKey, record: &'a Record) -> StoreFuture<'a, bool> {
        StoreFuture::boxed(async move {
            self.plant(key).await;
            self.inner.create(key, record).await
        })
    }
    fn load<'a>(
        &'a self,
        key: &'a StorageKey,
        touch: Option<&'a TouchRule>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<Record>> {
        self.inner.load(key, touch, now)
    }
    fn apply<'a>(
        &'a self,
        key: &'a StorageKey,
        change: &'a Change,
        rules: &'a WriteRules,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Applied> {
        self.inner.apply(key, change, rules, now)
    }
    fn rotate<'a>(
        &'a self,
        old: &'a StorageKey,
        new: &'a StorageKey,
        change: &'a Change,
        rules: &'a WriteRules,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Rotated> {
        StoreFuture::boxed(async move {
            self.plant(new).await;
            self.inner.rotate(old, new, change, rules, now).await
        })
    }
    fn delete<'a>(&'a self, key: &'a StorageKey) -> StoreFuture<'a, ()> {
        self.inner.delete(key)
    }
    fn delete_owned<'a>(
        &'a self,
        key: &'a StorageKey,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        self.inner.delete_owned(key, user, now)
    }
    fn list_by_user<'a>(
        &'a self,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<SessionInfo>> {
        self.inner.list_by_user(user, now)
    }
    fn delete_by_user<'a>(
        &'a self,
        user: &'a str,
        except: Option<&'a StorageKey>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, u64> {
        self.inner.delete_by_user(user, except, now)
    }
    fn delete_expired(&self, now: OffsetDateTime, batch: usize) -> StoreFuture<'_, u64> {
        self.inner.delete_expired(now, batch)
    }
}

fn app_over(store: Taken) -> axum::Router {
    common::routes(common::Gates::default()).layer(SessionLayer::new(store))
}

async fn send(
    app: &axum::Router,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
) -> axum::http::Response<Body> {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(value) = cookie {
        req = req.header(header::COOKIE, format!("__Host-session={value}"));
    }
    tower::ServiceExt::oneshot(app.clone(), req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn owner(store: &Taken, key: &StorageKey) -> Option<serde_json::Value> {
    let record = store
        .inner
        .load(key, None, OffsetDateTime::now_utc())
        .await
        .unwrap()?;
    record.data().get("owner").cloned()
}

#[tokio::test]
async fn a_taken_id_makes_the_layer_draw_another_and_never_overwrites_or_adopts_it() {
    // On create.
    let store = Taken::new(2);
    let app = app_over(store.clone());
    let res = send(&app, "POST", "/set/owner/me", None).await;
    ok(&res);
    let mine = SessionId::parse(new_value(&res).unwrap().as_bytes())
        .unwrap()
        .storage_key();
    let planted = store.planted.lock().unwrap().clone();
    assert_eq!(planted.len(), 2, "the layer did not meet the taken keys");
    for key in &planted {
        assert_ne!(*key, mine, "the layer issued a taken ID");
        assert_eq!(
            owner(&store, key).await,
            Some(json!("someone else")),
            "a record was overwritten"
        );
    }
    assert_eq!(owner(&store, &mine).await, Some(json!("me")));

    // On rotation: the old ID dies, the taken key keeps its owner, the data moves.
    let store = Taken::new(0);
    let app = app_over(store.clone());
    let before = new_value(&send(&app, "POST", "/set/owner/me", None).await).unwrap();
    store.collide.store(1, Ordering::SeqCst);
    let res = send(&app, "POST", "/login/alice", Some(&before)).await;
    ok(&res);
    let after = new_value(&res).unwrap();
    let after_key = SessionId::parse(after.as_bytes()).unwrap().storage_key();
    let taken = store.planted.lock().unwrap()[0];
    assert_ne!(taken, after_key);
    assert_eq!(owner(&store, &taken).await, Some(json!("someone else")));
    assert_eq!(owner(&store, &after_key).await, Some(json!("me")));
    assert_eq!(
        body(send(&app, "GET", "/whoami", Some(&before)).await).await,
        ""
    );
    assert_eq!(
        body(send(&app, "GET", "/whoami", Some(&after)).await).await,
        "alice"
    );
    // A sign-in that also writes, unread (the store checks its limits as it rotates).
    store.collide.store(1, Ordering::SeqCst);
    let res = send(&app, "POST", "/login_and_write/bob", Some(&after)).await;
    ok(&res);
    let third = SessionId::parse(new_value(&res).unwrap().as_bytes())
        .unwrap()
        .storage_key();
    let taken = store.planted.lock().unwrap()[1];
    assert_ne!(taken, third);
    assert_eq!(owner(&store, &taken).await, Some(json!("someone else")));
    assert_eq!(owner(&store, &third).await, Some(json!("me")));

    // A source so broken that every try collides: an error, no cookie, nothing adopted.
    let store = Taken::new(usize::MAX);
    let app = app_over(store.clone());
    let res = send(&app, "POST", "/set/owner/me", None).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(set_cookies(&res).is_empty());
    let planted = store.planted.lock().unwrap().clone();
    for key in &planted {
        assert_eq!(owner(&store, key).await, Some(json!("someone else")));
    }
}

#[tokio::test]
async fn a_million_keys_or_a_huge_value_in_one_request_is_a_size_error_in_bounded_time() {
    let app = TestApp::new();
    let started = Instant::now();
    // The handler's insert of key 1,025 fails; the 1,024 before it are within the limits
    // and are kept, nothing past them.
    let res = app.send("POST", "/many/1000000", None).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(id) = new_value(&res) {
        let key = SessionId::parse(id.as_bytes()).unwrap().storage_key();
        let stored = app
            .store
            .inner
            .load(&key, None, app.clock.now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.data().len(), 1024);
    }
    let stored = app.store.inner.len();
    let res = app
        .send("POST", &format!("/big/{}", 16 * 1024 * 1024), None)
        .await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        set_cookies(&res).is_empty(),
        "an oversized value got a session"
    );
    assert_eq!(
        app.store.inner.len(),
        stored,
        "an oversized session was stored"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}
#[tokio::test]
async fn many_small_writes_cannot_grow_a_session_past_its_limits() {
    // Limits of 50 keys; each request writes one new key without reading first.
    let app = TestApp::with(|b| b.with_limits(64 * 1024, 50));
    let id = new_value(&app.send("POST", "/set/k0/v", None).await).unwrap();
    let mut refused = 0;
    for i in 1..80 {
        let res = app.send("POST", &format!("/set/k{i}/v"), Some(&id)).await;
        if res.status() != StatusCode::OK {
            refused += 1;
        }
    }
    let key = SessionId::parse(id.as_bytes()).unwrap().storage_key();
    let stored = app
        .store
        .inner
        .load(&key, None, app.clock.now())
        .await
        .unwrap()
        .expect("the session lives");
    assert!(
        stored.data().len() <= 50,
        "blind writes grew the session to {} keys, past its limit of 50",
        stored.data().len()
    );
    assert_eq!(refused, 30);

    // The same with bytes: 64 KiB of JSON at most, written 10 KiB at a time.
    let app = TestApp::new();
    let id = new_value(&app.send("POST", "/set/k0/v", None).await).unwrap();
    let chunk = "x".repeat(10 * 1024);
    for i in 1..20 {
        app.send("POST", &format!("/set/k{i}/{chunk}"), Some(&id))
            .await;
    }
    let key = SessionId::parse(id.as_bytes()).unwrap().storage_key();
    let stored = app
        .store
        .inner
        .load(&key, None, app.clock.now())
        .await
        .unwrap()
        .unwrap();
    let bytes = serde_json::to_vec(stored.data()).unwrap().len();
    assert!(
        bytes <= 64 * 1024 + 1024,
        "blind writes grew the session to {bytes} bytes"
    );
}
