//! The Redis store behind a real axum app over loopback HTTP, against private
//! `redis-server`s: what a request costs in Redis commands, outages and stalls, two app
//! instances sharing one Redis, many concurrent writers, and what Redis ends up holding.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{app, routes, serve, Client, RedisServer};
use futures_util::StreamExt as _;
use redis::AsyncCommands;
use session_layer::clock::Clock as _;
use session_layer::id::SessionId;
use session_layer::testing::MockClock;
use session_layer::SessionLayer;
use session_layer::SessionStore;
use session_layer_redis::RedisStore;

/// What one step of a test cost in Redis.
#[derive(Debug)]
struct Cost {
    /// Commands the app sent, in order (one round trip each): from `MONITOR`, leaving out
    /// the commands scripts ran inside Redis and the test's own.
    sent: Vec<String>,
    /// Every command Redis executed, including those inside scripts: from
    /// `INFO commandstats`.
    executed: HashMap<String, u64>,
}

/// Watches a private server with `MONITOR` and `INFO commandstats`.
struct Meter {
    inspector: redis::aio::MultiplexedConnection,
    lines: Arc<Mutex<Vec<String>>>,
    marks: usize,
}

impl Meter {
    async fn start(server: &RedisServer) -> Self {
        let client = redis::Client::open(server.url()).unwrap();
        let monitor = client.get_async_monitor().await.expect("MONITOR");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut feed = monitor.into_on_message::<String>();
            while let Some(line) = feed.next().await {
                sink.lock().unwrap().push(line);
            }
        });
        let mut meter = Self {
            inspector: server.inspector().await,
            lines,
            marks: 0,
        };
        meter.measure().await;
        meter
    }

    /// The cost of everything since the last call.
    async fn measure(&mut self) -> Cost {
        self.marks += 1;
        let mark = format!("end-of-step-{}", self.marks);
        let _: String = redis::cmd("ECHO")
            .arg(&mark)
            .query_async(&mut self.inspector)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let lines = loop {
            {
                let mut lines = self.lines.lock().unwrap();
                if let Some(at) = lines.iter().position(|l| l.contains(&mark)) {
                    break lines.drain(..=at).collect::<Vec<_>>();
                }
            }
            assert!(Instant::now() < deadline, "MONITOR fell silent");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let sent = lines
            .iter()
            .filter(|l| !l.contains(" lua]"))
            .filter_map(|l| l.split_once("] \"").map(|(_, rest)| rest))
            .filter_map(|rest| rest.split('"').next())
            .map(str::to_ascii_lowercase)
            .filter(|name| !matches!(name.as_str(), "echo" | "info" | "config"))
            .collect();
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.inspector)
            .await
            .unwrap();
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut self.inspector)
            .await
            .unwrap();
        let executed = info
            .lines()
            .filter_map(|line| line.strip_prefix("cmdstat_"))
            .filter_map(|line| {
                let (name, stats) = line.split_once(':')?;
                let calls = stats
                    .strip_prefix("calls=")?
                    .split(',')
                    .next()?
                    .parse()
                    .ok()?;
                Some((name.to_owned(), calls))
            })
            .filter(|(name, _)| {
                !name.starts_with("info") && !name.starts_with("config") && name != "echo"
            })
            .collect();
        Cost { sent, executed }
    }
}

/// Commands that change data, as `INFO commandstats` names them.
const WRITES: [&str; 7] = [
    "set",
    "setrange",
    "pexpire",
    "del",
    "zadd",
    "zrem",
    "zremrangebyscore",
];

fn assert_no_write(cost: &Cost, what: &str) {
    for name in WRITES {
        assert!(
            !cost.executed.contains_key(name),
            "{what} ran {name}: {:?}",
            cost.executed
        );
    }
}

fn assert_wrote(cost: &Cost, what: &str, names: &[&str]) {
    for name in names {
        assert!(
            cost.executed.contains_key(*name),
            "{what} did not run {name}: {:?}",
            cost.executed
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_costs_one_command_a_save_one_and_a_cookieless_request_none() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = MockClock::new();
    let layer = SessionLayer::builder(server.store().await)
        .with_plain_http_for_development()
        .with_clock(clock.clone())
        .build()
        .unwrap();
    let client = Client::new(serve(routes().layer(layer)).await);

    // Warm up: every script the steps below use gets loaded once.
    let warm = client.get("/count", None).await.cookie.unwrap();
    client.get("/count", Some(&warm)).await;
    client.post("/set/b/1", Some(&warm)).await;
    clock.advance(Duration::from_secs(120));
    client.get("/peek", Some(&warm)).await;
    let signed_in = client.post("/login/warm", Some(&warm)).await.cookie;
    client.post("/logout", signed_in.as_deref()).await;
    let cookie = client.get("/count", None).await.cookie.unwrap();

    let mut meter = Meter::start(&server).await;
    for _ in 0..100 {
        assert_eq!(client.get("/peek", None).await.status, 200);
    }
    let anonymous = meter.measure().await;
    client.get("/peek", Some(&cookie)).await;
    let read = meter.measure().await;
    client.get("/count", Some(&cookie)).await;
    let read_write = meter.measure().await;
    client.post("/set/b/2", Some(&cookie)).await;
    let blind_write = meter.measure().await;
    clock.advance(Duration::from_secs(120));
    client.get("/peek", Some(&cookie)).await;
    let read_touch = meter.measure().await;
    clock.advance(Duration::from_secs(120));
    client.post("/set/c/3", Some(&cookie)).await;
    let blind_write_touch = meter.measure().await;
    let key = SessionId::parse(cookie.as_bytes()).unwrap().storage_key();
    let stored = server
        .store()
        .await
        .load(&key, None, clock.now())
        .await
        .unwrap()
        .expect("the session lives");
    assert_eq!(
        stored.meta.last_seen,
        clock.now(),
        "the blind write did not make its due touch"
    );
    assert_eq!(stored.data()["c"], serde_json::json!("3"));
    meter.measure().await; // leaves out the check's own load
    let create = client.get("/count", None).await;
    let created = meter.measure().await;
    let signed_in = client.post("/login/alice", Some(&cookie)).await.cookie;
    let rotation = meter.measure().await;
    let noted = client
        .post("/login/bob/note/hi", signed_in.as_deref())
        .await
        .cookie;
    let rotation_writing = meter.measure().await;
    let signed_in = noted;
    let logout = client.post("/logout", signed_in.as_deref()).await;
    let delete = meter.measure().await;
    assert!(create.cookie.is_some());
    assert_eq!(
        logout.cookie.as_deref(),
        Some(""),
        "logout removes the cookie"
    );

    for (what, cost) in [
        ("100 requests without a cookie", &anonymous),
        ("read only", &read),
        ("read, then write", &read_write),
        ("write without reading", &blind_write),
        ("read with a touch due", &read_touch),
        ("write without reading, touch due", &blind_write_touch),
        ("new session", &created),
        ("sign-in (rotate + set user)", &rotation),
        ("sign-in that writes unread", &rotation_writing),
        ("sign-out", &delete),
    ] {
        eprintln!(
            "{what:30} sent {:?}; Redis executed {:?}",
            cost.sent, cost.executed
        );
    }
    assert_eq!(
        anonymous.sent,
        Vec::<String>::new(),
        "cookieless requests used Redis"
    );
    assert!(anonymous.executed.is_empty());
    // B2, inside the touch step: one script call that writes nothing.
    assert_eq!(
        read.sent,
        ["evalsha"],
        "a read-only request re-read or saved"
    );
    assert_no_write(&read, "a read inside the touch step");
    // B3: the load, then one save.
    assert_eq!(read_write.sent, ["evalsha", "evalsha"], "load + one save");
    // B4: one script checks the limits and writes.
    assert_eq!(
        blind_write.sent,
        ["evalsha"],
        "a write without a read is one round trip"
    );
    // B2, touch due: the load makes the touch.
    assert_eq!(
        read_touch.sent,
        ["evalsha"],
        "the touch is part of the load"
    );
    assert_wrote(
        &read_touch,
        "a read with a touch due",
        &["setrange", "pexpire"],
    );
    assert_eq!(
        blind_write_touch.sent,
        ["evalsha"],
        "the touch is part of the write"
    );
    assert_wrote(&blind_write_touch, "a write with a touch due", &["set"]);
    assert_eq!(created.sent, ["set"], "a create is one SET NX");
    // The rotation, the change, the new owner's index entry: one script.
    assert_eq!(rotation.sent, ["evalsha"], "a sign-in is one round trip");
    // The limits of a write no read preceded are checked inside the same script: no load.
    assert_eq!(
        rotation_writing.sent,
        ["evalsha"],
        "a sign-in that writes is one round trip"
    );
    assert_eq!(delete.sent, ["del"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_fails_requests_cleanly_and_its_return_restores_service() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let client = Client::new(serve(app(server.store().await)).await);
    let cookie = client.post("/set/a/1", None).await.cookie.unwrap();
    assert_eq!(client.get("/get/a", Some(&cookie)).await.body, "1");

    server.stop();
    let started = Instant::now();
    let failures = [
        ("read", client.get("/get/a", Some(&cookie)).await),
        ("write", client.post("/set/b/2", Some(&cookie)).await),
        ("new session", client.post("/set/a/1", None).await),
        ("sign-in", client.post("/login/alice", Some(&cookie)).await),
        ("sign-out", client.post("/logout", Some(&cookie)).await),
    ];
    for (what, reply) in &failures {
        assert!(
            (500..600).contains(&reply.status),
            "{what} with Redis down answered {}",
            reply.status
        );
        assert!(
            reply.cookie.is_none(),
            "{what} with Redis down set a cookie"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "failing took {:?}",
        started.elapsed()
    );

    server.restart();
    // Same app process, same store: the first request after the return works. The old
    // session died with the server's memory, so its cookie is now anonymous.
    let reply = client.post("/set/a/2", None).await;
    assert_eq!(reply.status, 200);
    let fresh = reply.cookie.expect("a new session after Redis came back");
    assert_eq!(client.get("/get/a", Some(&fresh)).await.body, "2");
    assert_eq!(client.get("/get/a", Some(&cookie)).await.body, "none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_fails_requests_within_the_timeout_and_recovers_when_thawed() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // The store's command timeout is 300 ms.
    let client = Client::new(serve(app(server.store().await)).await);
    let cookie = client.get("/count", None).await.cookie.unwrap();
    assert_eq!(client.get("/count", Some(&cookie)).await.body, "2");

    server.pause();
    for (what, path, with_cookie) in [
        ("read", "/count", true),
        ("write", "/set/b/2", true),
        ("new session", "/set/a/1", false),
    ] {
        let started = Instant::now();
        let reply = if path == "/count" {
            client.get(path, Some(&cookie)).await
        } else {
            client
                .post(path, with_cookie.then_some(cookie.as_str()))
                .await
        };
        let took = started.elapsed();
        assert!(
            (500..600).contains(&reply.status),
            "{what}: {}",
            reply.status
        );
        assert!(
            reply.cookie.is_none(),
            "{what} on a stalled Redis set a cookie"
        );
        assert!(
            took < Duration::from_millis(1_300),
            "{what} on a stalled Redis took {took:?}"
        );
    }
    server.resume();

    let reply = client.get("/peek", Some(&cookie)).await;
    assert_eq!(reply.status, 200, "service did not come back: {reply:?}");
    let reply = client.get("/count", Some(&cookie)).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_app_instances_share_sessions_and_see_a_sign_out_elsewhere_at_once() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // Two independent stores (each its own connection), as two processes would have.
    let a = Client::new(serve(app(server.store().await)).await);
    let b = Client::new(serve(app(server.store().await)).await);

    let laptop = a.post("/login/alice", None).await.cookie.unwrap();
    assert_eq!(b.get("/whoami", Some(&laptop)).await.body, "alice");
    let phone = b.post("/login/alice", None).await.cookie.unwrap();
    let tablet = a.post("/login/alice", None).await.cookie.unwrap();
    assert_eq!(a.get("/sessions", Some(&phone)).await.body, "3");

    // Writes made through one instance are read through the other.
    b.post("/set/theme/dark", Some(&laptop)).await;
    assert_eq!(a.get("/get/theme", Some(&laptop)).await.body, "dark");

    assert_eq!(a.post("/revoke-others", Some(&laptop)).await.body, "2");
    for (name, client, cookie) in [("phone", &b, &phone), ("tablet", &a, &tablet)] {
        let reply = client.get("/whoami", Some(cookie)).await;
        assert_eq!(reply.body, "anonymous", "the {name} survived sign-out");
        assert_eq!(
            reply.cookie.as_deref(),
            Some(""),
            "the {name} kept its cookie"
        );
    }
    assert_eq!(b.get("/whoami", Some(&laptop)).await.body, "alice");
    assert_eq!(b.get("/sessions", Some(&laptop)).await.body, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_writes_over_a_thousand_sessions_all_land() {
    const SESSIONS: usize = 1_000;
    const REQUESTS: usize = 10_000;
    const IN_FLIGHT: usize = 256;
    let Some(server) = RedisServer::start() else {
        return;
    };
    // This test is about correctness under concurrency, not latency: a debug build on a
    // busy two-core machine can take longer than the fault tests' 300 ms per command.
    let store = RedisStore::builder(server.url())
        .with_command_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    let client = Client::new(serve(app(store.clone())).await);
    let gate = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let started = Instant::now();

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..SESSIONS {
        let (client, gate) = (client.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let reply = client.post(&format!("/set/owner/{i}"), None).await;
            assert_eq!(reply.status, 200);
            (i, reply.cookie.expect("a new session"))
        });
    }
    let mut cookies = vec![String::new(); SESSIONS];
    while let Some(done) = tasks.join_next().await {
        let (i, cookie) = done.unwrap();
        cookies[i] = cookie;
    }
    let cookies = Arc::new(cookies);

    for j in 0..REQUESTS {
        let (client, gate, cookies) = (client.clone(), gate.clone(), cookies.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let (i, n) = (j % SESSIONS, j / SESSIONS);
            let reply = client
                .post(&format!("/set/k{n}/{i}-{j}"), Some(&cookies[i]))
                .await;
            assert_eq!(reply.status, 200, "request {j}: {reply:?}");
            assert!(reply.cookie.is_none(), "request {j} replaced its cookie");
            (0, String::new())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let took = started.elapsed();

    let now = time::OffsetDateTime::now_utc();
    for (i, cookie) in cookies.iter().enumerate() {
        let key = SessionId::parse(cookie.as_bytes()).unwrap().storage_key();
        let record = store
            .load(&key, None, now)
            .await
            .unwrap()
            .expect("a live session");
        let data = record.data();
        assert_eq!(data.len(), 1 + REQUESTS / SESSIONS, "session {i}: {data:?}");
        assert_eq!(data["owner"], serde_json::json!(i.to_string()));
        for n in 0..REQUESTS / SESSIONS {
            let j = n * SESSIONS + i;
            assert_eq!(
                data[&format!("k{n}")],
                serde_json::json!(format!("{i}-{j}")),
                "session {i} lost or mixed up write {j}"
            );
        }
    }
    eprintln!(
        "{} requests ({SESSIONS} creates + {REQUESTS} writes, {IN_FLIGHT} in flight) in {took:?}",
        SESSIONS + REQUESTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_or_value_in_redis_contains_a_cookie_value() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let client = Client::new(serve(app(server.store().await)).await);
    let mut issued = HashSet::new();
    let mut remember = |reply: common::Reply| {
        let cookie = reply.cookie.filter(|c| !c.is_empty());
        if let Some(c) = &cookie {
            issued.insert(c.clone());
        }
        cookie
    };
    // Every kind of write: create, update, touch-free reads, sign-in (rotation and user
    // index), a second device, revocation of others, sign-out.
    for round in 0..5 {
        let first = remember(client.post("/set/a/1", None).await).unwrap();
        client.get("/count", Some(&first)).await;
        let signed_in = remember(client.post("/login/carol", Some(&first)).await).unwrap();
        client
            .post(&format!("/set/round/{round}"), Some(&signed_in))
            .await;
        let second = remember(client.post("/login/carol", None).await).unwrap();
        client.get("/sessions", Some(&second)).await;
        if round % 2 == 0 {
            client.post("/revoke-others", Some(&signed_in)).await;
        } else {
            client.post("/logout", Some(&second)).await;
        }
    }
    assert!(issued.len() >= 15, "the run issued too few cookies");

    let mut redis = server.inspector().await;
    let keys: Vec<Vec<u8>> = redis.keys("*").await.unwrap();
    assert!(!keys.is_empty(), "the run left nothing to inspect");
    let mut blobs: Vec<Vec<u8>> = Vec::new();
    for key in &keys {
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut redis)
            .await
            .unwrap();
        match kind.as_str() {
            "string" => {
                let value: Vec<u8> = redis.get(key).await.unwrap();
                blobs.push(value);
            }
            "zset" => {
                let members: Vec<Vec<u8>> = redis.zrange(key, 0, -1).await.unwrap();
                blobs.extend(members);
            }
            other => panic!("unexpected Redis type {other}"),
        }
        blobs.push(key.clone());
    }
    for blob in &blobs {
        let text = String::from_utf8_lossy(blob);
        for cookie in &issued {
            assert!(
                !text.contains(cookie.as_str()),
                "Redis holds a cookie value (in a key, field, value or index entry)"
            );
        }
    }
}
