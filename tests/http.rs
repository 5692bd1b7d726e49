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

/// A session's own end time and idle timeout show in its cookie's `Max-Age`, which a
/// browser-only session otherwise lacks, and both survive a rotation: the new cookie's
/// `Max-Age` is the time left, and the session ends at its end time however active.
#[tokio::test]
async fn the_cookie_max_age_follows_a_sessions_own_expiry_across_a_rotation() {
    use reqwest::Method;
    use session_layer::clock::Clock as _;
    use session_layer::testing::MockClock;
    use session_layer_test_support::app::{call, routes, serve};

    let clock = MockClock::new();
    // On a whole second, so that whole-second end times give whole-second Max-Ages.
    clock.advance(std::time::Duration::from_millis(
        1000 - u64::from(clock.now().millisecond()),
    ));
    let layer = SessionLayer::builder(MemoryStore::default())
        .with_plain_http_for_development()
        .with_clock(clock.clone())
        .build()
        .unwrap();
    let addr = serve(routes().layer(layer)).await;
    let client = reqwest::Client::new();
    let minutes = |n: u64| std::time::Duration::from_secs(n * 60);

    let created = call(&client, addr, Method::POST, "/set/cart/apple", None).await;
    assert_eq!(
        created.max_age, None,
        "a browser-only session's cookie got a Max-Age"
    );
    let id = created.cookie.expect("a session cookie");

    // Its own idle timeout: ten minutes from this request.
    let idle = call(&client, addr, Method::POST, "/idle-timeout/600", Some(&id)).await;
    assert_eq!(
        (idle.cookie.as_deref(), idle.max_age),
        (Some(&*id), Some(600))
    );

    // Its own end time, five minutes away: nearer than the idle deadline.
    let end = clock.now().unix_timestamp() + 300;
    let path = format!("/expire-at/{end}");
    let ended = call(&client, addr, Method::POST, &path, Some(&id)).await;
    assert_eq!(ended.max_age, Some(300));

    clock.advance(minutes(1));
    let rotated = call(&client, addr, Method::POST, "/rotate", Some(&id)).await;
    let new_id = rotated.cookie.expect("a rotated cookie");
    assert_ne!(new_id, id);
    assert_eq!(
        rotated.max_age,
        Some(240),
        "rotation lost the session's own end time"
    );
    let old = call(&client, addr, Method::GET, "/get/cart", Some(&id)).await;
    assert_eq!(old.body, "none", "the old ID still worked");

    // Activity inside the idle timeout keeps it alive until the end time, no further.
    clock.advance(minutes(3));
    let alive = call(&client, addr, Method::GET, "/get/cart", Some(&new_id)).await;
    assert_eq!(alive.body, "\"apple\"");
    clock.advance(minutes(2));
    let gone = call(&client, addr, Method::GET, "/get/cart", Some(&new_id)).await;
    assert_eq!(gone.body, "none", "the session outlived its own end time");

    // Without an end time, the idle timeout alone sets the Max-Age after a rotation.
    let other = call(&client, addr, Method::POST, "/set/cart/pear", None).await;
    let id = other.cookie.expect("a session cookie");
    call(&client, addr, Method::POST, "/idle-timeout/900", Some(&id)).await;
    clock.advance(minutes(5));
    let rotated = call(&client, addr, Method::POST, "/rotate", Some(&id)).await;
    assert_eq!(
        rotated.max_age,
        Some(900),
        "rotation lost the session's own idle timeout"
    );
    clock.advance(minutes(16));
    let gone = call(
        &client,
        addr,
        Method::GET,
        "/get/cart",
        rotated.cookie.as_deref(),
    )
    .await;
    assert_eq!(
        gone.body, "none",
        "the session outlived its own idle timeout"
    );
}
