//! `stores`: this crate's stores beside tower-sessions' stores on the same backend, and beside
//! a floor that does the least a request to that backend can do.
//!
//! Per backend (Redis, PostgreSQL, SQLite, MySQL/MariaDB) three apps serve the same requests
//! against the same server (or file): this crate's store, tower-sessions' store, and a floor
//! app whose handler sends one raw `GET` of a small value (Redis) or one primary-key `SELECT`
//! through a sqlx pool (SQL). Cases: read inside the touch step, read with a touch due (the
//! clock moves past the step before each request), increment, blind write, sign-in (rotate and
//! set the user) and sign-out. Each is timed in process (one thread; 2 workers × 64 tasks) and
//! over loopback HTTP (`wrk`, the server in its own process), rounds interleaved, and counted:
//! Redis commands (`INFO commandstats`) and round trips (`MONITOR`, leaving out commands run
//! by scripts) on a private `redis-server`; SQL statements and transactions from sqlx's own
//! per-statement `tracing` events.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use http::{HeaderValue, Uri};
use http_body_util::BodyExt as _;
use session_layer::{SessionLayer, SessionStore};
use tower::ServiceExt as _;

use crate::apps::{cookie_of, request};
use crate::redis_bench::{Monitor, Server as RedisServer, Shifted};
use crate::report::{Sink, Stat, Table};
use crate::Options;

/// The peers' versions, as Cargo.toml pins them (printed in the tables).
const PEER_VERSIONS: &str = "tower-sessions 0.14.0 with tower-sessions-redis-store 0.16.0 \
                             (fred 10) and tower-sessions-sqlx-store 0.15.0 (sqlx 0.8)";

/// A backend both crates have a store for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Backend {
    Redis,
    Postgres,
    Sqlite,
    Mysql,
}

impl Backend {
    const ALL: [Backend; 4] = [
        Backend::Redis,
        Backend::Postgres,
        Backend::Sqlite,
        Backend::Mysql,
    ];

    fn key(self) -> &'static str {
        match self {
            Backend::Redis => "redis",
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
            Backend::Mysql => "mysql",
        }
    }

    fn from_key(key: &str) -> Option<Backend> {
        Backend::ALL.into_iter().find(|b| b.key() == key)
    }

    fn name(self) -> &'static str {
        match self {
            Backend::Redis => "Redis",
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
            Backend::Mysql => "MySQL (MariaDB)",
        }
    }

    fn side_name(self, side: Side) -> &'static str {
        match (self, side) {
            (Backend::Redis, Side::Floor) => "floor: one raw GET",
            (_, Side::Floor) => "floor: one primary-key SELECT",
            (Backend::Redis, Side::Ours) => "session-layer-redis",
            (Backend::Postgres, Side::Ours) => "session-layer-postgres",
            (Backend::Sqlite, Side::Ours) => "session-layer-sqlite",
            (Backend::Mysql, Side::Ours) => "session-layer-mysql",
            (Backend::Redis, Side::Peer) => "tower-sessions-redis-store",
            (Backend::Postgres, Side::Peer) => "tower-sessions-sqlx-store (postgres)",
            (Backend::Sqlite, Side::Peer) => "tower-sessions-sqlx-store (sqlite)",
            (Backend::Mysql, Side::Peer) => "tower-sessions-sqlx-store (mysql)",
        }
    }

    fn sql(self) -> bool {
        self != Backend::Redis
    }
}

/// Which app of a backend serves the requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Side {
    Floor,
    Ours,
    Peer,
}

impl Side {
    fn key(self) -> &'static str {
        match self {
            Side::Floor => "floor",
            Side::Ours => "sl",
            Side::Peer => "ts",
        }
    }

    fn from_key(key: &str) -> Option<Side> {
        [Side::Floor, Side::Ours, Side::Peer]
            .into_iter()
            .find(|s| s.key() == key)
    }
}

/// One request shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Case {
    B2,
    B2Due,
    B3,
    B4,
    Login,
    Logout,
}

impl Case {
    const ALL: [Case; 6] = [
        Case::B2,
        Case::B2Due,
        Case::B3,
        Case::B4,
        Case::Login,
        Case::Logout,
    ];

    /// The cases run over HTTP: those whose requests can repeat on the same sessions.
    const HTTP: [Case; 3] = [Case::B2, Case::B3, Case::B4];

    fn label(self) -> &'static str {
        match self {
            Case::B2 => "B2 read",
            Case::B2Due => "B2 read, touch due",
            Case::B3 => "B3 increment",
            Case::B4 => "B4 blind write",
            Case::Login => "sign-in",
            Case::Logout => "sign-out",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Case::B2 | Case::B2Due => "/read",
            Case::B3 => "/incr",
            Case::B4 => "/write",
            Case::Login => "/login",
            Case::Logout => "/logout",
        }
    }

    /// Whether every request needs a session of its own (the request rotates or ends it).
    fn fresh(self) -> bool {
        matches!(self, Case::Login | Case::Logout)
    }
}

/// Where one process finds a backend: the kind, a tag naming this run's tables, and the URL
/// (SQLite: the file).
#[derive(Clone, Debug)]
struct Conf {
    backend: Backend,
    tag: String,
    target: String,
}

impl Conf {
    fn table(&self, side: Side) -> String {
        format!("bench_{}_{}", side.key(), self.tag)
    }
}

fn pg_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn mysql_url() -> String {
    std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

// ---------------------------------------------------------------------------------------------
// Statement counting: sqlx (0.8 and 0.9 alike) reports every statement it runs as a `tracing`
// event with target `sqlx::query`. PostgreSQL's `BEGIN` and SQLite's `BEGIN`/`COMMIT` are sent
// by sqlx outside that path, so transactions are counted by their `COMMIT`/`ROLLBACK` where
// sqlx reports them (PostgreSQL, MySQL), and not at all on SQLite.

static COUNTING: AtomicBool = AtomicBool::new(false);
static STATEMENTS: AtomicU64 = AtomicU64::new(0);
static ENDS: AtomicU64 = AtomicU64::new(0);
static BEGINS: AtomicU64 = AtomicU64::new(0);

struct SqlCounter;

struct Summary(String);

impl tracing::field::Visit for Summary {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "summary" {
            self.0 = value.to_owned();
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SqlCounter {
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if meta.target() == "sqlx::query" {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(
        &self,
        meta: &tracing::Metadata<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        // Off while timing: sqlx formats each statement's summary when the event is enabled.
        meta.target() == "sqlx::query" && COUNTING.load(Ordering::Relaxed)
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut summary = Summary(String::new());
        event.record(&mut summary);
        let first = summary
            .0
            .trim_start_matches('"')
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        STATEMENTS.fetch_add(1, Ordering::Relaxed);
        match first.as_str() {
            "commit" | "rollback" => ENDS.fetch_add(1, Ordering::Relaxed),
            "begin" | "start" => BEGINS.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }
}

fn install_counter() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let _ =
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(SqlCounter));
}

// ---------------------------------------------------------------------------------------------
// The apps.

/// The app of one side: this crate's store with a clock the bench moves, tower-sessions'
/// store with its defaults, or the floor.
async fn app(conf: &Conf, side: Side, clock: Shifted) -> Router {
    let app = match side {
        Side::Floor => floor_app(conf).await,
        Side::Ours => ours_app(conf).await(clock),
        Side::Peer => peer_app(conf).await,
    };
    app.with_state(())
}

/// Makes this crate's app over one store, each with a clock of its own (a row that moves its
/// clock must not move another row's).
type MakeApp = Box<dyn Fn(Shifted) -> Router + Send + Sync>;

fn ours<S: SessionStore + Clone + Sync>(store: S) -> MakeApp {
    Box::new(move |clock| {
        let layer = SessionLayer::builder(store.clone())
            .with_clock(clock)
            .build()
            .expect("a valid layer");
        crate::apps::sl::routes().layer(layer)
    })
}

async fn ours_app(conf: &Conf) -> MakeApp {
    let table = conf.table(Side::Ours);
    match conf.backend {
        Backend::Redis => {
            let store = session_layer_redis::RedisStore::builder(conf.target.clone())
                .with_key_prefix(format!("{table}:"))
                .connect()
                .await
                .expect("connect session-layer-redis");
            ours(store)
        }
        Backend::Postgres => {
            let store = session_layer_postgres::PostgresStore::builder()
                .with_table(table)
                .expect("a valid table name")
                .connect(&conf.target)
                .await
                .expect("connect session-layer-postgres");
            store.migrate().await.expect("migrate");
            ours(store)
        }
        Backend::Sqlite => {
            let store = session_layer_sqlite::SqliteStore::builder()
                .with_table(table)
                .expect("a valid table name")
                .open(&conf.target)
                .await
                .expect("open session-layer-sqlite");
            store.migrate().await.expect("migrate");
            ours(store)
        }
        Backend::Mysql => {
            let store = session_layer_mysql::MySqlStore::builder()
                .with_table(table)
                .expect("a valid table name")
                .connect(&conf.target)
                .await
                .expect("connect session-layer-mysql");
            store.migrate().await.expect("migrate");
            ours(store)
        }
    }
}

async fn peer_app(conf: &Conf) -> Router {
    use tower_sessions_sqlx_store::sqlx as sqlx08;
    let table = conf.table(Side::Peer);
    match conf.backend {
        Backend::Redis => {
            use tower_sessions_redis_store::fred::prelude::{ClientLike as _, Config};
            let config = Config::from_url(&conf.target).expect("a Redis URL");
            let client =
                tower_sessions_redis_store::fred::clients::Client::new(config, None, None, None);
            client.init().await.expect("connect fred");
            ts::app(tower_sessions_redis_store::RedisStore::new(client))
        }
        Backend::Postgres => {
            let pool = sqlx08::postgres::PgPoolOptions::new()
                .max_connections(10)
                .connect(&conf.target)
                .await
                .expect("connect sqlx 0.8 to PostgreSQL");
            let store = tower_sessions_sqlx_store::PostgresStore::new(pool)
                .with_schema_name("public")
                .expect("a schema name")
                .with_table_name(table)
                .expect("a table name");
            store.migrate().await.expect("migrate");
            ts::app(store)
        }
        Backend::Sqlite => {
            let pool = sqlx08::sqlite::SqlitePoolOptions::new()
                .connect(&format!("sqlite://{}?mode=rwc", conf.target))
                .await
                .expect("open the SQLite file with sqlx 0.8");
            let store = tower_sessions_sqlx_store::SqliteStore::new(pool)
                .with_table_name(table)
                .expect("a table name");
            store.migrate().await.expect("migrate");
            ts::app(store)
        }
        Backend::Mysql => {
            let pool = sqlx08::mysql::MySqlPoolOptions::new()
                .max_connections(10)
                .connect(&conf.target)
                .await
                .expect("connect sqlx 0.8 to MySQL");
            let store = tower_sessions_sqlx_store::MySqlStore::new(pool)
                .with_schema_name("test")
                .expect("a schema name")
                .with_table_name(table)
                .expect("a table name");
            store.migrate().await.expect("migrate");
            ts::app(store)
        }
    }
}

/// What the floor's handler queries.
enum Floor {
    Redis(redis::aio::ConnectionManager, String),
    Postgres(sqlx::PgPool, String),
    Sqlite(sqlx::SqlitePool, String),
    Mysql(sqlx::MySqlPool, String),
}

async fn floor_app(conf: &Conf) -> Router {
    let table = conf.table(Side::Floor);
    let floor = match conf.backend {
        Backend::Redis => {
            use redis::AsyncCommands as _;
            let mut raw = redis::Client::open(conf.target.as_str())
                .expect("a client")
                .get_connection_manager()
                .await
                .expect("connect the floor's client");
            let () = raw.set(&table, "7").await.expect("SET");
            Floor::Redis(raw, table)
        }
        Backend::Postgres => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(10)
                .connect(&conf.target)
                .await
                .expect("connect");
            for sql in [
                format!(
                    "CREATE TABLE IF NOT EXISTS {table} (id BIGINT PRIMARY KEY, v TEXT NOT NULL)"
                ),
                format!("INSERT INTO {table} VALUES (1, '7') ON CONFLICT DO NOTHING"),
            ] {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&pool)
                    .await
                    .expect("the floor table");
            }
            Floor::Postgres(pool, format!("SELECT v FROM {table} WHERE id = $1"))
        }
        Backend::Sqlite => {
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .connect(&format!("sqlite://{}?mode=rwc", conf.target))
                .await
                .expect("open");
            for sql in [
                format!(
                    "CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"
                ),
                format!("INSERT OR IGNORE INTO {table} VALUES (1, '7')"),
            ] {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&pool)
                    .await
                    .expect("the floor table");
            }
            Floor::Sqlite(pool, format!("SELECT v FROM {table} WHERE id = ?"))
        }
        Backend::Mysql => {
            let pool = sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(10)
                .connect(&conf.target)
                .await
                .expect("connect");
            for sql in [
                format!(
                    "CREATE TABLE IF NOT EXISTS {table} (id BIGINT PRIMARY KEY, v TEXT NOT NULL)"
                ),
                format!("INSERT IGNORE INTO {table} VALUES (1, '7')"),
            ] {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&pool)
                    .await
                    .expect("the floor table");
            }
            Floor::Mysql(pool, format!("SELECT v FROM {table} WHERE id = ?"))
        }
    };
    Router::new()
        .route("/floor", get(floor_handler))
        .with_state(Arc::new(floor))
}

async fn floor_handler(State(floor): State<Arc<Floor>>) -> String {
    use sqlx::Row as _;
    match &*floor {
        Floor::Redis(raw, key) => {
            use redis::AsyncCommands as _;
            let value: Option<String> = raw.clone().get(key).await.expect("GET");
            value.unwrap_or_default()
        }
        Floor::Postgres(pool, sql) => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(1i64)
                .fetch_one(pool)
                .await
                .expect("SELECT");
            row.get::<String, _>(0)
        }
        Floor::Sqlite(pool, sql) => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(1i64)
                .fetch_one(pool)
                .await
                .expect("SELECT");
            row.get::<String, _>(0)
        }
        Floor::Mysql(pool, sql) => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(1i64)
                .fetch_one(pool)
                .await
                .expect("SELECT");
            row.get::<String, _>(0)
        }
    }
}

/// Drops this run's tables (the Redis server is private and goes away by itself).
async fn clean_up(conf: &Conf) {
    let ours = conf.table(Side::Ours);
    // This crate's SQL stores keep their schema version in `<table>_migrations`.
    let tables = [
        conf.table(Side::Floor),
        format!("{ours}_migrations"),
        ours,
        conf.table(Side::Peer),
    ];
    let drop = |t: &String| format!("DROP TABLE IF EXISTS {t}");
    match conf.backend {
        Backend::Redis | Backend::Sqlite => {}
        Backend::Postgres => {
            if let Ok(pool) = sqlx::PgPool::connect(&conf.target).await {
                for t in &tables {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop(t)))
                        .execute(&pool)
                        .await;
                }
            }
        }
        Backend::Mysql => {
            if let Ok(pool) = sqlx::MySqlPool::connect(&conf.target).await {
                for t in &tables {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop(t)))
                        .execute(&pool)
                        .await;
                }
            }
        }
    }
}

/// tower-sessions 0.14 (the version its stores are built for), with its defaults, serving
/// the same routes as this crate's app.
mod ts {
    use axum::http::StatusCode;
    use axum::routing::get;
    use axum::Router;
    use tower_sessions_14::{Session, SessionManagerLayer, SessionStore};

    type Result<T> = std::result::Result<T, StatusCode>;

    fn fail<E>(_: E) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    pub(super) fn app<S: SessionStore + Clone>(store: S) -> Router {
        Router::new()
            .route("/setup", get(setup))
            .route("/read", get(read))
            .route("/incr", get(incr))
            .route("/write", get(write))
            .route("/login", get(login))
            .route("/logout", get(logout))
            .layer(SessionManagerLayer::new(store))
    }

    async fn setup(s: Session) -> Result<&'static str> {
        s.insert("n", 7u64).await.map_err(fail)?;
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

// ---------------------------------------------------------------------------------------------
// In process.

async fn send(app: &Router, path: &str, cookie: Option<&HeaderValue>) -> Option<HeaderValue> {
    let uri: Uri = path.parse().expect("a path");
    let res = app
        .clone()
        .oneshot(request(&uri, cookie))
        .await
        .expect("infallible");
    assert!(res.status().is_success(), "{path}: {}", res.status());
    let set = cookie_of(&res);
    let _ = res.into_body().collect().await;
    set
}

/// One timed row: a side of a backend, one case (the floor has none), and its samples
/// (ns per request, one per round).
struct Entry {
    side: Side,
    case: Option<Case>,
    app: Router,
    clock: Shifted,
    /// The sessions the requests carry, one per task.
    sessions: Vec<HeaderValue>,
    /// How far a touch-due row moves its clock before each request.
    step: Duration,
    ns: Vec<f64>,
}

impl Entry {
    fn path(&self) -> &'static str {
        self.case.map_or("/floor", Case::path)
    }

    fn fresh(&self) -> bool {
        self.case.is_some_and(Case::fresh)
    }

    fn due(&self) -> bool {
        self.case == Some(Case::B2Due)
    }
}

async fn entries(conf: &Conf, tasks: usize) -> Vec<Entry> {
    // Past the touch step (60 s) for one task; with 64 tasks a session's next request comes
    // about 64 requests later, so 2 s each puts it past the step without nearing the idle
    // timeout (an hour).
    let step = Duration::from_secs(if tasks == 1 { 61 } else { 2 });
    let mut out = Vec::new();
    let floor = app(conf, Side::Floor, Shifted::default()).await;
    out.push(Entry {
        side: Side::Floor,
        case: None,
        app: floor,
        clock: Shifted::default(),
        sessions: Vec::new(),
        step,
        ns: Vec::new(),
    });
    let make_ours = ours_app(conf).await;
    let peer = app(conf, Side::Peer, Shifted::default()).await;
    for side in [Side::Ours, Side::Peer] {
        for case in Case::ALL {
            let clock = Shifted::default();
            let app = match side {
                Side::Ours => make_ours(clock.clone()).with_state(()),
                _ => peer.clone(),
            };
            let mut sessions = Vec::new();
            if !case.fresh() {
                for _ in 0..tasks {
                    sessions.push(send(&app, "/setup", None).await.expect("a session"));
                }
            }
            out.push(Entry {
                side,
                case: Some(case),
                app,
                clock,
                sessions,
                step,
                ns: Vec::new(),
            });
        }
    }
    out
}

/// The sessions a batch of `n` requests of a sign-in or sign-out row uses, one each.
async fn fresh_sessions(e: &Entry, n: usize) -> Vec<HeaderValue> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(send(&e.app, "/setup", None).await.expect("a session"));
    }
    out
}

/// Runs `per_task` requests on each of `tasks` tasks; returns the wall time they took.
async fn batch(e: &Entry, tasks: usize, per_task: usize) -> Duration {
    let path = e.path();
    let fresh = if e.fresh() {
        Some(fresh_sessions(e, tasks * per_task).await)
    } else {
        None
    };
    let step = e.step;
    let started = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for t in 0..tasks {
        let app = e.app.clone();
        let clock = e.clock.clone();
        let due = e.due();
        let mine: Vec<Option<HeaderValue>> = match &fresh {
            Some(all) => all[t * per_task..(t + 1) * per_task]
                .iter()
                .cloned()
                .map(Some)
                .collect(),
            None => vec![e.sessions.get(t).cloned(); per_task],
        };
        let run = async move {
            for cookie in &mine {
                if due {
                    clock.advance(step);
                }
                send(&app, path, cookie.as_ref()).await;
            }
        };
        if tasks == 1 {
            run.await;
        } else {
            handles.push(tokio::spawn(run));
        }
    }
    for h in handles {
        h.await.expect("a task");
    }
    started.elapsed()
}

/// What one request of a row costs the backend.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    /// Redis: commands the server ran, scripts' own commands included.
    commands: f64,
    /// Redis: commands clients sent (each one round trip unless pipelined).
    round_trips: f64,
    /// Redis: the server's CPU time per request, µs.
    server_us: f64,
    /// SQL: statements sqlx reported.
    statements: f64,
    /// SQL: transactions ended (`COMMIT`/`ROLLBACK`) as sqlx reported them.
    transactions: f64,
}

/// A raw connection to the private Redis, for `CONFIG RESETSTAT` and `INFO commandstats`.
struct Admin(BufReader<TcpStream>);

impl Admin {
    fn reset(&mut self) {
        self.0
            .get_mut()
            .write_all(b"CONFIG RESETSTAT\r\n")
            .expect("send");
        let mut line = String::new();
        self.0.read_line(&mut line).expect("a reply");
        assert!(line.starts_with("+OK"), "CONFIG RESETSTAT: {line}");
    }

    /// The text of `INFO <section>`.
    fn info(&mut self, section: &str) -> String {
        self.0
            .get_mut()
            .write_all(format!("INFO {section}\r\n").as_bytes())
            .expect("send");
        let mut line = String::new();
        self.0.read_line(&mut line).expect("a reply");
        let len: usize = line
            .trim()
            .trim_start_matches('$')
            .parse()
            .expect("a bulk reply");
        let mut body = vec![0; len + 2];
        self.0.read_exact(&mut body).expect("the body");
        String::from_utf8_lossy(&body).into_owned()
    }

    /// The CPU time the server has used, in µs (user and system, all its threads).
    fn cpu_us(&mut self) -> f64 {
        self.info("cpu")
            .lines()
            .filter(|l| l.starts_with("used_cpu_sys:") || l.starts_with("used_cpu_user:"))
            .filter_map(|l| l.split_once(':')?.1.trim().parse::<f64>().ok())
            .sum::<f64>()
            * 1e6
    }

    /// Calls since the last reset, leaving out the bench's own commands.
    fn calls(&mut self) -> u64 {
        self.info("commandstats")
            .lines()
            .filter_map(|l| l.strip_prefix("cmdstat_"))
            .filter(|l| {
                !["info:", "config", "echo:", "monitor:"]
                    .iter()
                    .any(|own| l.starts_with(own))
            })
            .filter_map(|l| {
                l.split_once("calls=")?
                    .1
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }
}

/// Counts what `n` requests of each entry cost the backend. With `watch`, Redis round trips
/// only (a `MONITOR` feed, which itself costs the server CPU per command); without, the rest.
async fn count(
    conf: &Conf,
    entries: &[Entry],
    redis_port: Option<u16>,
    n: usize,
    watch: bool,
) -> Vec<Counts> {
    let mut admin = redis_port.map(|p| {
        Admin(BufReader::new(
            TcpStream::connect(("127.0.0.1", p)).expect("connect"),
        ))
    });
    let mut monitor = redis_port.filter(|_| watch).map(Monitor::start);
    let mut out = Vec::new();
    for e in entries {
        // Sign-in and sign-out need their sessions made before counting starts.
        let fresh = if e.fresh() {
            fresh_sessions(e, n).await
        } else {
            Vec::new()
        };
        if let Some(a) = &mut admin {
            a.reset();
        }
        let cpu_before = admin.as_mut().map_or(0.0, Admin::cpu_us);
        if let Some(m) = &mut monitor {
            m.sent();
        }
        STATEMENTS.store(0, Ordering::Relaxed);
        ENDS.store(0, Ordering::Relaxed);
        BEGINS.store(0, Ordering::Relaxed);
        COUNTING.store(conf.backend.sql(), Ordering::Relaxed);
        for i in 0..n {
            if e.due() {
                e.clock.advance(e.step);
            }
            let cookie = if e.fresh() {
                fresh.get(i)
            } else {
                e.sessions.first()
            };
            send(&e.app, e.path(), cookie).await;
        }
        COUNTING.store(false, Ordering::Relaxed);
        let per = |x: u64| x as f64 / n as f64;
        // The window closes before `INFO`, which MONITOR would see.
        let round_trips = monitor.as_mut().map_or(0.0, |m| per(m.sent() as u64));
        let server_us = admin
            .as_mut()
            .map_or(0.0, |a| (a.cpu_us() - cpu_before) / n as f64);
        out.push(Counts {
            server_us,
            commands: admin.as_mut().map_or(0.0, |a| per(a.calls())),
            round_trips,
            // A transaction whose `BEGIN` sqlx did not report (PostgreSQL) still sent one.
            statements: per(STATEMENTS.load(Ordering::Relaxed)
                + ENDS
                    .load(Ordering::Relaxed)
                    .saturating_sub(BEGINS.load(Ordering::Relaxed))),
            transactions: per(ENDS
                .load(Ordering::Relaxed)
                .max(BEGINS.load(Ordering::Relaxed))),
        });
    }
    out
}

/// The figures of one backend.
#[derive(Default)]
struct Figures {
    counts: HashMap<(Side, Option<Case>), Counts>,
    /// µs per request, per round: (mode, side, case).
    times: HashMap<(&'static str, Side, Option<Case>), Vec<f64>>,
    /// Requests per second over HTTP, per round.
    http: HashMap<(Side, Option<Case>), Vec<f64>>,
}

fn in_process(conf: &Conf, opts: &Options, concurrent: bool, figures: &mut Figures) {
    let (rt, tasks, mode) = if concurrent {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build();
        (rt, 64, "2x64")
    } else {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        (rt, 1, "single")
    };
    let rt = rt.expect("a runtime");
    let redis_port = (conf.backend == Backend::Redis)
        .then(|| conf.target.rsplit(':').next()?.parse::<u16>().ok())
        .flatten();
    rt.block_on(async {
        let mut entries = entries(conf, tasks).await;
        let (warm, counted, per_task, rounds) = if opts.smoke {
            (2, 3, if concurrent { 1 } else { 5 }, 1)
        } else {
            (50, 100, if concurrent { 10 } else { 300 }, 3)
        };
        for e in &entries {
            batch(e, 1, warm).await;
        }
        if !concurrent {
            let counts = count(conf, &entries, redis_port, counted, false).await;
            let trips = match redis_port {
                Some(_) => count(conf, &entries, redis_port, counted, true).await,
                None => vec![Counts::default(); entries.len()],
            };
            for ((e, mut c), t) in entries.iter().zip(counts).zip(trips) {
                c.round_trips = t.round_trips;
                figures.counts.insert((e.side, e.case), c);
            }
        }
        let n = entries.len();
        for round in 0..rounds {
            for k in 0..n {
                let e = &mut entries[(round + k) % n];
                let took = batch(e, tasks, per_task).await;
                e.ns.push(took.as_nanos() as f64 / (tasks * per_task) as f64);
            }
        }
        for e in entries {
            let us = e.ns.iter().map(|n| n / 1e3).collect();
            figures.times.insert((mode, e.side, e.case), us);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Over HTTP.

/// Sessions each server makes at start, one per wrk connection.
const CONNECTIONS: usize = 32;

/// The `serve-store` mode: builds one side's app, makes its sessions, prints their cookies
/// and the port, then serves until killed.
pub(crate) fn serve(args: &[String]) {
    let (Some(backend), Some(side), Some(tag), Some(target)) = (
        args.first().and_then(|b| Backend::from_key(b)),
        args.get(1).and_then(|s| Side::from_key(s)),
        args.get(2),
        args.get(3),
    ) else {
        eprintln!("usage: serve-store <redis|postgres|sqlite|mysql> <floor|sl|ts> <tag> <url>");
        std::process::exit(2)
    };
    let conf = Conf {
        backend,
        tag: tag.clone(),
        target: target.clone(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let app = app(&conf, side, Shifted::default()).await;
        if side != Side::Floor {
            for _ in 0..CONNECTIONS {
                let cookie = send(&app, "/setup", None).await.expect("a session");
                println!("cookie {}", cookie.to_str().expect("ASCII"));
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        println!("port {}", listener.local_addr().expect("bound").port());
        println!("ready");
        std::io::stdout().flush().expect("stdout");
        axum::serve(listener, app).await.expect("serving");
    });
}

struct HttpServer {
    child: Child,
    port: u16,
    cookies: Vec<String>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(conf: &Conf, side: Side) -> HttpServer {
    let exe = std::env::current_exe().expect("the bench binary's path");
    let mut child = Command::new(exe)
        .args(["serve-store", conf.backend.key(), side.key(), &conf.tag])
        .arg(&conf.target)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the server process starts");
    let mut cookies = Vec::new();
    let mut port = 0;
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("server output");
        if let Some(c) = line.strip_prefix("cookie ") {
            cookies.push(c.to_owned());
        } else if let Some(p) = line.strip_prefix("port ") {
            port = p.parse().expect("a port");
        } else if line == "ready" {
            break;
        }
    }
    assert!(
        port != 0,
        "the {} {} server did not start",
        conf.backend.key(),
        side.key()
    );
    HttpServer {
        child,
        port,
        cookies,
    }
}

/// `wrk -t1 -c32` on `path`, cycling through `cookies`; returns requests per second.
fn wrk(port: u16, path: &str, cookies: &[String], secs: u64) -> f64 {
    let list: Vec<String> = cookies
        .iter()
        .map(|c| format!("wrk.format(\"GET\", \"{path}\", {{[\"Cookie\"] = \"{c}\"}})"))
        .collect();
    let script = std::env::temp_dir().join(format!(
        "session-layer-bench-stores-{}-{port}.lua",
        std::process::id()
    ));
    let lua = format!(
        "local reqs = {{}}\nlocal i = 0\ninit = function(args)\n  reqs = {{ {} }}\nend\n\
         request = function()\n  i = i % #reqs + 1\n  return reqs[i]\nend\n",
        list.join(",\n    ")
    );
    std::fs::write(&script, lua).expect("the wrk script");
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{CONNECTIONS}"),
            &format!("-d{secs}s"),
            "-s",
        ])
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("wrk runs");
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("Non-2xx"),
        "{path} answered errors under load:\n{text}"
    );
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"))
}

fn over_http(conf: &Conf, opts: &Options, figures: &mut Figures) {
    let (rounds, secs) = if opts.smoke {
        (1, 1)
    } else {
        (3, opts.http_secs)
    };
    let floor = start(conf, Side::Floor);
    let ours = start(conf, Side::Ours);
    let peer = start(conf, Side::Peer);
    // The floor gets this crate's cookies: the same requests, whether or not it reads them.
    let floor_cookies = ours.cookies.clone();
    if !opts.smoke {
        wrk(floor.port, "/floor", &floor_cookies, 1);
        wrk(ours.port, "/read", &ours.cookies, 1);
        wrk(peer.port, "/read", &peer.cookies, 1);
    }
    for round in 0..rounds {
        let rps = wrk(floor.port, "/floor", &floor_cookies, secs);
        figures
            .http
            .entry((Side::Floor, None))
            .or_default()
            .push(rps);
        for case in Case::HTTP {
            let mut pair = [(Side::Ours, &ours), (Side::Peer, &peer)];
            if round % 2 == 1 {
                pair.reverse();
            }
            for (side, server) in pair {
                let rps = wrk(server.port, case.path(), &server.cookies, secs);
                figures
                    .http
                    .entry((side, Some(case)))
                    .or_default()
                    .push(rps);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The command.

/// Runs every backend in `only` (all when `None`); returns one table per backend and adds
/// the targets to `sink`.
pub(crate) fn run(opts: &Options, only: Option<&[String]>, sink: &mut Sink) -> Vec<Table> {
    install_counter();
    let http = crate::installed("wrk", "-v");
    let tag = format!("{}", std::process::id());
    let mut tables = Vec::new();
    for backend in Backend::ALL {
        if only.is_some_and(|o| !o.iter().any(|k| k == backend.key())) {
            continue;
        }
        // Kept alive for the whole backend; dropped (killed, files removed) after it.
        let mut redis = None;
        let mut dir = None;
        let target = match backend {
            Backend::Redis => {
                let Some(server) = RedisServer::start() else {
                    eprintln!("stores: could not start redis-server; Redis skipped");
                    continue;
                };
                let url = server.url();
                redis = Some(server);
                url
            }
            Backend::Postgres => pg_url(),
            Backend::Mysql => mysql_url(),
            Backend::Sqlite => {
                let d =
                    std::env::temp_dir().join(format!("sl-bench-sqlite-{}", std::process::id()));
                std::fs::create_dir_all(&d).expect("a temporary directory");
                let file = d.join("bench.db");
                dir = Some(d);
                file.display().to_string()
            }
        };
        let conf = Conf {
            backend,
            tag: tag.clone(),
            target,
        };
        let mut figures = Figures::default();
        eprintln!("stores: {} in process, single-threaded", backend.name());
        in_process(&conf, opts, false, &mut figures);
        eprintln!(
            "stores: {} in process, 2 workers × 64 tasks",
            backend.name()
        );
        in_process(&conf, opts, true, &mut figures);
        if http {
            eprintln!("stores: {} over HTTP", backend.name());
            over_http(&conf, opts, &mut figures);
        }
        let table = render(&conf, &figures, http, opts, sink);
        println!("{}", table.render());
        tables.push(table);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(clean_up(&conf));
        drop(redis);
        if let Some(d) = dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    tables
}

fn ratio(a: &[f64], b: &[f64]) -> Option<Stat> {
    let r: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
    Stat::of(&r)
}

fn show(s: Option<Stat>, digits: usize) -> String {
    s.map_or_else(String::new, |s| s.show(digits))
}

fn render(conf: &Conf, f: &Figures, http: bool, opts: &Options, sink: &mut Sink) -> Table {
    let b = conf.backend;
    let counts_header: &[&str] = if b.sql() {
        &["statements/req", "transactions/req"]
    } else {
        &["round trips/req", "commands/req", "server CPU µs/req"]
    };
    let mut table = Table::new(
        format!(
            "{}: this crate's store, tower-sessions' store and the floor",
            b.name()
        ),
        &[
            &["case", "store"][..],
            counts_header,
            &[
                "1 thread µs/req",
                "÷ floor",
                "÷ peer",
                "2×64 µs/req",
                "÷ floor",
                "÷ peer",
                "HTTP req/s",
                "× floor",
                "× peer",
            ],
        ]
        .concat(),
    );
    let counts = |side, case| {
        let c: Counts = f.counts.get(&(side, case)).copied().unwrap_or_default();
        if b.sql() {
            let tx = if b == Backend::Sqlite {
                "not reported".to_owned()
            } else {
                format!("{:.2}", c.transactions)
            };
            vec![format!("{:.2}", c.statements), tx]
        } else {
            vec![
                format!("{:.2}", c.round_trips),
                format!("{:.2}", c.commands),
                format!("{:.1}", c.server_us),
            ]
        }
    };
    let times = |mode: &'static str, side, case| f.times.get(&(mode, side, case)).cloned();
    let floor_of = |mode| times(mode, Side::Floor, None).unwrap_or_default();
    let fl = counts(Side::Floor, None);
    let mut floor_row = vec!["floor".to_owned(), b.side_name(Side::Floor).to_owned()];
    floor_row.extend(fl);
    for mode in ["single", "2x64"] {
        floor_row.push(show(Stat::of(&floor_of(mode)), 1));
        floor_row.extend([String::new(), String::new()]);
    }
    let http_floor = f
        .http
        .get(&(Side::Floor, None))
        .cloned()
        .unwrap_or_default();
    floor_row.push(show(Stat::of(&http_floor), 0));
    floor_row.extend([String::new(), String::new()]);
    table.row(floor_row);

    let mut behind: Vec<String> = Vec::new();
    let mut compared = 0;
    for case in Case::ALL {
        for side in [Side::Ours, Side::Peer] {
            let mut row = vec![case.label().to_owned(), b.side_name(side).to_owned()];
            row.extend(counts(side, Some(case)));
            for mode in ["single", "2x64"] {
                let mine = times(mode, side, Some(case)).unwrap_or_default();
                let peer = times(mode, Side::Peer, Some(case)).unwrap_or_default();
                let vs_floor = ratio(&mine, &floor_of(mode));
                let vs_peer = (side == Side::Ours).then(|| ratio(&mine, &peer)).flatten();
                row.push(show(Stat::of(&mine), 1));
                row.push(show(vs_floor, 2));
                row.push(show(vs_peer, 2));
                let key = format!("stores-{}-{mode}", b.key());
                if let Some(s) = Stat::of(&mine) {
                    sink.csv
                        .add(&key, case.label(), side.key(), "time", "us/req", s);
                }
                if let Some(v) = vs_peer {
                    compared += 1;
                    if v.median >= 1.0 {
                        behind.push(format!("{} ({})", case.label(), mode));
                    }
                }
                if let (Side::Ours, Case::B2, "single", Some(v), Backend::Redis) =
                    (side, case, mode, vs_floor, b)
                {
                    sink.target(
                        "Redis: read (B2) time ÷ raw-GET floor, in process",
                        "≤ 1.2",
                        v.show(2),
                        Some(v.median <= 1.2),
                    );
                }
            }
            let mine = f.http.get(&(side, Some(case))).cloned().unwrap_or_default();
            let peer = f
                .http
                .get(&(Side::Peer, Some(case)))
                .cloned()
                .unwrap_or_default();
            let vs_floor = ratio(&mine, &http_floor);
            let vs_peer = (side == Side::Ours).then(|| ratio(&mine, &peer)).flatten();
            row.push(show(Stat::of(&mine), 0));
            row.push(show(vs_floor, 2));
            row.push(show(vs_peer, 2));
            if let Some(v) = vs_peer {
                compared += 1;
                if v.median <= 1.0 {
                    behind.push(format!("{} (HTTP)", case.label()));
                }
            }
            if let (Side::Ours, Case::B2, Some(v), Backend::Redis) = (side, case, vs_floor, b) {
                sink.target(
                    "Redis: read (B2) throughput ÷ raw-GET floor's, over HTTP",
                    "≥ 0.9",
                    v.show(2),
                    Some(v.median >= 0.9),
                );
            }
            table.row(row);
        }
    }
    if compared > 0 {
        sink.target(
            &format!("{}: ahead of tower-sessions' store in every case", b.name()),
            "every case and mode",
            if behind.is_empty() {
                format!("ahead in {compared} of {compared}")
            } else {
                format!("behind in {}", behind.join(", "))
            },
            Some(behind.is_empty()),
        );
    }
    count_targets(b, f, sink);

    let (rounds, secs) = if opts.smoke {
        (1, 1)
    } else {
        (3, opts.http_secs)
    };
    table.notes.push(format!(
        "Peers: {PEER_VERSIONS}, with their defaults (tower-sessions never writes on a read \
         with its default expiry, so its \"touch due\" row is a plain read). Each app has its \
         own table (key prefix on Redis) on the same server; SQL pools hold 10 connections \
         (SQLite: sqlx's default), Redis clients one multiplexed connection each. Time: \
         wall-clock per request over {rounds} interleaved rounds, median [min–max]; ratios \
         are taken round by round (÷ peer < 1: this crate is faster; × over HTTP > 1: more \
         requests per second)."
    ));
    if http {
        table.notes.push(format!(
            "HTTP: each app served by its own process (2 tokio workers), `wrk -t1 -c{CONNECTIONS} \
             -d{secs}s`, each connection cycling through {CONNECTIONS} sessions; sign-in, \
             sign-out and touch-due rows are in process only (each request needs a new \
             session or a moved clock)."
        ));
    } else {
        table.skipped_without("wrk");
    }
    table.notes.push(if b.sql() {
        "Statements: sqlx's per-statement events (target `sqlx::query`) averaged over the \
         counted requests, `BEGIN` and `COMMIT` included. sqlx sends PostgreSQL's `BEGIN` \
         outside that path, so there each transaction's end adds its `BEGIN`; it sends \
         SQLite's `BEGIN` and `COMMIT` outside it too, so SQLite's figures leave out \
         transaction control and its transactions are not reported."
            .to_owned()
    } else {
        "Round trips: commands clients sent (`MONITOR`, leaving out those scripts run inside \
         Redis); commands: every command Redis ran, scripts' included (`INFO commandstats` \
         after `CONFIG RESETSTAT` on a private redis-server); server CPU: the growth of the \
         server's `used_cpu_user` and `used_cpu_sys` over the counted requests, counted \
         apart from the round trips (`MONITOR` costs the server CPU per command)."
            .to_owned()
    });
    table
}

fn count_targets(b: Backend, f: &Figures, sink: &mut Sink) {
    let ours = |case| f.counts.get(&(Side::Ours, Some(case))).copied();
    match b {
        Backend::Redis => {
            for (case, goal) in [
                (Case::B2, 1.0),
                (Case::B2Due, 1.0),
                (Case::B3, 2.0),
                (Case::B4, 1.0),
                (Case::Login, 2.0),
                (Case::Logout, 1.0),
            ] {
                if let Some(c) = ours(case) {
                    sink.target(
                        &format!("Redis: {} round trips", case.label()),
                        &format!("≤ {goal}"),
                        format!("{:.2}", c.round_trips),
                        Some(c.round_trips <= goal + 1e-9),
                    );
                }
            }
        }
        Backend::Postgres => {
            for case in Case::ALL {
                if let Some(c) = ours(case) {
                    sink.target(
                        &format!("PostgreSQL: {} statements", case.label()),
                        "= 1",
                        format!("{:.2}", c.statements),
                        Some(c.statements <= 1.0 + 1e-9),
                    );
                }
            }
        }
        Backend::Mysql | Backend::Sqlite => {
            for case in Case::ALL {
                if let Some(c) = ours(case) {
                    let (measured, met) = if b == Backend::Mysql {
                        (
                            format!(
                                "{:.2} transactions, {:.2} statements",
                                c.transactions, c.statements
                            ),
                            Some(c.transactions <= 1.0 + 1e-9),
                        )
                    } else {
                        (
                            format!("{:.2} statements (transactions not reported)", c.statements),
                            None,
                        )
                    };
                    sink.target(
                        &format!("{}: {} in one short transaction", b.name(), case.label()),
                        "≤ 1 transaction",
                        measured,
                        met,
                    );
                }
            }
        }
    }
}
