//! `redis`: session-layer's `RedisStore` against a private `redis-server` this command starts
//! on a free loopback port: round trips per request (counted with `MONITOR`, leaving out the
//! commands scripts run inside Redis) and time per request, in process, against a floor app
//! whose plain handler sends one raw `GET`.
//!
//! Rows run interleaved, round by round, so the noise of a shared machine hits the floor
//! and the rows alike; each row's ratio is taken to the floor sample of its own round.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use http::{HeaderValue, Uri};
use http_body_util::BodyExt as _;
use redis::AsyncCommands as _;
use session_layer::clock::Clock;
use session_layer::SessionLayer;
use session_layer_redis::RedisStore;
use tower::ServiceExt as _;

use crate::apps::{cookie_of, request};
use crate::report::{Stat, Table};
use crate::Options;

/// A private `redis-server`, killed when dropped.
pub(crate) struct Server {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl Server {
    pub(crate) fn start() -> Option<Server> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .ok()?
            .port();
        let dir =
            std::env::temp_dir().join(format!("sl-bench-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--logfile", ""])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = Server { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The system clock plus an offset the bench moves, so every request of a row can find its
/// touch due.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shifted(Arc<AtomicI64>);

impl Shifted {
    pub(crate) fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }
}

impl Clock for Shifted {
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
            + time::Duration::milliseconds(self.0.load(Ordering::Relaxed))
    }
}

/// Counts the commands clients send, from a raw `MONITOR` connection.
pub(crate) struct Monitor {
    lines: Arc<Mutex<Vec<String>>>,
    control: BufReader<TcpStream>,
    marks: usize,
}

impl Monitor {
    pub(crate) fn start(port: u16) -> Monitor {
        let mut feed = TcpStream::connect(("127.0.0.1", port)).expect("connect MONITOR");
        feed.write_all(b"MONITOR\r\n").expect("send MONITOR");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(feed).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let control = BufReader::new(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
        let mut monitor = Monitor {
            lines,
            control,
            marks: 0,
        };
        monitor.sent();
        monitor
    }

    /// Commands sent by clients since the last call (one round trip each).
    pub(crate) fn sent(&mut self) -> usize {
        self.marks += 1;
        let mark = format!("bench-mark-{}", self.marks);
        let stream = self.control.get_mut();
        stream
            .write_all(format!("ECHO {mark}\r\n").as_bytes())
            .expect("send ECHO");
        let mut reply = String::new();
        while !reply.contains(&mark) {
            self.control.read_line(&mut reply).expect("ECHO reply");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            {
                let mut lines = self.lines.lock().unwrap();
                if let Some(at) = lines.iter().position(|l| l.contains(&mark)) {
                    let seen: Vec<String> = lines.drain(..=at).collect();
                    return seen
                        .iter()
                        .filter(|l| l.starts_with('+') && l.contains("] \""))
                        .filter(|l| !l.contains(" lua]") && !l.contains(&mark))
                        .count();
                }
            }
            assert!(Instant::now() < deadline, "MONITOR fell silent");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// One row: what the request does, and how it is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Row {
    Floor,
    B2,
    B2Due,
    B3,
    B4,
    Login,
    Logout,
}

impl Row {
    const ALL: [Row; 7] = [
        Row::Floor,
        Row::B2,
        Row::B2Due,
        Row::B3,
        Row::B4,
        Row::Login,
        Row::Logout,
    ];

    fn label(self) -> &'static str {
        match self {
            Row::Floor => "floor",
            Row::B2 => "B2",
            Row::B2Due => "B2 touch due",
            Row::B3 => "B3",
            Row::B4 => "B4",
            Row::Login => "login",
            Row::Logout => "logout",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Row::Floor => "no session layer; the handler sends one raw GET",
            Row::B2 => "reads a counter, inside the touch step",
            Row::B2Due => "reads a counter, touch due (clock moved past the step)",
            Row::B3 => "increments the counter",
            Row::B4 => "writes a key unread",
            Row::Login => "rotates and writes the user, unread",
            Row::Logout => "destroys the session",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Row::Floor => "/floor",
            Row::B2 | Row::B2Due => "/read",
            Row::B3 => "/incr",
            Row::B4 => "/write",
            Row::Login => "/login",
            Row::Logout => "/logout",
        }
    }

    /// Whether every request needs a session of its own (the request ends or rotates it).
    fn fresh(self) -> bool {
        matches!(self, Row::Login | Row::Logout)
    }
}

struct Entry {
    row: Row,
    app: Router,
    clock: Shifted,
    session: Option<HeaderValue>,
    ns: Vec<f64>,
    round_trips: f64,
}

/// The app of one row: session-layer over `store` with its own clock, plus the floor route.
fn app(store: RedisStore, clock: Shifted, raw: redis::aio::ConnectionManager) -> Router {
    let layer = SessionLayer::builder(store)
        .with_clock(clock)
        .build()
        .expect("a valid layer");
    crate::apps::sl::routes()
        .layer(layer)
        .route("/floor", get(floor).with_state(raw))
}

async fn floor(State(mut raw): State<redis::aio::ConnectionManager>) -> String {
    let value: Option<String> = raw.get("bench-floor").await.expect("GET");
    value.unwrap_or_default()
}

async fn send(
    app: &Router,
    path: &'static str,
    cookie: Option<&HeaderValue>,
) -> Option<HeaderValue> {
    let res = app
        .clone()
        .oneshot(request(&Uri::from_static(path), cookie))
        .await
        .expect("infallible");
    assert!(res.status().is_success(), "{path}: {}", res.status());
    let set = cookie_of(&res);
    let _ = res.into_body().collect().await;
    set
}

/// Runs `iters` requests of `e`'s row; returns the time they took.
async fn batch(e: &Entry, iters: usize) -> Duration {
    let path = e.row.path();
    let step = Duration::from_secs(61);
    if e.row.fresh() {
        let mut cookies = Vec::with_capacity(iters);
        for _ in 0..iters {
            cookies.push(send(&e.app, "/setup", None).await.expect("a session"));
        }
        let started = Instant::now();
        for c in &cookies {
            send(&e.app, path, Some(c)).await;
        }
        return started.elapsed();
    }
    let started = Instant::now();
    for _ in 0..iters {
        if e.row == Row::B2Due {
            e.clock.advance(step);
        }
        send(&e.app, path, e.session.as_ref()).await;
    }
    started.elapsed()
}

/// The `redis` command: starts the server, runs every row, returns the table.
pub(crate) fn run(opts: &Options) -> Option<Table> {
    let Some(server) = Server::start() else {
        eprintln!("redis: could not start redis-server (is it installed?); skipped");
        return None;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    Some(rt.block_on(run_rows(&server, opts)))
}

async fn run_rows(server: &Server, opts: &Options) -> Table {
    let store = RedisStore::connect(&server.url())
        .await
        .expect("connect the store");
    let raw = redis::Client::open(server.url())
        .expect("a client")
        .get_connection_manager()
        .await
        .expect("connect the floor's client");
    let mut entries = Vec::new();
    for row in Row::ALL {
        let clock = Shifted::default();
        let app = app(store.clone(), clock.clone(), raw.clone());
        let session = if row.fresh() || row == Row::Floor {
            None
        } else {
            send(&app, "/setup", None).await
        };
        entries.push(Entry {
            row,
            app,
            clock,
            session,
            ns: Vec::new(),
            round_trips: 0.0,
        });
    }

    // Warm up (every script loaded), then count round trips with MONITOR on.
    let counted = if opts.smoke { 20 } else { 200 };
    for e in &entries {
        batch(e, 50).await;
    }
    let mut monitor = Monitor::start(server.port);
    for e in &mut entries {
        if e.row.fresh() {
            // Leave out the setup requests: count a batch with the sessions made first.
            let mut cookies = Vec::new();
            for _ in 0..counted {
                cookies.push(send(&e.app, "/setup", None).await.expect("a session"));
            }
            monitor.sent();
            for c in &cookies {
                send(&e.app, e.row.path(), Some(c)).await;
            }
        } else {
            monitor.sent();
            batch(e, counted).await;
        }
        e.round_trips = monitor.sent() as f64 / counted as f64;
    }
    drop(monitor);

    // Time: interleaved rounds, each row's ratio to the floor of its own round.
    let iters = if opts.smoke { 200 } else { 2_000 };
    let mut floor = Vec::new();
    for _ in 0..opts.rounds {
        for e in &mut entries {
            let took = batch(e, iters).await;
            e.ns.push(took.as_nanos() as f64 / iters as f64);
        }
        floor.push(entries[0].ns.last().copied().expect("the floor ran"));
    }

    let mut table = Table::new(
        "Redis (private redis-server on loopback, in process, single-threaded)",
        &[
            "case",
            "what",
            "round trips/request",
            "µs/request",
            "÷ floor",
        ],
    );
    for e in &entries {
        let us: Vec<f64> = e.ns.iter().map(|n| n / 1e3).collect();
        let ratio: Vec<f64> = e.ns.iter().zip(&floor).map(|(n, f)| n / f).collect();
        table.row(vec![
            e.row.label().into(),
            e.row.what().into(),
            format!("{:.2}", e.round_trips),
            Stat::of(&us).map_or_else(String::new, |s| s.show(1)),
            Stat::of(&ratio).map_or_else(String::new, |s| s.show(2)),
        ]);
    }
    table.notes.push(
        "Round trips: commands the app sent (MONITOR, leaving out those scripts run inside \
         Redis), averaged over the counted requests. Login and logout rows use a new session \
         per request, made before the timed batch."
            .into(),
    );
    table
}
