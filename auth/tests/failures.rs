//! A session store that fails is an error response, never an anonymous request; request
//! paths that name another site never end up in a `next`.

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::Router;
use common::{get_with_cookie, layer, serve, skip, start, unique_prefix, Backend, ALICE_PASSWORD};
use session_layer::MemoryStore;
use session_layer_auth::{login_required, AuthManagerLayer};

/// A `redis-server` of this test's own on a free loopback port, killed when dropped.
struct RedisServer {
    port: u16,
    child: Child,
}

impl RedisServer {
    fn start() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = match Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => return skip(&format!("cannot start redis-server ({e})")),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self { port, child })
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_while_loading_the_user_is_an_error_response() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store =
        session_layer_redis::RedisStore::builder(format!("redis://127.0.0.1:{}", server.port))
            .with_key_prefix(unique_prefix())
            .with_command_timeout(Duration::from_secs(1))
            .with_connect_timeout(Duration::from_secs(1))
            .connect()
            .await
            .expect("connect to the private redis-server");
    let app = start(layer(store)).await;
    let browser = app.browser();
    browser.sign_in("alice", ALICE_PASSWORD).await;
    assert_eq!(browser.whoami().await, "alice");
    let cookie = browser.cookie().unwrap();

    server.kill();
    for path in ["/whoami", "/account", "/api/me", "/me", "/admin", "/beta"] {
        let res = get_with_cookie(app.addr, path, Some(&cookie)).await;
        assert!(
            res.status.is_server_error(),
            "{path} with the store down: {res:?}"
        );
        assert_eq!(res.location, None, "{path}: not sent to sign in");
        assert_ne!(res.body, "anonymous", "{path}");
    }
}

#[tokio::test]
async fn request_paths_naming_another_site_never_become_a_next() {
    let backend = Backend::open("sqlite::memory:").await.unwrap();
    // Every path reaches the guard, as with a guarded fallback.
    let app = Router::new()
        .fallback(|| async { "a page" })
        .layer(login_required!(Backend, login_url = "/login"))
        .layer(AuthManagerLayer::new(backend))
        .layer(layer(MemoryStore::default()));
    let addr = serve(app).await;
    for evil in [
        "//evil.example/x",
        "///evil.example",
        "/%5Cevil.example",
        "/%5cevil.example/x",
        "/%2F%2Fevil.example",
        "/%2F/evil.example",
        "/%252F%252Fevil.example",
    ] {
        let res = get_with_cookie(addr, evil, None).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{evil}");
        assert_eq!(res.location.as_deref(), Some("/login"), "{evil}");
    }
    let res = get_with_cookie(addr, "/fine/page?x=1", None).await;
    assert_eq!(
        res.location.as_deref(),
        Some("/login?next=/fine/page%3Fx%3D1")
    );
}
