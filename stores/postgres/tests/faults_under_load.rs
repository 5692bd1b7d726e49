//! Faults under load: while several clients send a steady stream of requests, the private
//! PostgreSQL cluster behind the app is stopped at once and restarted, frozen (`SIGSTOP` to
//! the postmaster and every backend) and thawed, and stopped again. Every answer must be a
//! 200 with consistent data (the session's own owner, no new cookie) or a prompt 5xx
//! without `Set-Cookie`; never a hang, a cookie for a session that was not stored, or a
//! silent sign-out. Afterwards, the same app process serves again, every session created
//! before the faults holds its data and every write acknowledged during them, and nothing
//! logged, at any level, holds a cookie value.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use common::cluster::Cluster;
use reqwest::Method;
use session_layer::id::SessionId;
use session_layer::testing::logs::LogCapture;
use session_layer::{Session, SessionError, SessionStore};
use session_layer_postgres::PostgresStore;
use session_layer_test_support::app::{call, layer, serve, Reply};

/// The store's acquire and query timeouts in this test.
const TIMEOUT: Duration = Duration::from_millis(500);
/// The longest any answer may take: a load and a save, each bounded by the timeout, plus
/// scheduling slack on a busy two-core machine.
const PROMPT: Duration = Duration::from_millis(2_500);
const CLIENTS: usize = 4;
const SESSIONS_PER_CLIENT: usize = 8;

/// Reads the session's owner, then writes `key`: a read-modify-write, two round trips.
async fn read_write(
    session: Session,
    Path((key, value)): Path<(String, String)>,
) -> Result<String, SessionError> {
    let owner: Option<String> = session.get("owner").await?;
    session.insert(&key, value).await?;
    Ok(owner.unwrap_or_else(|| "none".into()))
}

async fn write(
    session: Session,
    Path((key, value)): Path<(String, String)>,
) -> Result<&'static str, SessionError> {
    session.insert(&key, value).await?;
    Ok("ok")
}

async fn read(session: Session, Path(key): Path<String>) -> Result<String, SessionError> {
    Ok(session
        .get::<String>(&key)
        .await?
        .unwrap_or_else(|| "none".into()))
}

fn app(store: PostgresStore) -> Router {
    Router::new()
        .route("/rw/{key}/{value}", post(read_write))
        .route("/set/{key}/{value}", post(write))
        .route("/get/{key}", get(read))
        .layer(layer(store))
}

#[derive(Default)]
struct Tally {
    ok: usize,
    failed: usize,
    slowest: Duration,
    /// Writes acknowledged during the run: (client, session, key, value).
    acked: Vec<(usize, usize, String, String)>,
    /// Sessions created during the run: (owner, cookie).
    created: Vec<(String, String)>,
    failures: Vec<String>,
}

/// One client: a steady stream of read-modify-writes on its sessions, and every fifth
/// request a new session, until told to stop.
async fn stream(
    addr: SocketAddr,
    c: usize,
    cookies: Vec<String>,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    logs: &'static LogCapture,
) {
    let client = reqwest::Client::new();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let creates = n.is_multiple_of(5);
        let s = n % cookies.len();
        let (path, cookie) = if creates {
            (format!("/set/owner/{c}-new-{n}"), None)
        } else {
            (format!("/rw/k{n}/{c}-{s}-{n}"), Some(cookies[s].as_str()))
        };
        let started = Instant::now();
        let reply =
            tokio::time::timeout(PROMPT * 3, call(&client, addr, Method::POST, &path, cookie))
                .await;
        let took = started.elapsed();
        {
            let mut tally = tally.lock().unwrap();
            tally.slowest = tally.slowest.max(took);
            match reply {
                Ok(reply) => {
                    if let Some(value) = reply.cookie.as_deref().filter(|v| !v.is_empty()) {
                        logs.forbid("cookie value issued", value);
                    }
                    check(&mut tally, c, s, creates, &path, reply, took);
                }
                Err(_) => tally
                    .failures
                    .push(format!("client {c}: a request hung for {took:?}")),
            }
        }
        tokio::task::yield_now().await;
    }
}

fn check(
    tally: &mut Tally,
    c: usize,
    s: usize,
    creates: bool,
    path: &str,
    reply: Reply,
    took: Duration,
) {
    let what = if creates {
        "a new session"
    } else {
        "a read-modify-write"
    };
    if took > PROMPT {
        tally
            .failures
            .push(format!("client {c}: {what} took {took:?}, past {PROMPT:?}"));
    }
    match reply.status.as_u16() {
        200 if creates => match reply.cookie {
            Some(cookie) if !cookie.is_empty() => {
                let owner = path.trim_start_matches("/set/owner/").to_owned();
                tally.created.push((owner, cookie));
                tally.ok += 1;
            }
            _ => tally
                .failures
                .push(format!("client {c}: {what} answered 200 without a cookie")),
        },
        200 => {
            if reply.body != format!("{c}-{s}") {
                tally.failures.push(format!(
                    "client {c}: session {s} read as {:?}: a silent sign-out",
                    reply.body
                ));
            } else if reply.cookie.is_some() {
                tally
                    .failures
                    .push(format!("client {c}: session {s} got a new cookie"));
            } else {
                let (key, value) = path
                    .trim_start_matches("/rw/")
                    .split_once('/')
                    .expect("key/value");
                tally.acked.push((c, s, key.to_owned(), value.to_owned()));
                tally.ok += 1;
            }
        }
        500..=599 => {
            if reply.cookie.is_some() {
                tally.failures.push(format!(
                    "client {c}: {what} failed with {} but set a cookie",
                    reply.status
                ));
            }
            tally.failed += 1;
        }
        other => tally
            .failures
            .push(format!("client {c}: {what} answered {other}")),
    }
}

/// Stops the cluster at once, waits `down_for`, then starts it again (pg_ctl blocks, so
/// off the runtime's threads).
async fn stop_and_restart(cluster: Cluster, down_for: Duration) -> Cluster {
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop();
        cluster
    })
    .await
    .expect("stop the cluster");
    tokio::time::sleep(down_for).await;
    tokio::task::spawn_blocking(move || {
        cluster.resume();
        cluster
    })
    .await
    .expect("restart the cluster")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_and_freezes_under_load_fail_promptly_and_lose_nothing_acknowledged() {
    let logs = LogCapture::global();
    let Some(mut cluster) = Cluster::start() else {
        return;
    };
    let store = PostgresStore::builder()
        .with_max_connections(8)
        .with_acquire_timeout(TIMEOUT)
        .with_query_timeout(TIMEOUT)
        .connect(&cluster.url())
        .await
        .expect("the private cluster is up");
    store.migrate().await.expect("migrate");
    let addr = serve(app(store.clone())).await;
    let client = reqwest::Client::new();

    // Sessions created before any fault, each with its owner.
    let mut sessions = Vec::new();
    for c in 0..CLIENTS {
        let mut cookies = Vec::new();
        for s in 0..SESSIONS_PER_CLIENT {
            let path = format!("/set/owner/{c}-{s}");
            let reply = call(&client, addr, Method::POST, &path, None).await;
            assert_eq!(reply.status, 200);
            let cookie = reply.cookie.expect("a new session");
            logs.forbid("cookie value issued", &cookie);
            cookies.push(cookie);
        }
        sessions.push(cookies);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut tasks = tokio::task::JoinSet::new();
    for (c, cookies) in sessions.iter().enumerate() {
        tasks.spawn(stream(
            addr,
            c,
            cookies.clone(),
            stop.clone(),
            tally.clone(),
            logs,
        ));
    }

    // The faults, while the clients keep sending.
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(700)).await;
    cluster = stop_and_restart(cluster, Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    cluster.pause();
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.unpause();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let _cluster = stop_and_restart(cluster, Duration::from_millis(500)).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = tasks.join_next().await {
        done.expect("a client task");
    }
    let ran = started.elapsed();

    // The same app process serves again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = call(
            &client,
            addr,
            Method::GET,
            "/get/owner",
            Some(&sessions[0][0]),
        )
        .await;
        if reply.status == 200 {
            assert_eq!(reply.body, "0-0", "the session did not survive the faults");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "service did not come back: {}",
            reply.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let tally = std::mem::take(&mut *tally.lock().unwrap());
    assert!(
        tally.failures.is_empty(),
        "{} failures, first ones:\n  {}",
        tally.failures.len(),
        tally
            .failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    assert!(
        tally.failed > 0,
        "no request failed: the faults did not bite"
    );
    assert!(tally.ok > 0, "no request succeeded");

    // Every session from before the faults holds its owner and every acknowledged write.
    let now = time::OffsetDateTime::now_utc();
    let key = |cookie: &str| SessionId::parse(cookie.as_bytes()).unwrap().storage_key();
    let mut verified = 0;
    for (c, cookies) in sessions.iter().enumerate() {
        for (s, cookie) in cookies.iter().enumerate() {
            let record = store
                .load(&key(cookie), now)
                .await
                .expect("PostgreSQL is back")
                .unwrap_or_else(|| panic!("session {c}-{s} from before the faults is gone"));
            assert_eq!(
                record.data()["owner"],
                serde_json::json!(format!("{c}-{s}")),
                "session {c}-{s} changed owner"
            );
            for (_, _, k, v) in tally
                .acked
                .iter()
                .filter(|(ac, as_, ..)| (*ac, *as_) == (c, s))
            {
                assert_eq!(
                    record.data().get(k),
                    Some(&serde_json::json!(v)),
                    "session {c}-{s} lost an acknowledged write"
                );
                verified += 1;
            }
        }
    }
    // Every cookie issued during the faults names a stored session.
    for (owner, cookie) in &tally.created {
        let record = store
            .load(&key(cookie), now)
            .await
            .expect("PostgreSQL is back")
            .unwrap_or_else(|| panic!("session {owner}: a cookie for an unsaved ID"));
        assert_eq!(record.data()["owner"], serde_json::json!(owner));
    }

    logs.assert_clean();
    assert!(
        logs.contains("session_layer"),
        "the failures were not logged, so the log check proves nothing"
    );
    println!(
        "hostile: PostgreSQL faults under load: 3 faults (2 immediate stops and restarts, 1 \
         freeze) in {ran:.1?}, {} requests from {CLIENTS} clients: {} succeeded ({verified} \
         acknowledged writes and {} new sessions all found afterwards), {} failed promptly \
         (slowest answer {:?}) without a cookie; {} sessions from before the faults intact; \
         {} log lines free of {} secret forms",
        tally.ok + tally.failed,
        tally.ok,
        tally.created.len(),
        tally.failed,
        tally.slowest,
        CLIENTS * SESSIONS_PER_CLIENT,
        logs.lines(),
        logs.secrets(),
    );
}
