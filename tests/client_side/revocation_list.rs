//! Client-side sessions with a server-side revocation list
//! (`ClientSide::with_revocation_list`): after sign-out, neither a copied cookie nor one
//! re-issued by a request that was in flight opens; "sign out everywhere else" voids a
//! user's other sessions; the list keeps an entry no longer than the cookie could live, on
//! every store of the crate.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use session_layer::clock::Clock as _;
use session_layer::testing::MockClock;
use session_layer::{ClientSide, MemoryStore, Session, SessionError, SessionLayer, SessionStore};
use tokio::sync::Notify;

use super::{minutes, ring, send, Browser, Mode, Reply, CLIENT_MODES};

#[path = "../common/mod.rs"]
mod common;

/// A layer of `mode` whose revocation list is `list`: idle 10 minutes (30 when
/// persistent), touch step 1 minute.
fn layer(mode: Mode, list: impl SessionStore, clock: &MockClock) -> SessionLayer {
    configured(
        mode,
        ClientSide::new(ring(&[1])).with_revocation_list(list),
        clock,
    )
}

fn configured(mode: Mode, config: ClientSide, clock: &MockClock) -> SessionLayer {
    let config = match mode {
        Mode::Signed => config.signed_only(),
        _ => config,
    };
    SessionLayer::client_side_builder(config)
        .with_clock(clock.clone())
        .with_idle_timeout(minutes(10))
        .with_persistent_idle_timeout(minutes(30))
        .with_touch_step(minutes(1))
        .build()
        .unwrap()
}

/// Holds a request in its handler until the test releases it.
#[derive(Clone, Default)]
struct Hold {
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

impl Hold {
    async fn wait(&self) {
        self.entered.notify_one();
        self.release.notified().await;
    }
}

/// What a held request does after it is released: `read-write` reads the session before
/// it waits and writes after; `read-rotate` reads, then rotates and writes (a privilege
/// change); `read` only reads, and the test moves the clock past the touch step while it
/// waits, so the cookie is resealed; `late-read` reads only after it is released.
async fn held(
    session: Session,
    Path(what): Path<String>,
    hold: axum::extract::State<Hold>,
) -> Result<String, SessionError> {
    let mut seen = None;
    if what != "late-read" {
        seen = session.user().await?;
    }
    hold.wait().await;
    match what.as_str() {
        "read-write" => session.insert("late", true).await?,
        "read-rotate" => {
            session.rotate().await;
            session.insert("late", true).await?;
        }
        "late-read" => seen = session.user().await?,
        _ => {}
    }
    Ok(format!("{seen:?}"))
}

async fn count(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    Ok(visits.to_string())
}

async fn whoami(session: Session) -> Result<String, SessionError> {
    Ok(format!(
        "{:?} {}",
        session.user().await?,
        session.get::<u64>("visits").await?.unwrap_or(0)
    ))
}

fn app(layer: SessionLayer, hold: Hold) -> Router {
    Router::new()
        .route("/count", get(count))
        .route("/whoami", get(whoami))
        .route(
            "/login/{user}",
            get(|session: Session, Path(user): Path<String>| async move {
                session.rotate().await;
                session.set_user(Some(user)).await;
            }),
        )
        .route(
            "/logout",
            get(|session: Session| async move { session.destroy().await }),
        )
        .route(
            "/revoke-others",
            get(|session: Session| async move {
                match session.revoke_others().await {
                    Ok(n) => (StatusCode::OK, n.to_string()),
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                }
            }),
        )
        .route("/held/{what}", get(held))
        .with_state(hold)
        .layer(layer)
}

/// A browser of `app` signed in as `user`, with one visit counted.
async fn signed_in(app: &Router, user: &str) -> Browser {
    let mut browser = Browser::on(app.clone());
    browser.get("/count").await;
    browser.get(&format!("/login/{user}")).await;
    assert_eq!(
        browser.get("/whoami").await.body,
        format!("Some({user:?}) 1")
    );
    browser
}

/// Sends `path` with `cookie`, held in its handler until `release` runs; returns the reply.
async fn across<F: std::future::Future<Output = ()>>(
    app: &Router,
    hold: &Hold,
    path: &str,
    cookie: &str,
    meanwhile: F,
) -> Reply {
    let (app, path, cookie) = (app.clone(), path.to_owned(), cookie.to_owned());
    let request = tokio::spawn(async move { send(&app, &path, Some(&cookie)).await });
    hold.entered.notified().await;
    meanwhile.await;
    hold.release.notify_one();
    request.await.unwrap()
}

/// What a cookie a response set opens to: `whoami`'s answer, or `None` for no cookie or a
/// removal.
async fn opens_to(app: &Router, reply: &Reply) -> Option<String> {
    let value = reply.cookie_value().filter(|v| !v.is_empty())?;
    Some(send(app, "/whoami", Some(value)).await.body)
}

#[tokio::test]
async fn with_a_revocation_list_a_request_held_across_sign_out_issues_no_signed_in_cookie() {
    for mode in CLIENT_MODES {
        for what in ["read-write", "read-rotate", "read", "late-read"] {
            let clock = MockClock::new();
            let hold = Hold::default();
            let app = app(layer(mode, MemoryStore::default(), &clock), hold.clone());
            let mut browser = signed_in(&app, "alice").await;
            let cookie = browser.cookie.clone().unwrap();

            let reply = across(&app, &hold, &format!("/held/{what}"), &cookie, async {
                // Signed out in another tab while the request runs.
                assert!(browser.get("/logout").await.removes_cookie());
                clock.advance(minutes(2));
            })
            .await;
            assert_eq!(reply.status, StatusCode::OK, "{mode:?} {what}: {reply:?}");
            if what == "late-read" {
                // Opened after the sign-out: the request is anonymous, and its cookie goes.
                assert_eq!(reply.body, "None", "{mode:?} {what}");
                assert!(reply.removes_cookie(), "{mode:?} {what}: {reply:?}");
                continue;
            }
            // Read before the sign-out: the handler saw the user. Its response sets a cookie
            // (a write, a rotation, or a touch past the step), which opens to no user.
            assert_eq!(reply.body, "Some(\"alice\")", "{mode:?} {what}");
            assert_eq!(
                opens_to(&app, &reply).await.as_deref(),
                Some("None 0"),
                "{mode:?} {what}: the held request's cookie opens signed in: {reply:?}"
            );
        }
    }
}

#[tokio::test]
async fn without_a_revocation_list_a_request_held_across_sign_out_signs_the_browser_in_again() {
    // The limit the README states under "Do not choose it when", pinned: with no list the
    // server keeps nothing to compare the cookie with.
    for mode in CLIENT_MODES {
        let clock = MockClock::new();
        let hold = Hold::default();
        let app = app(
            configured(mode, ClientSide::new(ring(&[1])), &clock),
            hold.clone(),
        );
        let mut browser = signed_in(&app, "alice").await;
        let cookie = browser.cookie.clone().unwrap();
        let reply = across(&app, &hold, "/held/read-write", &cookie, async {
            assert!(browser.get("/logout").await.removes_cookie());
        })
        .await;
        assert_eq!(
            opens_to(&app, &reply).await.as_deref(),
            Some("Some(\"alice\") 1"),
            "{mode:?}"
        );
    }
}

#[tokio::test]
async fn with_a_revocation_list_a_copied_cookie_does_not_open_after_sign_out() {
    for mode in CLIENT_MODES {
        let clock = MockClock::new();
        let app = app(layer(mode, MemoryStore::default(), &clock), Hold::default());
        let mut browser = signed_in(&app, "alice").await;
        let copy = browser.cookie.clone().unwrap();
        // Another browser of the same user is not affected by this sign-out.
        let other = signed_in(&app, "alice").await;
        assert!(browser.get("/logout").await.removes_cookie());

        let replay = send(&app, "/whoami", Some(&copy)).await;
        assert_eq!(replay.body, "None 0", "{mode:?}: the copy still opens");
        assert!(replay.removes_cookie(), "{mode:?}: {replay:?}");
        let replay = send(&app, "/count", Some(&copy)).await;
        assert_eq!(replay.body, "1", "{mode:?}: a write starts a new session");
        assert_eq!(
            opens_to(&app, &replay).await.as_deref(),
            Some("None 1"),
            "{mode:?}"
        );
        assert_eq!(
            send(&app, "/whoami", other.cookie.as_deref()).await.body,
            "Some(\"alice\") 1",
            "{mode:?}"
        );
    }
}

#[tokio::test]
async fn with_a_revocation_list_revoke_others_voids_the_users_other_sessions() {
    for mode in CLIENT_MODES {
        let clock = MockClock::new();
        let hold = Hold::default();
        let app = app(layer(mode, MemoryStore::default(), &clock), hold.clone());
        let laptop = signed_in(&app, "alice").await;
        let mut phone = signed_in(&app, "alice").await;
        let bob = signed_in(&app, "bob").await;
        let laptop_cookie = laptop.cookie.clone().unwrap();

        // A request of the laptop's is in flight, and rotates after the revocation.
        let held = across(&app, &hold, "/held/read-rotate", &laptop_cookie, async {
            clock.advance(minutes(1));
            let reply = phone.get("/revoke-others").await;
            assert_eq!(reply.status, StatusCode::OK, "{mode:?}: {reply:?}");
        })
        .await;
        assert_eq!(held.body, "Some(\"alice\")");
        assert_eq!(
            opens_to(&app, &held).await.as_deref(),
            Some("None 0"),
            "{mode:?}: the rotated cookie escaped: {held:?}"
        );
        assert_eq!(
            send(&app, "/whoami", Some(&laptop_cookie)).await.body,
            "None 0",
            "{mode:?}: the laptop is still signed in"
        );
        // The phone that revoked stays signed in, now and once its cookie was resealed.
        assert_eq!(phone.get("/whoami").await.body, "Some(\"alice\") 1");
        clock.advance(minutes(2));
        assert_eq!(phone.get("/count").await.body, "2");
        assert_eq!(phone.get("/whoami").await.body, "Some(\"alice\") 2");
        assert_eq!(
            send(&app, "/whoami", bob.cookie.as_deref()).await.body,
            "Some(\"bob\") 1",
            "{mode:?}: another user was signed out"
        );
        // Signing in again afterwards works.
        let again = signed_in(&app, "alice").await;
        clock.advance(minutes(2));
        assert_eq!(
            send(&app, "/whoami", again.cookie.as_deref()).await.body,
            "Some(\"alice\") 1"
        );
    }
}

#[tokio::test]
async fn the_revocation_list_keeps_an_entry_only_as_long_as_the_cookie_could_live() {
    let clock = MockClock::new();
    let list = MemoryStore::default();
    let app = app(layer(Mode::Private, list.clone(), &clock), Hold::default());
    let mut browser = signed_in(&app, "alice").await;
    assert_eq!(list.len(), 0, "nothing is kept until a sign-out");
    browser.get("/logout").await;
    assert_eq!(list.len(), 1);
    // The longest a copy could still live: the persistent idle timeout, 30 minutes.
    clock.advance(minutes(29));
    assert_eq!(list.delete_expired(clock.now(), 100).await.unwrap(), 0);
    clock.advance(minutes(2));
    assert_eq!(list.delete_expired(clock.now(), 100).await.unwrap(), 1);
    assert!(list.is_empty());
}

#[tokio::test]
async fn a_revocation_list_that_fails_is_an_error_never_a_silent_sign_out_or_sign_in() {
    let clock = MockClock::new();
    let list = common::Instrumented::default();
    let app = app(layer(Mode::Private, list.clone(), &clock), Hold::default());
    let mut browser = signed_in(&app, "alice").await;
    list.set_down(true);
    let reply = send(&app, "/whoami", browser.cookie.as_deref()).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    assert!(reply.set_cookies.is_empty(), "{reply:?}");
    // A sign-out that cannot be recorded is not reported as done.
    let reply = browser.get("/logout").await;
    assert!(reply.status.is_server_error(), "{reply:?}");
    assert!(reply.set_cookies.is_empty(), "{reply:?}");
    list.set_down(false);
    assert_eq!(browser.get("/whoami").await.body, "Some(\"alice\") 1");
    assert!(browser.get("/logout").await.removes_cookie());
}

/// The held-request and copied-cookie cases against one list store.
async fn copied_and_reissued_cookies_stay_signed_out(list: impl SessionStore) {
    let clock = MockClock::new();
    let hold = Hold::default();
    let app = app(layer(Mode::Private, list, &clock), hold.clone());
    let mut browser = signed_in(&app, "alice").await;
    let copy = browser.cookie.clone().unwrap();
    let reply = across(&app, &hold, "/held/read-write", &copy, async {
        assert!(browser.get("/logout").await.removes_cookie());
    })
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(opens_to(&app, &reply).await.as_deref(), Some("None 0"));
    assert_eq!(send(&app, "/whoami", Some(&copy)).await.body, "None 0");
    let mut phone = signed_in(&app, "alice").await;
    let laptop = signed_in(&app, "alice").await;
    // A cut-off voids sessions signed in before it, not in the same millisecond.
    clock.advance(std::time::Duration::from_secs(1));
    assert_eq!(phone.get("/revoke-others").await.status, StatusCode::OK);
    assert_eq!(
        send(&app, "/whoami", laptop.cookie.as_deref()).await.body,
        "None 0"
    );
    assert_eq!(phone.get("/whoami").await.body, "Some(\"alice\") 1");
}

#[tokio::test]
async fn a_revocation_list_on_sqlite_keeps_signed_out_cookies_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = session_layer_sqlite::SqliteStore::builder()
        .open(dir.path().join("revoked.db"))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    copied_and_reissued_cookies_stay_signed_out(store).await;
}

#[tokio::test]
async fn a_revocation_list_on_redis_keeps_signed_out_cookies_out() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!(
        "session-layer-revocation-test:{}:",
        &session_layer::id::SessionId::generate()
            .storage_key()
            .to_hex()[..12]
    );
    let store = match session_layer_redis::RedisStore::builder(url.as_str())
        .with_key_prefix(&prefix)
        .connect()
        .await
    {
        Ok(store) => store,
        Err(e) if !session_layer::testing::in_ci() => {
            eprintln!("skipped: no Redis at REDIS_URL or 127.0.0.1:6379 ({e})");
            return;
        }
        Err(e) => panic!("CI=true but no Redis at REDIS_URL or 127.0.0.1:6379 ({e})"),
    };
    copied_and_reissued_cookies_stay_signed_out(store).await;
}

#[tokio::test]
async fn a_revocation_list_on_postgres_keeps_signed_out_cookies_out() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    // Named like the store crate's test schemas, so its tests drop it once it is stale.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let schema = format!(
        "sl_test_{secs}_{}",
        &session_layer::id::SessionId::generate()
            .storage_key()
            .to_hex()[..12]
    );
    let builder = session_layer_postgres::PostgresStore::builder()
        .with_schema(&schema)
        .unwrap();
    let store = match builder.connect(&url).await {
        Ok(store) => store,
        Err(e) if !session_layer::testing::in_ci() => {
            eprintln!("skipped: no PostgreSQL at DATABASE_URL or 127.0.0.1:5432 ({e})");
            return;
        }
        Err(e) => panic!("CI=true but no PostgreSQL at DATABASE_URL or 127.0.0.1:5432 ({e})"),
    };
    store.migrate().await.unwrap();
    let pool = store.pool().clone();
    copied_and_reissued_cookies_stay_signed_out(store).await;
    let _ = session_layer_postgres::sqlx::raw_sql(session_layer_postgres::sqlx::AssertSqlSafe(
        format!("DROP SCHEMA \"{schema}\" CASCADE"),
    ))
    .execute(&pool)
    .await;
}

#[tokio::test]
async fn over_http_neither_a_copied_nor_a_re_issued_cookie_opens_after_sign_out() {
    let clock = MockClock::new();
    let hold = Hold::default();
    let app = app(
        layer(Mode::Private, MemoryStore::default(), &clock),
        hold.clone(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    // Sends `path` with the session cookie `value`; answers the body and the cookie set.
    let get = |path: &str, value: Option<String>| {
        let (client, url) = (client.clone(), format!("{base}{path}"));
        async move {
            let mut req = client.get(url);
            if let Some(value) = value {
                req = req.header("cookie", format!("{}={value}", super::NAME));
            }
            let res = req.send().await.unwrap();
            let set = res
                .headers()
                .get("set-cookie")
                .map(|c| cookie::Cookie::parse(c.to_str().unwrap().to_owned()).unwrap())
                .map(|c| c.value().to_owned());
            (res.text().await.unwrap(), set)
        }
    };
    let (_, first) = get("/count", None).await;
    let (_, signed_in) = get("/login/alice", first).await;
    let cookie = signed_in.expect("a signed-in cookie");
    assert_eq!(
        get("/whoami", Some(cookie.clone())).await.0,
        "Some(\"alice\") 1"
    );

    let held = tokio::spawn(get("/held/read-write", Some(cookie.clone())));
    hold.entered.notified().await;
    let (_, removal) = get("/logout", Some(cookie.clone())).await;
    assert_eq!(removal.as_deref(), Some(""), "sign-out removes the cookie");
    hold.release.notify_one();
    let (seen, reissued) = held.await.unwrap();
    assert_eq!(seen, "Some(\"alice\")");
    let reissued = reissued.expect("the held request's write sets a cookie");
    assert_eq!(get("/whoami", Some(reissued)).await.0, "None 0");
    assert_eq!(get("/whoami", Some(cookie)).await.0, "None 0");
}
