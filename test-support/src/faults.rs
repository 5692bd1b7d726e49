//! Faults under load: while several clients send a steady stream of requests, the server
//! behind the app is stopped at once and restarted, frozen (`SIGSTOP`) and thawed, and
//! stopped again. Every answer must be a 200 with consistent data (the session's own owner,
//! no new cookie) or a prompt 5xx without `Set-Cookie`; never a hang, a cookie for a session
//! that was not stored, or a silent sign-out. Afterwards, the same app process serves again,
//! every session created before the faults holds its data and every write acknowledged
//! during them, and nothing logged, at any level, holds a cookie value.
//!
//! A store crate's fault test starts its private server, opens its store on it and hands
//! both over, with a [`Plan`] of its timings; the server's controls come through [`Server`]
//! (not run here: the store crates run it, each on its own backend):
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use session_layer_test_support::logs::LogCapture;
//! use session_layer_test_support::faults::{self, Plan, Server};
//!
//! /// Stands in for a store crate's private server.
//! struct Private;
//!
//! impl Server for Private {
//!     fn stop(&mut self) {}
//!     fn restart(&mut self) {}
//!     fn freeze(&mut self) {}
//!     fn thaw(&mut self) {}
//! }
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn kills_and_stalls_under_load_fail_promptly_and_lose_nothing_acknowledged() {
//!     let logs = LogCapture::global();
//!     let store = session_layer::MemoryStore::default();
//!     let plan = Plan {
//!         name: "memory",
//!         stops: "stops and restarts",
//!         prompt: Duration::from_millis(2_000),
//!         first_fault_after: Duration::from_millis(500),
//!         between_faults: Duration::from_millis(700),
//!         after_last_fault: Duration::from_secs(1),
//!         recovery: Duration::from_secs(10),
//!     };
//!     faults::fail_promptly_and_lose_nothing_acknowledged(store, Private, &plan, logs).await;
//! }
//! # fn main() {}
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::logs::LogCapture;
use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use reqwest::Method;
use session_layer::id::SessionId;
use session_layer::{Session, SessionError, SessionStore, StoreErrorKind};

use crate::app::{call, layer, serve, write, Reply};

const CLIENTS: usize = 4;
const SESSIONS_PER_CLIENT: usize = 8;
/// How long the first stop keeps the server down, and how long the freeze lasts.
const LONG_FAULT: Duration = Duration::from_secs(1);
/// How long the second stop keeps the server down.
const SHORT_FAULT: Duration = Duration::from_millis(500);

/// The controls of the private server behind a store. `stop` and `restart` may block (they
/// run off the runtime's threads); `freeze` and `thaw` only send signals.
pub trait Server: Send + 'static {
    /// Stops the server at once: open connections break, new ones are refused.
    fn stop(&mut self);
    /// Starts the stopped server again on the same port, and waits until it answers.
    fn restart(&mut self);
    /// Freezes the server (`SIGSTOP`): connections stay open, nothing answers.
    fn freeze(&mut self);
    /// Thaws a frozen server (`SIGCONT`).
    fn thaw(&mut self);
}

/// What differs between backends: names for the messages, the timings the store's own
/// timeouts call for, and the gaps between the faults.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The backend, in messages and the printed line: "PostgreSQL", "Redis".
    pub name: &'static str,
    /// What the two stops are, in the printed line: "kills and restarts".
    pub stops: &'static str,
    /// The longest any answer may take: a load and a save, each bounded by the store's
    /// timeout, plus scheduling slack on a busy two-core machine.
    pub prompt: Duration,
    /// Load before the first fault.
    pub first_fault_after: Duration,
    /// Load between one fault's end and the next one's start.
    pub between_faults: Duration,
    /// Load after the last fault, before the clients stop.
    pub after_last_fault: Duration,
    /// How long the app may take to serve again once the clients stopped.
    pub recovery: Duration,
}

/// `POST /rw/{key}/{value}` reads the owner and writes `key`; `POST /set/{key}/{value}`
/// writes without reading; `GET /get/{key}` reads a string ("none" if absent), unquoted.
pub fn router(store: impl SessionStore) -> Router {
    Router::new()
        .route("/rw/{key}/{value}", post(read_write))
        .route("/set/{key}/{value}", post(write))
        .route("/get/{key}", get(read))
        .layer(layer(store))
}

/// Reads the session's owner, then writes `key`: a read-modify-write, two round trips.
async fn read_write(
    session: Session,
    Path((key, value)): Path<(String, String)>,
) -> Result<String, SessionError> {
    let owner: Option<String> = session.get("owner").await?;
    session.insert(&key, value).await?;
    Ok(owner.unwrap_or_else(|| "none".into()))
}

async fn read(session: Session, Path(key): Path<String>) -> Result<String, SessionError> {
    Ok(session
        .get::<String>(&key)
        .await?
        .unwrap_or_else(|| "none".into()))
}

/// Serves [`router`] over `store`, creates 32 sessions (4 clients, 8 each, each with its
/// owner), then runs the faults on `server` while the clients send read-modify-writes and,
/// every fifth request, create a session: 1 s of the server stopped at once, then frozen
/// for 1 s, then stopped for 500 ms, with the gaps of `plan` around them. Then checks that
/// the app serves again, every session from before the faults holds its owner and every
/// acknowledged write (in `store` and over HTTP), every cookie issued during the faults
/// names a stored session, and no line `logs` caught holds a cookie value. Prints the
/// figures as `hostile: {name} faults under load: …`.
///
/// # Panics
///
/// When an answer took longer than `plan.prompt` or hung, a 200 carried another session's
/// data or a new cookie, a 5xx set a cookie, no request failed or none succeeded, the app
/// did not serve again within `plan.recovery`, a session or an acknowledged write is gone,
/// a cookie names no stored session, or the logs hold a cookie value or nothing at all.
pub async fn fail_promptly_and_lose_nothing_acknowledged<S, V>(
    store: S,
    mut server: V,
    plan: &Plan,
    logs: &'static LogCapture,
) where
    S: SessionStore + Clone,
    V: Server,
{
    let addr = serve(router(store.clone())).await;
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
            Client {
                http: client.clone(),
                addr,
                logs,
            },
            c,
            cookies.clone(),
            stop.clone(),
            tally.clone(),
            plan.prompt,
        ));
    }

    // The faults, while the clients keep sending.
    let started = Instant::now();
    tokio::time::sleep(plan.first_fault_after).await;
    server = stop_and_restart(server, LONG_FAULT).await;
    tokio::time::sleep(plan.between_faults).await;
    server.freeze();
    tokio::time::sleep(LONG_FAULT).await;
    server.thaw();
    tokio::time::sleep(plan.between_faults).await;
    let _server = stop_and_restart(server, SHORT_FAULT).await;
    tokio::time::sleep(plan.after_last_fault).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = tasks.join_next().await {
        done.expect("a client task");
    }
    let ran = started.elapsed();

    // The same app process serves again.
    let deadline = Instant::now() + plan.recovery;
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
            describe(&reply)
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
                .load(&key(cookie), None, now)
                .await
                .unwrap_or_else(|e| panic!("{} is back: {e:?}", plan.name))
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
            let reply = call(&client, addr, Method::GET, "/get/owner", Some(cookie)).await;
            assert_eq!(
                (reply.status.as_u16(), reply.body.as_str()),
                (200, format!("{c}-{s}").as_str())
            );
        }
    }
    // Every cookie issued during the faults names a stored session.
    for (owner, cookie) in &tally.created {
        let record = store
            .load(&key(cookie), None, now)
            .await
            .unwrap_or_else(|e| panic!("{} is back: {e:?}", plan.name))
            .unwrap_or_else(|| panic!("session {owner}: a cookie for an unsaved ID"));
        assert_eq!(record.data()["owner"], serde_json::json!(owner));
    }

    logs.assert_clean();
    assert!(
        logs.contains("session_layer"),
        "the failures were not logged, so the log check proves nothing"
    );
    println!(
        "hostile: {} faults under load: 3 faults (2 {}, 1 freeze) in {ran:.1?}, {} requests \
         from {CLIENTS} clients: {} succeeded ({verified} acknowledged writes and {} new \
         sessions all found afterwards), {} failed promptly (slowest answer {:?}) without a \
         cookie; {} sessions from before the faults intact; {} log lines free of {} secret \
         forms",
        plan.name,
        plan.stops,
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

/// Stops the server at once, waits `down_for`, then starts it again (both may block, so
/// off the runtime's threads).
async fn stop_and_restart<V: Server>(mut server: V, down_for: Duration) -> V {
    server = tokio::task::spawn_blocking(move || {
        server.stop();
        server
    })
    .await
    .expect("stop the server");
    tokio::time::sleep(down_for).await;
    tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .expect("restart the server")
}

/// A reply for a message: its status and body, and only whether it set a cookie, never the
/// value.
fn describe(reply: &Reply) -> String {
    let cookie = match reply.cookie.as_deref() {
        None => "untouched",
        Some("") => "removed",
        Some(_) => "set (REDACTED)",
    };
    format!("{} (cookie {cookie}, body {:?})", reply.status, reply.body)
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

/// What a client task needs to reach the app and report the cookies it was given.
struct Client {
    http: reqwest::Client,
    addr: SocketAddr,
    logs: &'static LogCapture,
}

/// One client: a steady stream of read-modify-writes on its sessions, and every fifth
/// request a new session, until told to stop.
async fn stream(
    client: Client,
    c: usize,
    cookies: Vec<String>,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    prompt: Duration,
) {
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
        let reply = tokio::time::timeout(
            prompt * 3,
            call(&client.http, client.addr, Method::POST, &path, cookie),
        )
        .await;
        let took = started.elapsed();
        {
            let mut tally = tally.lock().unwrap();
            tally.slowest = tally.slowest.max(took);
            match reply {
                Ok(reply) => {
                    if let Some(value) = reply.cookie.as_deref().filter(|v| !v.is_empty()) {
                        client.logs.forbid("cookie value issued", value);
                    }
                    let request = Request {
                        c,
                        s,
                        creates,
                        path: &path,
                    };
                    check(&mut tally, &request, reply, took, prompt);
                }
                Err(_) => tally
                    .failures
                    .push(format!("client {c}: a request hung for {took:?}")),
            }
        }
        tokio::task::yield_now().await;
    }
}

/// One request of a client's stream: client `c`, its session `s` (unless it `creates` one).
struct Request<'a> {
    c: usize,
    s: usize,
    creates: bool,
    path: &'a str,
}

/// Judges one reply: prompt, a 200 with the session's own data and no new cookie (or, for a
/// new session, a cookie), or a 5xx without a cookie.
fn check(tally: &mut Tally, request: &Request<'_>, reply: Reply, took: Duration, prompt: Duration) {
    let Request {
        c,
        s,
        creates,
        path,
    } = *request;
    let what = if creates {
        "a new session"
    } else {
        "a read-modify-write"
    };
    if took > prompt {
        tally
            .failures
            .push(format!("client {c}: {what} took {took:?}, past {prompt:?}"));
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

/// The backend going away and coming back with no load, on the private `server` behind
/// `store` (named `name` in messages). While it is stopped, a read, a write, a new session,
/// a rotation and a logout each get a 5xx without `Set-Cookie`, and the store reports the
/// backend unavailable, all within ten seconds; once it is back, the same process and pool
/// serve the session with its data and take writes and new sessions again.
///
/// # Panics
///
/// When any of that does not hold.
pub async fn outage_then_recovery<S>(store: S, server: &mut impl Server, name: &str)
where
    S: SessionStore + Clone,
{
    let down = |reply: &Reply, what: &str| {
        assert!(
            reply.status.is_server_error(),
            "{what}: expected a 5xx while {name} is down, got {}",
            reply.status
        );
        assert_eq!(
            reply.cookie, None,
            "{what}: a Set-Cookie was sent while {name} is down"
        );
    };
    let addr = serve(crate::app::router(store.clone())).await;
    let client = reqwest::Client::new();

    let signed_in = call(&client, addr, Method::POST, "/set/n/1", None).await;
    let cookie = signed_in.cookie.expect("a session");

    server.stop();
    let started = Instant::now();
    let read = call(&client, addr, Method::GET, "/get/n", Some(&cookie)).await;
    down(&read, "a read of a stored session");
    let write = call(&client, addr, Method::POST, "/set/n/2", Some(&cookie)).await;
    down(&write, "a write to a stored session");
    let fresh = call(&client, addr, Method::POST, "/set/n/3", None).await;
    down(&fresh, "a new session (its ID was never stored)");
    let login = call(&client, addr, Method::POST, "/login/alice", Some(&cookie)).await;
    down(&login, "a rotation");
    let logout = call(&client, addr, Method::POST, "/logout", Some(&cookie)).await;
    down(&logout, "a logout (never a success while the row survives)");
    // What the layer saw: "unreachable", not "slow" and not "no such session".
    let key = SessionId::parse(cookie.as_bytes())
        .expect("an ID")
        .storage_key();
    let now = time::OffsetDateTime::now_utc();
    let err = store
        .load(&key, None, now)
        .await
        .expect_err("the server is down");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failing took {:?}: the timeouts do not hold",
        started.elapsed()
    );

    server.restart();
    // The same process, the same pool: the session is still there, and writes work again.
    let read = call(&client, addr, Method::GET, "/get/n", Some(&cookie)).await;
    assert_eq!(
        read.status, 200,
        "no recovery after {name} came back: {}",
        read.body
    );
    assert_eq!(read.body, "\"1\"", "the session was lost during the outage");
    assert_eq!(read.cookie, None);
    let write = call(&client, addr, Method::POST, "/set/n/4", Some(&cookie)).await;
    assert_eq!(write.status, 200);
    let read = call(&client, addr, Method::GET, "/get/n", Some(&cookie)).await;
    assert_eq!(read.body, "\"4\"");
    let fresh = call(&client, addr, Method::POST, "/set/n/5", None).await;
    assert!(
        fresh.cookie.is_some_and(|c| !c.is_empty()),
        "new sessions work again"
    );
}
