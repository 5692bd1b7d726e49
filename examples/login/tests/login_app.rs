//! The login example over real HTTP on loopback, without a browser: the behaviour behind its
//! forms, which the browser tests (`login_browser.rs`) then check end to end.

mod login_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use login_support::app;
use login_support::app::config::{Command, Config};
use login_support::{browser, serve, sign_in};
use reqwest::header::{LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::StatusCode;

/// A client that keeps nothing and follows nothing, to look at single responses.
fn raw() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

async fn page(client: &reqwest::Client, url: String) -> (StatusCode, String, String) {
    let res = client.get(url).send().await.unwrap();
    let status = res.status();
    let path = res.url().path().to_owned();
    (status, path, res.text().await.unwrap())
}

/// The value of the session cookie a response sets, `Some("")` for a removal.
fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers().get_all(SET_COOKIE).iter().find_map(|v| {
        let c = cookie::Cookie::parse(v.to_str().ok()?.to_owned()).ok()?;
        (c.name() == "session").then(|| c.value().to_owned())
    })
}

/// Signs alice in and out with `client` (which keeps no cookies) and returns the ID of the
/// session that carries the "Signed out" flash to the next page.
async fn signed_out_flash_session(client: &reqwest::Client, base: &str) -> String {
    let res = client
        .post(format!("{base}/login"))
        .form(&[("username", "alice"), ("password", "alice-password")])
        .send()
        .await
        .unwrap();
    let signed_in = session_cookie(&res).expect("signed in");
    let res = client
        .post(format!("{base}/logout"))
        .header("cookie", format!("session={signed_in}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()[LOCATION], "/");
    session_cookie(&res)
        .filter(|v| !v.is_empty())
        .expect("a session for the flash")
}

#[tokio::test]
async fn a_wrong_name_and_a_wrong_password_get_the_same_answer() {
    let app = serve(Config::default()).await;
    let mut answers = Vec::new();
    for (user, password) in [("nobody", "alice-password"), ("alice", "bob-password")] {
        let res = raw()
            .post(format!("{}/login", app.base))
            .form(&[("username", user), ("password", password)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(
            session_cookie(&res).is_none(),
            "a failed sign-in set a cookie"
        );
        let body = res.text().await.unwrap();
        let error = body
            .lines()
            .find(|l| l.contains("id=\"login-error\""))
            .expect("an error message")
            .to_owned();
        answers.push(error);
    }
    assert_eq!(answers[0], answers[1]);
    assert!(answers[0].contains("Wrong username or password."));
}

#[tokio::test]
async fn signing_in_gives_a_new_session_id_and_kills_the_old_one() {
    let app = serve(Config::default()).await;
    let client = raw();
    // Signing out leaves a session holding only the "Signed out" flash: a pre-sign-in ID, as
    // an attacker could plant one.
    let before = signed_out_flash_session(&client, &app.base).await;
    let res = client
        .post(format!("{}/login", app.base))
        .header("cookie", format!("session={before}"))
        .form(&[("username", "alice"), ("password", "alice-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let after = session_cookie(&res).expect("a new session cookie");
    assert!(!after.is_empty());
    // Compared without `assert_ne!`, which would print both IDs if it failed.
    assert!(before != after, "signing in kept the session ID");

    let account = |id: String| {
        let client = client.clone();
        let url = format!("{}/account", app.base);
        async move {
            client
                .get(url)
                .header("cookie", format!("session={id}"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(account(after).await, StatusCode::OK);
    assert_eq!(
        account(before).await,
        StatusCode::SEE_OTHER,
        "the pre-sign-in ID still works"
    );
}

#[tokio::test]
async fn the_signed_out_flash_is_shown_once_and_then_the_cookie_goes() {
    let app = serve(Config::default()).await;
    let client = raw();
    let flash_session = signed_out_flash_session(&client, &app.base).await;
    let res = client
        .get(format!("{}/", app.base))
        .header("cookie", format!("session={flash_session}"))
        .send()
        .await
        .unwrap();
    assert!(
        session_cookie(&res).is_some_and(|v| v.is_empty()),
        "no removal cookie"
    );
    assert!(res.text().await.unwrap().contains("Signed out."));
    let res = client
        .get(format!("{}/", app.base))
        .header("cookie", format!("session={flash_session}"))
        .send()
        .await
        .unwrap();
    assert!(!res.text().await.unwrap().contains("Signed out."));
}

#[tokio::test]
async fn changing_the_password_signs_out_every_other_session() {
    let app = serve(Config::default()).await;
    let (laptop, phone) = (browser(), browser());
    sign_in(&laptop, &app.base, "alice", "alice-password").await;
    sign_in(&phone, &app.base, "alice", "alice-password").await;

    let res = laptop
        .post(format!("{}/password", app.base))
        .form(&[
            ("current", "alice-password"),
            ("new", "correct horse battery"),
            ("confirm", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.url().path(), "/account");
    let body = res.text().await.unwrap();
    assert!(body.contains("Password changed. Signed out 1 other session(s)."));

    let (_, path, _) = page(&phone, format!("{}/account", app.base)).await;
    assert_eq!(path, "/login", "the other session survived");
    let (_, path, _) = page(&laptop, format!("{}/account", app.base)).await;
    assert_eq!(path, "/account", "the session that changed it ended");

    assert!(!app.users.verify("alice", "alice-password").await);
    sign_in(&phone, &app.base, "alice", "correct horse battery").await;
}

#[tokio::test]
async fn a_password_change_needs_the_current_password_and_a_confirmed_new_one() {
    let app = serve(Config::default()).await;
    let client = browser();
    sign_in(&client, &app.base, "alice", "alice-password").await;
    for (current, new, confirm, status, says) in [
        (
            "wrong",
            "new-password",
            "new-password",
            StatusCode::UNAUTHORIZED,
            "current password is wrong",
        ),
        (
            "alice-password",
            "new-password",
            "other-password",
            StatusCode::BAD_REQUEST,
            "do not match",
        ),
        (
            "alice-password",
            "short",
            "short",
            StatusCode::BAD_REQUEST,
            "8 to 1024",
        ),
    ] {
        let res = client
            .post(format!("{}/password", app.base))
            .form(&[("current", current), ("new", new), ("confirm", confirm)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status);
        assert!(res.text().await.unwrap().contains(says));
    }
    assert!(app.users.verify("alice", "alice-password").await);
}

#[tokio::test]
async fn cross_site_posts_are_refused_and_change_nothing() {
    let app = serve(Config::default()).await;
    let client = browser();
    sign_in(&client, &app.base, "alice", "alice-password").await;
    for (header, value) in [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        // An old browser without Sec-Fetch-Site: the Origin decides.
        ("origin", "http://evil.example"),
    ] {
        let res = client
            .post(format!("{}/logout", app.base))
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{header}: {value}");
        assert!(res.text().await.unwrap().contains("id=\"refused\""));
    }
    let (_, path, _) = page(&client, format!("{}/account", app.base)).await;
    assert_eq!(path, "/account", "a refused sign-out signed the user out");

    // The same form from the app's own pages works.
    let res = client
        .post(format!("{}/logout", app.base))
        .header("sec-fetch-site", "same-origin")
        .header("origin", app.base.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("Signed out."));
}

#[tokio::test]
async fn text_from_users_is_escaped() {
    let app = serve(Config::default()).await;
    let evil = r#"<script>alert("x")</script>'"#;
    let res = raw()
        .post(format!("{}/login", app.base))
        .form(&[("username", evil), ("password", "x"), ("next", evil)])
        .send()
        .await
        .unwrap();
    let body = res.text().await.unwrap();
    assert!(!body.contains("<script>"), "unescaped: {body}");
    assert!(body.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#x27;"));
}

#[tokio::test]
async fn sign_in_only_sends_the_user_on_to_this_site() {
    let app = serve(Config::default()).await;
    for (next, to) in [
        ("/sessions", "/sessions"),
        ("//evil.example/", "/account"),
        ("https://evil.example/", "/account"),
        ("/\\evil.example", "/account"),
    ] {
        let res = raw()
            .post(format!("{}/login", app.base))
            .form(&[
                ("username", "bob"),
                ("password", "bob-password"),
                ("next", next),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()[LOCATION], to, "next={next}");
    }
}

#[tokio::test]
async fn protected_pages_send_visitors_to_sign_in_and_back() {
    let app = serve(Config::default()).await;
    for path in ["/account", "/sessions", "/password"] {
        let res = raw()
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(res.headers()[LOCATION], format!("/login?next={path}"));
        assert!(session_cookie(&res).is_none());
    }
}

#[tokio::test]
async fn one_user_cannot_end_another_users_session() {
    let app = serve(Config::default()).await;
    let (alice, bob) = (browser(), browser());
    sign_in(&alice, &app.base, "alice", "alice-password").await;
    sign_in(&bob, &app.base, "bob", "bob-password").await;
    let (_, _, body) = page(&bob, format!("{}/sessions", app.base)).await;
    let handle = body
        .split("data-handle=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("bob's session is listed")
        .to_owned();

    let res = alice
        .post(format!("{}/sessions/end", app.base))
        .form(&[("handle", handle.as_str())])
        .send()
        .await
        .unwrap();
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("That session had already ended."));
    let (_, path, _) = page(&bob, format!("{}/account", app.base)).await;
    assert_eq!(path, "/account", "alice ended bob's session");
}

#[tokio::test]
async fn assets_neither_read_nor_set_the_session() {
    let app = serve(Config::default()).await;
    for path in ["/style.css", "/favicon.ico"] {
        let res = raw()
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{path}");
        assert!(res.headers().get(SET_COOKIE).is_none());
        assert!(
            res.headers().get("vary").is_none(),
            "{path} read the session"
        );
    }
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

// A current-thread runtime, so the server's tasks log through this thread's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn the_example_logs_no_session_id() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = serve(Config::default()).await;
    let client = raw();
    let mut ids = Vec::new();
    let res = client
        .post(format!("{}/login", app.base))
        .form(&[("username", "alice"), ("password", "alice-password")])
        .send()
        .await
        .unwrap();
    ids.push(session_cookie(&res).expect("signed in"));
    let cookie = format!("session={}", ids[0]);
    for (path, extra) in [
        ("/logout", ("sec-fetch-site", "cross-site")),
        ("/sessions/end-others", ("origin", "http://evil.example")),
    ] {
        let res = client
            .post(format!("{}{path}", app.base))
            .header("cookie", &cookie)
            .header(extra.0, extra.1)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
    let res = client
        .post(format!("{}/login", app.base))
        .form(&[("username", "alice"), ("password", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = client
        .post(format!("{}/logout", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    ids.push(session_cookie(&res).expect("a session for the flash"));

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    for expected in [
        "signed in",
        "failed sign-in",
        "refused a cross-site request",
    ] {
        assert!(
            text.contains(expected),
            "nothing logged for {expected:?}, so the test proves nothing"
        );
    }
    for id in ids.iter().filter(|id| !id.is_empty()) {
        assert!(!text.contains(id.as_str()), "a session ID was logged");
    }
}

#[test]
fn settings_come_from_flags_and_the_environment_and_flags_win() {
    let env = |name: &str| match name {
        "ADDR" => Some("0.0.0.0:8000".to_owned()),
        "SESSION_STORE" => Some("redis://localhost".to_owned()),
        "IDLE_TIMEOUT_SECS" => Some("60".to_owned()),
        _ => None,
    };
    let args = ["--store", "memory", "--idle-timeout-secs=3", "--behind-tls"];
    let Ok(Command::Run(config)) = Config::parse(env, args.map(String::from)) else {
        panic!("valid settings refused");
    };
    assert_eq!(
        config,
        Config {
            addr: "0.0.0.0:8000".into(),
            store: "memory".into(),
            idle_timeout: Some(Duration::from_secs(3)),
            behind_tls: true,
            sign_in_per_minute: 20,
        }
    );
    assert_eq!(
        Config::parse(|_| None, Vec::new()),
        Ok(Command::Run(Config::default()))
    );
    assert_eq!(Config::default().addr, "127.0.0.1:3000");
    assert_eq!(
        Config::parse(|_| None, vec!["--help".into()]),
        Ok(Command::Help)
    );
}

#[test]
fn bad_settings_are_refused_with_a_reason() {
    let parse = |args: &[&str]| Config::parse(|_| None, args.iter().map(|a| (*a).to_owned()));
    assert!(parse(&["--nope"]).unwrap_err().contains("unknown argument"));
    assert!(parse(&["--addr"])
        .unwrap_err()
        .contains("--addr needs a value"));
    assert!(parse(&["--idle-timeout-secs", "0"])
        .unwrap_err()
        .contains("at least 1"));
    let env = |name: &str| (name == "BEHIND_TLS").then(|| "maybe".to_owned());
    assert!(Config::parse(env, Vec::new())
        .unwrap_err()
        .contains("BEHIND_TLS"));
}

#[tokio::test]
async fn store_urls_select_their_store() {
    assert!(app::open_store("memory").await.is_ok());
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
    assert!(
        app::open_store(&url).await.is_ok(),
        "the SQLite store did not open"
    );
    // Unreachable servers say which store failed instead of starting without sessions.
    for (url, name) in [
        ("postgres://postgres@127.0.0.1:1/none", "PostgreSQL"),
        ("mysql://root@127.0.0.1:1/none", "MySQL"),
        ("mariadb://root@127.0.0.1:1/none", "MySQL"),
        ("redis://127.0.0.1:1", "Redis"),
    ] {
        let err = app::open_store(url).await.unwrap_err();
        assert!(err.contains(name), "{url}: {err}");
    }
    assert!(app::open_store("sqlite://")
        .await
        .unwrap_err()
        .contains("sqlite://PATH"));
    assert!(app::open_store("mongodb://x")
        .await
        .unwrap_err()
        .contains("unknown session store"));
}

#[test]
fn a_short_idle_timeout_builds_with_a_shorter_touch_step() {
    let store = session_layer::MemoryStore::default();
    for secs in [1, 3, 3600, 86_400] {
        let config = Config {
            idle_timeout: Some(Duration::from_secs(secs)),
            ..Config::default()
        };
        app::build_session_layer(&config, std::sync::Arc::new(store.clone()))
            .unwrap_or_else(|e| panic!("idle {secs}s: {e}"));
    }
}
