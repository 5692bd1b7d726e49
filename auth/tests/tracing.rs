//! The request's span carries the user's ID; no log line carries a session ID, a cookie,
//! a password or a password hash. Its own test binary: it installs the global subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{memory, start, ALICE_PASSWORD};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_span_names_the_user_and_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    // Everything the server side logs, at every level; the test's own client (its cookie
    // jar logs the cookies it stores) is not the app.
    let server_side = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("cookie_store", LevelFilter::OFF)
        .with_target("reqwest", LevelFilter::OFF);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone()),
        )
        .with(server_side)
        .init();

    let app = start(memory().await.unwrap()).await;
    let browser = app.browser();
    browser.get("/note").await;
    browser.post("/note/x", &[]).await;
    let anonymous = browser.cookie().unwrap();
    browser.sign_in("alice", ALICE_PASSWORD).await;
    let signed_in = browser.cookie().unwrap();
    assert_eq!(browser.get("/traced").await.body, "traced");
    app.backend
        .set_password(app.alice, "a new password")
        .await
        .unwrap();
    // This request ends the session: the decision is logged, without the hashes.
    assert_eq!(browser.whoami().await, "anonymous");

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("the handler ran"))
        .expect("the handler's event");
    assert!(
        line.contains(&format!("auth{{user.id={}}}", app.alice)),
        "{line}"
    );
    assert!(
        log.contains("session ended: its user's credentials changed"),
        "{log}"
    );
    for secret in [&anonymous, &signed_in] {
        let leak = log.lines().find(|l| l.contains(secret.as_str()));
        assert_eq!(leak, None, "a cookie value in the log");
    }
    for secret in [ALICE_PASSWORD, "a new password", "$argon2"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}
