//! What a user sees over real HTTP on loopback, with a client that keeps a cookie jar.

mod common;

use std::sync::{Arc, Mutex};

use reqwest::header::{CACHE_CONTROL, SET_COOKIE, VARY};
use session_layer::{MemoryStore, SessionLayer};

/// Serves the test routes on a free loopback port; returns the base URL.
async fn serve(layer: SessionLayer) -> String {
    let app = common::routes(common::Gates::default()).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn dev_layer() -> SessionLayer {
    SessionLayer::builder(MemoryStore::default())
        .with_plain_http_for_development()
        .build()
        .unwrap()
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_browser_like_client_keeps_its_session_across_requests() {
    let base = serve(dev_layer()).await;
    let client = browser();
    for expected in 1..=3 {
        let res = client.post(format!("{base}/incr")).send().await.unwrap();
        assert_eq!(res.text().await.unwrap(), expected.to_string());
    }
    // Another client has its own session.
    let other = browser();
    let res = other.post(format!("{base}/incr")).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "1");
}

#[tokio::test]
async fn sign_in_rotates_and_sign_out_ends_the_session_over_http() {
    let base = serve(dev_layer()).await;
    let client = reqwest::Client::new();
    let cookie_of = |res: &reqwest::Response| {
        let raw = res.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        cookie::Cookie::parse(raw).unwrap().value().to_owned()
    };
    let res = client
        .post(format!("{base}/set/cart/apple"))
        .send()
        .await
        .unwrap();
    let before = cookie_of(&res);
    let res = client
        .post(format!("{base}/login/alice"))
        .header("cookie", format!("session={before}"))
        .send()
        .await
        .unwrap();
    let after = cookie_of(&res);
    assert_ne!(before, after);
    let whoami = |id: String| {
        let client = client.clone();
        let base = base.clone();
        async move {
            client
                .get(format!("{base}/whoami"))
                .header("cookie", format!("session={id}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    assert_eq!(whoami(after.clone()).await, "alice");
    assert_eq!(whoami(before).await, "", "the pre-login ID still works");
    let res = client
        .post(format!("{base}/logout"))
        .header("cookie", format!("session={after}"))
        .send()
        .await
        .unwrap();
    assert!(res.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(res.headers()[VARY], "Cookie");
    assert_eq!(res.headers()[CACHE_CONTROL], "private");
    assert_eq!(whoami(after).await, "");
}

/// A `tracing` writer that keeps everything logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_log_line_contains_a_session_id() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = common::Instrumented::default();
    let layer = SessionLayer::builder(store.clone())
        .with_plain_http_for_development()
        .build()
        .unwrap();
    let app = common::routes(common::Gates::default()).layer(layer);
    let send = |uri: &str, id: Option<&str>| {
        let mut req = axum::http::Request::post(uri.to_owned());
        if let Some(id) = id {
            req = req.header("cookie", format!("session={id}"));
        }
        tower::ServiceExt::oneshot(app.clone(), req.body(axum::body::Body::empty()).unwrap())
    };
    let mut ids = Vec::new();
    let res = send("/login_and_write/alice", None).await.unwrap();
    ids.push(common::new_value(&res).unwrap());
    let res = send("/rotate", Some(&ids[0])).await.unwrap();
    ids.push(common::new_value(&res).unwrap());
    store.set_down(true);
    let _ = send("/incr", Some(&ids[1])).await.unwrap();
    let _ = send("/set/a/b", Some(&ids[1])).await.unwrap();
    store.set_down(false);
    let _ = send("/logout", Some(&ids[1])).await.unwrap();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("session"),
        "nothing was logged, so the test proves nothing"
    );
    for id in &ids {
        assert!(!text.contains(id.as_str()), "a session ID was logged");
    }
}
