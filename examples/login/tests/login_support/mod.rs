//! Runs the login example's app in-process on a loopback port, and records what reached it.
#![allow(dead_code)]

pub(crate) use session_layer_example_login as app;

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;

use app::config::Config;
use app::users::Users;

/// One non-GET request as it reached the app, before any middleware of the app saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    /// Whether it carried a `Cookie` header at all.
    pub(crate) had_cookie: bool,
    pub(crate) fetch_site: Option<String>,
    pub(crate) status: u16,
}

/// A running app.
pub(crate) struct Served {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub(crate) base: String,
    pub(crate) port: u16,
    pub(crate) users: Users,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Served {
    /// The non-GET requests so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Serves the app as `config` describes (its address and store are ignored: a free loopback
/// port and a fresh `MemoryStore`).
pub(crate) async fn serve(config: Config) -> Served {
    let store = app::open_store("memory").await.unwrap();
    serve_with(config, store, Users::demo()).await
}

/// Serves the app as `config` describes, on `store` and `users` (the address and store of
/// `config` are ignored).
pub(crate) async fn serve_with(
    config: Config,
    store: Arc<dyn session_layer::SessionStore>,
    users: Users,
) -> Served {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let router = app::router(&config, store, users.clone())
        .unwrap()
        .layer(middleware::from_fn_with_state(seen.clone(), record));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        app::serve(listener, router, std::future::pending())
            .await
            .unwrap();
    });
    Served {
        base: format!("http://127.0.0.1:{port}"),
        port,
        users,
        seen,
    }
}

async fn record(State(seen): State<Arc<Mutex<Vec<Seen>>>>, req: Request, next: Next) -> Response {
    if req.method() == axum::http::Method::GET {
        return next.run(req).await;
    }
    let mut entry = Seen {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        had_cookie: req.headers().contains_key("cookie"),
        fetch_site: req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        status: 0,
    };
    let res = next.run(req).await;
    entry.status = res.status().as_u16();
    seen.lock().unwrap().push(entry);
    res
}

/// A client that keeps cookies and follows redirects, like a browser.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

/// Signs `user` in through the form, asking to go on to the account page: the page it
/// lands on, after checking it is that page.
pub(crate) async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
) -> String {
    let res = client
        .post(format!("{base}/login"))
        .form(&[
            ("username", user),
            ("password", password),
            ("next", "/account"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        reqwest::StatusCode::OK,
        "sign-in as {user} failed"
    );
    assert_eq!(res.url().path(), "/account");
    res.text().await.unwrap()
}
