//! What the Redis tests share: private `redis-server`s and clusters they start and stop, the
//! shared server at `REDIS_URL`, and a small axum app with a cookie-handling client.
#![allow(dead_code)]

pub(crate) mod replicas;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use session_layer::{Session, SessionError, SessionLayer, DEV_COOKIE_NAME};
use session_layer_redis::{RedisStore, RedisStoreBuilder};

/// Skips a test outside CI (after saying why) and fails it in CI, where every server the
/// tests need must be there.
pub(crate) fn skip<T>(reason: &str) -> Option<T> {
    if session_layer::testing::in_ci() {
        panic!("CI=true but {reason}");
    }
    eprintln!("skipped: {reason}");
    None
}

/// The shared server of `REDIS_URL` (default `redis://127.0.0.1:6379`), under a test prefix.
pub(crate) async fn shared_store() -> Option<RedisStore> {
    shared_store_with(|b| b).await
}

/// [`shared_store`], with more settings.
pub(crate) async fn shared_store_with(
    settings: impl FnOnce(RedisStoreBuilder) -> RedisStoreBuilder,
) -> Option<RedisStore> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    match settings(RedisStore::builder(url.as_str()).with_key_prefix("session-layer-test:"))
        .connect()
        .await
    {
        Ok(store) => Some(store),
        Err(e) => skip(&format!("no Redis at REDIS_URL or 127.0.0.1:6379 ({e})")),
    }
}

/// A loopback port nobody listens on; with `bus`, port + 10000 is free too (a cluster
/// node's bus port).
fn free_port(bus: bool) -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().unwrap().port();
        if !bus {
            return port;
        }
        if port <= 55_535 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn scratch_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "session-layer-redis-{what}-{}-{}",
        std::process::id(),
        free_port(false)
    ));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// A `redis-server` this test started on a free loopback port, killed when dropped.
pub(crate) struct RedisServer {
    pub(crate) port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a private server, or skips (outside CI) if `redis-server` is not installed.
    pub(crate) fn start() -> Option<Self> {
        Self::start_with(free_port(false), Vec::new())
    }

    /// Starts a private server that keeps every acknowledged write on disk before it
    /// answers (`appendfsync always`), so a killed and restarted server still holds them.
    pub(crate) fn start_durable() -> Option<Self> {
        let extra = ["--appendonly", "yes", "--appendfsync", "always"];
        Self::start_with(free_port(false), extra.map(String::from).to_vec())
    }

    /// Starts a private server with these extra `redis-server` arguments.
    pub(crate) fn start_with_args(args: &[&str]) -> Option<Self> {
        Self::start_with(
            free_port(false),
            args.iter().map(|a| (*a).to_owned()).collect(),
        )
    }

    fn start_with(port: u16, extra: Vec<String>) -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            return skip("redis-server is not installed");
        }
        let mut server = Self {
            port,
            dir: scratch_dir("server"),
            extra,
            child: None,
        };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--logfile", ""])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut buf).is_ok()
            && &buf == b"+PONG\r\n"
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A store on this server with a short command timeout, so fault tests run fast.
    pub(crate) async fn store(&self) -> RedisStore {
        RedisStore::builder(self.url())
            .with_command_timeout(Duration::from_millis(300))
            .with_connect_timeout(Duration::from_millis(300))
            .connect()
            .await
            .expect("connect to the private redis-server")
    }

    /// A plain client for inspecting what the store wrote.
    pub(crate) async fn inspector(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("connect an inspecting client")
    }

    /// Kills the server (its data is gone: it keeps none on disk).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub(crate) fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub(crate) fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub(crate) fn resume(&self) {
        self.signal("-CONT");
    }

    /// Runs `redis-cli` against this server and returns what it printed.
    pub(crate) fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A three-master Redis Cluster on free loopback ports, stopped when dropped.
pub(crate) struct RedisCluster {
    pub(crate) nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub(crate) fn start() -> Option<Self> {
        let conf = scratch_dir("cluster");
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let port = free_port(true);
            let file = conf.join(format!("nodes-{port}.conf"));
            let extra = vec![
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-config-file".into(),
                file.to_string_lossy().into_owned(),
            ];
            nodes.push(RedisServer::start_with(port, extra)?);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .arg("--cluster-yes")
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if nodes
                .iter()
                .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
            {
                break;
            }
            assert!(Instant::now() < deadline, "the cluster never became ok");
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = std::fs::remove_dir_all(&conf);
        Some(Self { nodes })
    }

    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

/// The test app: every route a test needs, behind a layer over `store` that works over
/// plain http (cookie `session`, no `Secure`).
pub(crate) fn app(store: RedisStore) -> Router {
    let layer = SessionLayer::builder(store)
        .with_plain_http_for_development()
        .build()
        .expect("a valid layer");
    routes().layer(layer)
}

/// The test app's routes, for tests that build their own layer.
pub(crate) fn routes() -> Router {
    Router::new()
        .route("/count", get(count))
        .route("/peek", get(peek))
        .route("/get/{key}", get(get_key))
        .route("/set/{key}/{value}", post(set_key))
        .route("/login/{user}", post(login))
        .route("/login/{user}/note/{value}", post(login_with_note))
        .route("/whoami", get(whoami))
        .route("/sessions", get(sessions))
        .route("/revoke-others", post(revoke_others))
        .route("/logout", post(logout))
}

async fn count(session: Session) -> Result<String, SessionError> {
    let n: u64 = session.get("n").await?.unwrap_or(0);
    session.insert("n", n + 1).await?;
    Ok((n + 1).to_string())
}

async fn peek(session: Session) -> Result<String, SessionError> {
    let n: Option<u64> = session.get("n").await?;
    Ok(n.map_or_else(|| "none".into(), |n| n.to_string()))
}

async fn get_key(session: Session, Path(key): Path<String>) -> Result<String, SessionError> {
    let value: Option<String> = session.get(&key).await?;
    Ok(value.unwrap_or_else(|| "none".into()))
}

async fn set_key(
    session: Session,
    Path((key, value)): Path<(String, String)>,
) -> Result<&'static str, SessionError> {
    session.insert(&key, value).await?;
    Ok("ok")
}

async fn login(session: Session, Path(user): Path<String>) -> &'static str {
    session.rotate().await;
    session.set_user(Some(user)).await;
    "ok"
}

/// A sign-in that also writes, without reading first.
async fn login_with_note(
    session: Session,
    Path((user, note)): Path<(String, String)>,
) -> Result<&'static str, SessionError> {
    session.rotate().await;
    session.set_user(Some(user)).await;
    session.insert("note", note).await?;
    Ok("ok")
}

async fn whoami(session: Session) -> Result<String, SessionError> {
    Ok(session.user().await?.unwrap_or_else(|| "anonymous".into()))
}

async fn sessions(session: Session) -> Result<String, SessionError> {
    Ok(session.user_sessions().await?.len().to_string())
}

async fn revoke_others(session: Session) -> Result<String, SessionError> {
    Ok(session.revoke_others().await?.to_string())
}

async fn logout(session: Session) -> &'static str {
    session.destroy().await;
    "bye"
}

/// Serves `app` on a free loopback port until the test's runtime ends.
pub(crate) async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the app");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve the app");
    });
    addr
}

/// One response, as a browser's cookie jar would see it. `Debug` never shows the cookie's
/// value, so a failing assertion cannot print one.
pub(crate) struct Reply {
    pub(crate) status: u16,
    /// The session cookie the response set: `Some("")` for a removal, `None` if untouched.
    pub(crate) cookie: Option<String>,
    pub(crate) body: String,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cookie = match self.cookie.as_deref() {
            None => "untouched",
            Some("") => "removed",
            Some(_) => "set (REDACTED)",
        };
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("cookie", &cookie)
            .field("body", &self.body)
            .finish()
    }
}

/// An HTTP client that sends the session cookie it is told to, by hand.
#[derive(Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(512)
                .build()
                .unwrap(),
            base: format!("http://{addr}"),
        }
    }

    pub(crate) async fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        self.send(self.http.get(format!("{}{path}", self.base)), cookie)
            .await
    }

    pub(crate) async fn post(&self, path: &str, cookie: Option<&str>) -> Reply {
        self.send(self.http.post(format!("{}{path}", self.base)), cookie)
            .await
    }

    async fn send(&self, mut request: reqwest::RequestBuilder, cookie: Option<&str>) -> Reply {
        if let Some(value) = cookie {
            request = request.header("cookie", format!("{DEV_COOKIE_NAME}={value}"));
        }
        let response = request.send().await.expect("the app answers");
        let status = response.status().as_u16();
        let prefix = format!("{DEV_COOKIE_NAME}=");
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix(prefix.as_str()))
            .map(|rest| rest.split(';').next().unwrap_or_default().to_owned());
        let body = response.text().await.unwrap_or_default();
        Reply {
            status,
            cookie,
            body,
        }
    }
}
