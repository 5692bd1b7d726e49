//! What the security review of the login example found, each as the behaviour that closes it:
//! sign-out without a session writes none, sign-in and sign-out are rate limited, a password
//! change that cannot sign out the other sessions changes nothing and says so, a sign-in that
//! checked the old password does not outlive the change, and signing in as someone else
//! starts a session with nothing of the previous user's.

mod login_support;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use axum::{Extension, Router};
use session_layer_auth::{AuthManagerLayer, AuthSession};

use login_support::app::config::Config;
use login_support::app::users::{User, Users};
use login_support::{browser, serve_with, sign_in};
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use session_layer::MemoryStore;

/// When the account page says the session signed in, to the second (without the relative
/// "(1 s ago)", which moves by itself).
fn signed_in_at(account_page: &str) -> String {
    let line = account_page
        .lines()
        .find(|l| l.contains("<th>Signed in</th>"))
        .expect("the account page says when");
    line.split(" UTC").next().unwrap().to_owned()
}

#[tokio::test]
async fn sign_out_without_a_session_writes_none_so_a_flood_cannot_fill_the_store() {
    let store = MemoryStore::default().with_capacity(100);
    // Without the rate limit, which would refuse most of the flood by itself.
    let config = Config {
        sign_in_per_minute: 0,
        ..Config::default()
    };
    let app = serve_with(config, Arc::new(store.clone()), Users::demo()).await;
    // A script, not a browser: no cookie, no Origin, no Sec-Fetch-Site, which the CSRF
    // layer lets through as a non-browser request.
    let script = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    for _ in 0..100 {
        let res = script
            .post(format!("{}/logout", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert!(
            res.headers().get("set-cookie").is_none(),
            "a visitor without a session got one at sign-out"
        );
    }
    assert_eq!(
        store.len(),
        0,
        "sign-outs without a session stored sessions"
    );

    let page = sign_in(&browser(), &app.base, "alice", "alice-password").await;
    assert!(page.contains("Signed in as alice."));
}

#[tokio::test]
async fn signing_in_as_another_user_starts_a_session_with_nothing_of_the_previous_one() {
    let store = login_support::app::open_store("memory").await.unwrap();
    let app = serve_with(Config::default(), store, Users::demo()).await;
    let shared = browser();
    let alices = sign_in(&shared, &app.base, "alice", "alice-password").await;
    // The account page shows the time to the second: let one pass.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let bobs = sign_in(&shared, &app.base, "bob", "bob-password").await;
    assert!(bobs.contains("Signed in as <strong>bob</strong>"));
    assert_ne!(
        signed_in_at(&alices),
        signed_in_at(&bobs),
        "bob's session carries alice's sign-in time: it is her session, handed over"
    );
    let res = shared
        .get(format!("{}/sessions", app.base))
        .send()
        .await
        .unwrap();
    let sessions = res.text().await.unwrap();
    assert_eq!(sessions.matches("data-handle=").count(), 1);
}

/// Sessions on PostgreSQL, through a role that may read, create and update them but not
/// delete them: signing out other sessions fails for real, while signing in and every page
/// work. In a schema and role of this test's own, dropped at the end.
struct NoDeleteStore {
    restricted: session_layer_postgres::PostgresStore,
    url: String,
    name: String,
}

impl NoDeleteStore {
    async fn start() -> Option<Self> {
        use sqlx::postgres::PgConnectOptions;
        let url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "login_nodel_{}_{}",
            std::process::id(),
            nanos % 1_000_000_000
        );
        let builder = || {
            session_layer_postgres::PostgresStore::builder()
                .with_schema(name.clone())
                .unwrap()
                .with_table("sessions")
                .unwrap()
        };
        let admin = match builder().connect(&url).await {
            Ok(admin) => admin,
            Err(e) => {
                return skip(&format!(
                    "no PostgreSQL at DATABASE_URL or 127.0.0.1:5432 ({e})"
                ))
            }
        };
        admin.migrate().await.expect("the sessions table");
        for statement in [
            format!("CREATE ROLE \"{name}\" LOGIN"),
            format!("GRANT USAGE ON SCHEMA \"{name}\" TO \"{name}\""),
            format!("GRANT SELECT, INSERT, UPDATE ON \"{name}\".\"sessions\" TO \"{name}\""),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
                .execute(admin.pool())
                .await
                .unwrap();
        }
        let options: PgConnectOptions = url.parse().unwrap();
        let restricted = builder()
            .connect_with(options.username(&name))
            .await
            .expect("the restricted role connects");
        admin.pool().close().await;
        Some(Self {
            restricted,
            url,
            name,
        })
    }
}

impl Drop for NoDeleteStore {
    /// Drops the schema and the role even when the test failed, over a connection of its
    /// own on a runtime of its own (the test's runtime is not polled while this runs).
    fn drop(&mut self) {
        use sqlx::Connection;
        let (url, name) = (self.url.clone(), self.name.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
                for statement in [
                    format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE usename = '{name}'"
                    ),
                    format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"),
                    format!("DROP ROLE IF EXISTS \"{name}\""),
                ] {
                    if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
                        .execute(&mut admin)
                        .await
                    {
                        eprintln!("cleaning up {name}: {e}");
                    }
                }
            });
        })
        .join()
        .unwrap();
    }
}

/// Skips outside CI (saying why); fails under `CI=true`, where every server must be there.
fn skip<T>(reason: &str) -> Option<T> {
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "CI=true but {reason}"
    );
    eprintln!("skipped: {reason}");
    None
}

#[tokio::test]
async fn a_password_change_that_cannot_sign_out_the_other_sessions_changes_nothing_and_says_so() {
    let Some(pg) = NoDeleteStore::start().await else {
        return;
    };
    let app = serve_with(
        Config::default(),
        Arc::new(pg.restricted.clone()),
        Users::demo(),
    )
    .await;
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
    let status = res.status();
    let body = res.text().await.unwrap();
    assert!(
        app.users.verify("alice", "alice-password").await,
        "the new password is active although the other sessions live on"
    );
    assert!(!app.users.verify("alice", "correct horse battery").await);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body.contains("Your password was not changed"),
        "the page does not say what happened: {body}"
    );
    // Nothing changed, as the page says: the phone is still signed in.
    let res = phone
        .get(format!("{}/account", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.url().path(), "/account");
    drop(pg);
}

#[tokio::test]
async fn sign_in_and_sign_out_are_rate_limited_per_address() {
    let store = login_support::app::open_store("memory").await.unwrap();
    let config = Config {
        sign_in_per_minute: 5,
        ..Config::default()
    };
    let app = serve_with(config, store, Users::demo()).await;
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let attempt = || {
        client
            .post(format!("{}/login", app.base))
            .form(&[("username", "alice"), ("password", "guess")])
            .send()
    };
    for _ in 0..5 {
        assert_eq!(attempt().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let res = attempt().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&wait), "Retry-After: {wait}");
    // Sign-out counts against the same limit; other pages do not.
    let res = client
        .post(format!("{}/logout", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let res = client
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

/// Completes a sign-in whose password check happened earlier: what a sign-in request does
/// when it checked the password, then waited (a slow hash, a slow network) before storing
/// the sign-in.
async fn finish_sign_in(
    mut auth: AuthSession<Users>,
    Extension(checked): Extension<User>,
) -> StatusCode {
    match auth.login(&checked).await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The example's session and auth layers over `store` and `users`, with one route that
/// finishes a sign-in checked earlier, served on loopback.
async fn late_sign_in_app(
    store: Arc<dyn session_layer::SessionStore>,
    users: Users,
    checked: User,
) -> String {
    let router = Router::new()
        .route("/finish-sign-in", post(finish_sign_in))
        .layer(Extension(checked))
        .layer(AuthManagerLayer::new(users))
        .layer(login_support::app::build_session_layer(&Config::default(), store).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_sign_in_that_checked_the_old_password_does_not_outlive_the_change() {
    let store: Arc<dyn session_layer::SessionStore> = Arc::new(MemoryStore::default());
    let users = Users::demo();
    let app = serve_with(Config::default(), store.clone(), users.clone()).await;
    let laptop = browser();
    sign_in(&laptop, &app.base, "alice", "alice-password").await;

    // Control: a late sign-in with the current password holds.
    let checked = users
        .check("alice", "alice-password")
        .await
        .unwrap()
        .unwrap();
    let on_time = late_sign_in_app(store.clone(), users.clone(), checked).await;
    let current = browser();
    let res = current
        .post(format!("{on_time}/finish-sign-in"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = current
        .get(format!("{}/account", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.url().path(),
        "/account",
        "the app ignores such sign-ins"
    );

    // The race: a sign-in checks the old password just before the change...
    let checked = users
        .check("alice", "alice-password")
        .await
        .unwrap()
        .unwrap();
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
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Password changed. Signed out 1 other session(s)."));
    // ...and stores it after: the change's revocation could not see it.
    let late_app = late_sign_in_app(store, users, checked).await;
    let late = browser();
    let res = late
        .post(format!("{late_app}/finish-sign-in"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the late sign-in completes");

    for client in [&late, &current] {
        let res = client
            .get(format!("{}/account", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.url().path(),
            "/login",
            "a sign-in made with the old password is still signed in"
        );
    }
    let res = laptop
        .get(format!("{}/account", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.url().path(),
        "/account",
        "the session that changed it ended"
    );
}
