//! Many concurrent requests over many sessions, through the layer, against any store, with
//! checks exact enough to catch one lost write.
//!
//! [`run_mix`] builds a [`SessionLayer`] over the store, creates the
//! sessions, then sends every request of the mix at once (or as many at a time as
//! [`Mix::with_in_flight`] allows), in a shuffled order, each with the cookie its session's
//! "browser" holds at the moment it starts. Sessions fall in three groups:
//!
//! | group | share | requests | afterwards |
//! | --- | --- | --- | --- |
//! | writers | 6 in 10 | writes of distinct keys, reads | every acknowledged write is there |
//! | rotators | 2 in 10 | the same, plus one rotation | every acknowledged write is under the new ID; the old ID is dead |
//! | signers-out | 2 in 10 | the same, plus one sign-out | every ID the session had is dead |
//!
//! A write counts as acknowledged when it answered 200 without a new cookie: it was applied
//! to the live record the request named, so it must survive, carried along by a rotation
//! that came later. A write that raced a rotation or sign-out and found its session gone
//! answers 200 with a cookie for a new session holding only that write: that is the
//! contract (a save never brings back a session), and the new session is checked to hold
//! that one write and nothing of the old one. A write acknowledged before a sign-out is
//! legitimately gone with it.
//!
//! Every read must show its own session's owner or nothing, never another session's; a
//! writer's reads must always show its owner (no silent logout). The whole run must end
//! within [`Mix::with_deadline`] (no deadlock), and any failure is reported by session
//! number and operation, never by cookie value.
//!
//! ```
//! use session_layer_test_support::concurrency::{run_mix, Mix};
//! use session_layer::MemoryStore;
//!
//! # session_layer::testing::block_on(async {
//! let report = run_mix(MemoryStore::default(), &Mix::default().with_sessions(20).with_requests(200)).await;
//! assert_eq!(report.requests, 200);
//! assert_eq!(report.writes_verified, report.writes_acknowledged);
//! # });
//! ```

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::{COOKIE, SET_COOKIE};
use http::{Request, Response, StatusCode};
use tower_layer::Layer as _;
use tower_service::Service;

use session_layer::id::SessionId;
use session_layer::{Session, SessionLayer, SessionStore, DEFAULT_COOKIE_NAME};

/// The shape of a run: how many sessions, requests, and how many at a time.
#[derive(Debug, Clone)]
#[must_use]
pub struct Mix {
    sessions: usize,
    requests: usize,
    in_flight: usize,
    deadline: Duration,
    seed: u64,
}

impl Default for Mix {
    /// 1,000 sessions, 10,000 requests all in flight at once, a two-minute deadline.
    fn default() -> Self {
        Self {
            sessions: 1_000,
            requests: 10_000,
            in_flight: usize::MAX,
            deadline: Duration::from_secs(120),
            seed: 0x5e55_1011,
        }
    }
}

impl Mix {
    /// How many sessions the requests spread over. Default: 1,000. At least 10, so every
    /// group has members.
    pub fn with_sessions(mut self, sessions: usize) -> Self {
        self.sessions = sessions.max(10);
        self
    }

    /// How many requests are sent after the sessions are created, rounded down to a
    /// multiple of the sessions. Default: 10,000. At least two per session.
    pub fn with_requests(mut self, requests: usize) -> Self {
        self.requests = requests;
        self
    }

    /// How many requests may be in flight at once. Default: all of them.
    pub fn with_in_flight(mut self, in_flight: usize) -> Self {
        self.in_flight = in_flight.max(1);
        self
    }

    /// The time the whole run must end within, or it fails as a deadlock. Default: 2
    /// minutes.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The seed of the shuffle and of the choice between reads and writes. Default: fixed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// What a run did and verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Requests sent after the sessions were created.
    pub requests: usize,
    /// Sessions created first.
    pub sessions: usize,
    /// Writes that answered 200 without a new cookie, on sessions that were not signed out.
    pub writes_acknowledged: usize,
    /// Of those, how many were found afterwards, under the session's latest ID.
    pub writes_verified: usize,
    /// Writes that found their session rotated or signed out and went to a new session,
    /// each checked to hold that write alone.
    pub writes_detached: usize,
    /// Writes acknowledged before their session's sign-out (gone with it, as they should).
    pub writes_signed_out: usize,
    /// Reads, each checked never to show another session's data.
    pub reads: usize,
    /// Rotations, each checked to kill the old ID.
    pub rotations: usize,
    /// Sign-outs, each checked to kill the session.
    pub sign_outs: usize,
    /// IDs checked to be dead afterwards, in the store and through the layer.
    pub dead_ids_verified: usize,
    /// Time from the first request to the last answer.
    pub elapsed: Duration,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests over {} sessions in {:.1?}: {}/{} acknowledged writes found, {} \
             detached writes each alone in a new session, {} writes ended by sign-out, {} \
             reads, {} rotations, {} sign-outs, {} dead IDs confirmed dead",
            self.requests,
            self.sessions,
            self.elapsed,
            self.writes_verified,
            self.writes_acknowledged,
            self.writes_detached,
            self.writes_signed_out,
            self.reads,
            self.rotations,
            self.sign_outs,
            self.dead_ids_verified,
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Writer,
    Rotator,
    SignerOut,
}

fn group(session: usize) -> Group {
    match session % 10 {
        0..=5 => Group::Writer,
        6 | 7 => Group::Rotator,
        _ => Group::SignerOut,
    }
}

/// What one request asks the handler to do.
#[derive(Debug, Clone)]
enum Op {
    Create(usize),
    Write(String, String),
    Read,
    Rotate,
    SignOut,
}

/// The test app: does what the request's [`Op`] says with its session.
#[derive(Debug, Clone, Copy)]
struct Handler;

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + Send>>;

impl Service<Request<()>> for Handler {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        let session = req.extensions().get::<Session>().cloned();
        let op = req.extensions().get::<Op>().cloned();
        Box::pin(async move {
            let (Some(session), Some(op)) = (session, op) else {
                return Ok(reply(StatusCode::INTERNAL_SERVER_ERROR, "no session"));
            };
            let result = match op {
                Op::Create(i) => session
                    .insert("owner", i.to_string())
                    .await
                    .map(|()| "ok".into()),
                Op::Write(k, v) => session.insert(&k, v).await.map(|()| "ok".into()),
                Op::Read => session
                    .get::<String>("owner")
                    .await
                    .map(Option::unwrap_or_default),
                Op::Rotate => {
                    session.rotate().await;
                    session
                        .get::<String>("owner")
                        .await
                        .map(Option::unwrap_or_default)
                }
                Op::SignOut => {
                    session.destroy().await;
                    Ok("bye".into())
                }
            };
            Ok(match result {
                Ok(body) => reply(StatusCode::OK, &body),
                Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            })
        })
    }
}

fn reply(status: StatusCode, body: &str) -> Response<String> {
    let mut res = Response::new(body.to_owned());
    *res.status_mut() = status;
    res
}

/// One answer, as a browser sees it.
struct Answer {
    status: StatusCode,
    body: String,
    /// `None`: no session cookie set; `Some("")`: a removal; `Some(v)`: a new value.
    cookie: Option<String>,
}

async fn send<S>(svc: &S, cookie: Option<&str>, op: Op) -> Answer
where
    S: Service<Request<()>, Response = Response<String>, Error = Infallible> + Clone,
{
    let mut req = Request::new(());
    if let Some(value) = cookie {
        let header = format!("{DEFAULT_COOKIE_NAME}={value}");
        req.headers_mut()
            .insert(COOKIE, header.parse().expect("a cookie header"));
    }
    req.extensions_mut().insert(op);
    let mut svc = svc.clone();
    std::future::poll_fn(|cx| svc.poll_ready(cx))
        .await
        .unwrap_or_else(|never| match never {});
    let res = svc.call(req).await.unwrap_or_else(|never| match never {});
    let prefix = format!("{DEFAULT_COOKIE_NAME}=");
    let cookie = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(prefix.as_str()))
        .map(|rest| rest.split(';').next().unwrap_or_default().to_owned());
    Answer {
        status: res.status(),
        body: res.into_body(),
        cookie,
    }
}

/// What the "browser" of one session holds and saw.
#[derive(Debug, Default)]
struct Jar {
    /// The cookie it sends now (`None` after sign-out).
    current: Option<String>,
    /// Every ID it held, oldest first.
    issued: Vec<String>,
    /// Writes acknowledged under a live session of this jar.
    acked: Vec<(String, String)>,
    rotated: bool,
    signed_out: bool,
}

/// A write that went to a new session: that session's cookie, and the one key and value.
type Detached = (usize, String, String, String);

struct Shared {
    jars: Vec<Mutex<Jar>>,
    detached: Mutex<Vec<Detached>>,
    failures: Mutex<Vec<String>>,
    reads: std::sync::atomic::AtomicUsize,
}

impl Shared {
    fn fail(&self, what: String) {
        lock(&self.failures).push(what);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The requests of the mix, shuffled: `(session, op)`.
fn plan(mix: &Mix) -> Vec<(usize, Op)> {
    let mut state = mix.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let per = (mix.requests / mix.sessions).max(2);
    let mut ops = Vec::with_capacity(per * mix.sessions);
    for i in 0..mix.sessions {
        let special = (next() % per as u64) as usize;
        for n in 0..per {
            let op = match group(i) {
                Group::Rotator if n == special => Op::Rotate,
                Group::SignerOut if n == special => Op::SignOut,
                _ if next() % 10 < 7 => Op::Write(format!("k{n}"), format!("{i}-{n}")),
                _ => Op::Read,
            };
            ops.push((i, op));
        }
    }
    for i in (1..ops.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        ops.swap(i, j);
    }
    ops
}

/// Runs the mix against `store` and checks everything described in the
/// [module docs](self).
///
/// # Panics
///
/// Panics when a check fails (a lost write, a live ID that should be dead, another
/// session's data, a request that did not answer 200, a run past the deadline), naming the
/// session's number and the kind of failure, never a cookie value.
pub async fn run_mix<S: SessionStore + Clone>(store: S, mix: &Mix) -> Report {
    match tokio::time::timeout(mix.deadline, run(store, mix)).await {
        Ok(report) => report,
        Err(_) => panic!(
            "the mix did not finish within {:?}: a deadlock or a stalled store",
            mix.deadline
        ),
    }
}

async fn run<S: SessionStore + Clone>(store: S, mix: &Mix) -> Report {
    let layer = SessionLayer::new(store.clone());
    let svc = layer.layer(Handler);
    let shared = Arc::new(Shared {
        jars: (0..mix.sessions).map(|_| Mutex::default()).collect(),
        detached: Mutex::default(),
        failures: Mutex::default(),
        reads: std::sync::atomic::AtomicUsize::new(0),
    });
    let gate = Arc::new(tokio::sync::Semaphore::new(
        mix.in_flight.min(tokio::sync::Semaphore::MAX_PERMITS),
    ));

    // The sessions, each with its owner's number.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..mix.sessions {
        let (svc, shared, gate) = (svc.clone(), shared.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let answer = send(&svc, None, Op::Create(i)).await;
            match answer.cookie {
                Some(c) if answer.status == StatusCode::OK && !c.is_empty() => {
                    let mut jar = lock(&shared.jars[i]);
                    jar.current = Some(c.clone());
                    jar.issued.push(c);
                }
                _ => shared.fail(format!(
                    "session {i}: creating it answered {} without a cookie",
                    answer.status
                )),
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a create task");
    }
    assert_clean(&shared, "creating the sessions");

    let plan = plan(mix);
    let requests = plan.len();
    let started = Instant::now();
    for (i, op) in plan {
        let (svc, shared, gate) = (svc.clone(), shared.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let sent = lock(&shared.jars[i]).current.clone();
            let answer = send(&svc, sent.as_deref(), op.clone()).await;
            check(&shared, i, sent, &op, answer);
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a request task");
    }
    let elapsed = started.elapsed();
    assert_clean(&shared, "the concurrent requests");

    let mut report = verify(&store, &svc, &shared).await;
    report.requests = requests;
    report.sessions = mix.sessions;
    report.elapsed = elapsed;
    report.reads = shared.reads.load(std::sync::atomic::Ordering::Relaxed);
    assert_clean(&shared, "the checks afterwards");
    report
}

/// Checks one answer as it arrives and updates the session's jar.
fn check(shared: &Shared, i: usize, sent: Option<String>, op: &Op, answer: Answer) {
    let what = match op {
        Op::Create(_) => "create",
        Op::Write(..) => "write",
        Op::Read => "read",
        Op::Rotate => "rotation",
        Op::SignOut => "sign-out",
    };
    if answer.status != StatusCode::OK {
        return shared.fail(format!("session {i}: a {what} answered {}", answer.status));
    }
    let new_cookie = answer
        .cookie
        .as_ref()
        .filter(|c| !c.is_empty() && Some(*c) != sent.as_ref())
        .cloned();
    let mut jar = lock(&shared.jars[i]);
    match op {
        Op::Create(_) => {}
        Op::Write(k, v) => match new_cookie {
            Some(fresh) => {
                drop(jar);
                lock(&shared.detached).push((i, fresh, k.clone(), v.clone()));
            }
            None if sent.is_some() => jar.acked.push((k.clone(), v.clone())),
            None => shared.fail(format!("session {i}: a write without a cookie set none")),
        },
        Op::Read => {
            shared
                .reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let own = answer.body == i.to_string();
            if !own && !answer.body.is_empty() {
                shared.fail(format!("session {i}: a read showed another session's data"));
            } else if !own && group(i) == Group::Writer {
                shared.fail(format!(
                    "session {i}: a read of a live session was anonymous"
                ));
            }
        }
        Op::Rotate => match new_cookie {
            Some(fresh) if answer.body == i.to_string() => {
                jar.current = Some(fresh.clone());
                jar.issued.push(fresh);
                jar.rotated = true;
            }
            _ => shared.fail(format!(
                "session {i}: the rotation set no new cookie or lost the session"
            )),
        },
        Op::SignOut => {
            if answer.cookie.as_deref() == Some("") {
                jar.current = None;
                jar.signed_out = true;
            } else {
                shared.fail(format!("session {i}: the sign-out sent no removal cookie"));
            }
        }
    }
}

fn assert_clean(shared: &Shared, stage: &str) {
    let failures = lock(&shared.failures);
    if !failures.is_empty() {
        let shown: Vec<&str> = failures.iter().take(10).map(String::as_str).collect();
        panic!(
            "{} failures during {stage}, first ones:\n  {}",
            failures.len(),
            shown.join("\n  ")
        );
    }
}

async fn verify<S, Svc>(store: &S, svc: &Svc, shared: &Shared) -> Report
where
    S: SessionStore,
    Svc: Service<Request<()>, Response = Response<String>, Error = Infallible> + Clone,
{
    let now = session_layer::clock::to_millis(time::OffsetDateTime::now_utc());
    let mut report = Report::default();
    let key = |cookie: &str| {
        SessionId::parse(cookie.as_bytes())
            .expect("the layer issues well-formed IDs")
            .storage_key()
    };
    for (i, jar) in shared.jars.iter().enumerate() {
        let jar = std::mem::take(&mut *lock(jar));
        let dead: &[String] = match (group(i), jar.current.as_deref()) {
            (Group::SignerOut, None) if jar.signed_out => {
                report.sign_outs += 1;
                report.writes_signed_out += jar.acked.len();
                &jar.issued
            }
            (Group::Rotator, Some(_)) if jar.rotated => {
                report.rotations += 1;
                &jar.issued[..jar.issued.len() - 1]
            }
            (Group::Writer, Some(_)) => &[],
            _ => {
                shared.fail(format!(
                    "session {i}: its rotation or sign-out never happened"
                ));
                continue;
            }
        };
        for old in dead {
            let stored = store.load(&key(old), None, now).await;
            let through_layer = send(svc, Some(old), Op::Read).await;
            if !matches!(stored, Ok(None)) || !through_layer.body.is_empty() {
                shared.fail(format!(
                    "session {i}: an ID ended by rotation or sign-out is still alive"
                ));
            }
            report.dead_ids_verified += 1;
        }
        let Some(current) = &jar.current else {
            continue;
        };
        let record = match store.load(&key(current), None, now).await {
            Ok(Some(record)) => record,
            other => {
                shared.fail(format!(
                    "session {i}: its latest ID loads {}",
                    if other.is_ok() { "nothing" } else { "an error" }
                ));
                continue;
            }
        };
        let data = record.data();
        if data.get("owner").and_then(|v| v.as_str()) != Some(i.to_string().as_str()) {
            shared.fail(format!("session {i}: its owner changed or vanished"));
        }
        let prefix = format!("{i}-");
        for (k, v) in data {
            let own = k == "owner" || v.as_str().is_some_and(|v| v.starts_with(&prefix));
            if !own {
                shared.fail(format!(
                    "session {i}: holds a value written to another session"
                ));
            }
        }
        report.writes_acknowledged += jar.acked.len();
        for (k, v) in &jar.acked {
            if data.get(k).and_then(|x| x.as_str()) == Some(v.as_str()) {
                report.writes_verified += 1;
            } else {
                shared.fail(format!("session {i}: an acknowledged write of {k} is lost"));
            }
        }
        if send(svc, Some(current), Op::Read).await.body != i.to_string() {
            shared.fail(format!(
                "session {i}: a read through the layer afterwards failed"
            ));
        }
    }
    let detached = std::mem::take(&mut *lock(&shared.detached));
    for (i, cookie, k, v) in detached {
        match store.load(&key(&cookie), None, now).await {
            Ok(Some(record))
                if record.data().len() == 1
                    && record.data().get(&k).and_then(|x| x.as_str()) == Some(v.as_str()) =>
            {
                report.writes_detached += 1;
            }
            _ => shared.fail(format!(
                "session {i}: a write that went to a new session is missing there, or the \
                 new session holds more"
            )),
        }
    }
    report
}
