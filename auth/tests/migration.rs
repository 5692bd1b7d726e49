//! The live-migration recipe of `MIGRATING.md` (`examples/migrate_from_axum_login`), run
//! for real: users sign in on an axum-login 0.18 app over tower-sessions 0.14's
//! `MemoryStore`; the migrating app (both layers) moves each of them on their next request;
//! the app without the old layer keeps them signed in.

mod common;

#[path = "../examples/migrate_from_axum_login/apps.rs"]
mod apps;
#[path = "../examples/migrate_from_axum_login/migrate.rs"]
mod migrate;

#[allow(dead_code)]
mod theirs {
    use axum_login::{AuthUser, AuthnBackend, AuthzBackend, UserId};
    include!("../examples/sqlite_users/users.rs");
}

#[allow(dead_code)]
mod ours {
    use session_layer_auth::{AuthUser, AuthnBackend, AuthzBackend, UserId};
    include!("../examples/sqlite_users/users.rs");
}

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use reqwest::cookie::{CookieStore, Jar};
use session_layer::SessionLayer;
use session_layer::DEV_COOKIE_NAME;
use tower_sessions::{MemoryStore as OldStore, SessionManagerLayer};

/// tower-sessions' default cookie name, which the old app kept.
const OLD_COOKIE: &str = "id";

/// A browser: one cookie jar across the three apps (cookies do not tell ports apart).
struct Browser {
    jar: Arc<Jar>,
    client: reqwest::Client,
}

impl Browser {
    fn new() -> Self {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Self { jar, client }
    }

    /// The cookie `name` as the jar holds it for loopback.
    fn cookie(&self, name: &str) -> Option<String> {
        let url = "http://127.0.0.1/".parse().unwrap();
        let header = self.jar.cookies(&url)?;
        let prefix = format!("{name}=");
        header
            .to_str()
            .unwrap()
            .split("; ")
            .find_map(|pair| pair.strip_prefix(&prefix).map(str::to_owned))
    }

    async fn get(&self, addr: SocketAddr, path: &str) -> (StatusCode, String) {
        let res = self
            .client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
        (status, res.text().await.unwrap())
    }

    async fn post(&self, addr: SocketAddr, path: &str, form: &[(&str, &str)]) -> StatusCode {
        let res = self
            .client
            .post(format!("http://{addr}{path}"))
            .form(form)
            .send()
            .await
            .unwrap();
        StatusCode::from_u16(res.status().as_u16()).unwrap()
    }

    async fn sign_in(&self, addr: SocketAddr, name: &str, password: &str) {
        let status = self
            .post(
                addr,
                "/login",
                &[("username", name), ("password", password)],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "sign-in as {name}");
    }
}

fn old_layer(store: &OldStore) -> SessionManagerLayer<OldStore> {
    // Plain http on loopback; the rest is tower-sessions' defaults, cookie name `id`.
    SessionManagerLayer::new(store.clone()).with_secure(false)
}

fn new_layer(store: &session_layer::MemoryStore) -> SessionLayer {
    common::layer(store.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_users_move_to_the_new_sessions_on_their_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("users.db").display()
    );
    let users = ours::Backend::open(&url).await.unwrap();
    users.add_user("alice", "alice-pw", &[]).await.unwrap();
    users.add_user("bob", "bob-pw", &[]).await.unwrap();
    let carol = users.add_user("carol", "carol-pw", &[]).await.unwrap();
    users.add_user("dave", "dave-pw", &[]).await.unwrap();
    let old_store = OldStore::default();
    let new_store = session_layer::MemoryStore::default();

    // Today: everyone signs in on the axum-login app; a visitor fills a cart.
    let before = common::serve(apps::before(
        theirs::Backend::open(&url).await.unwrap(),
        old_layer(&old_store),
    ))
    .await;
    let (alice, bob, carol_browser, dave, visitor) = (
        Browser::new(),
        Browser::new(),
        Browser::new(),
        Browser::new(),
        Browser::new(),
    );
    for (browser, name, password) in [
        (&alice, "alice", "alice-pw"),
        (&bob, "bob", "bob-pw"),
        (&carol_browser, "carol", "carol-pw"),
        (&dave, "dave", "dave-pw"),
    ] {
        browser.sign_in(before, name, password).await;
        assert_eq!(browser.get(before, "/").await.1, name);
    }
    assert_eq!(
        visitor.post(before, "/cart/teapot", &[]).await,
        StatusCode::OK
    );
    alice.post(before, "/cart/kettle", &[]).await;
    let alices_old = alice.cookie(OLD_COOKIE).expect("the old session cookie");
    // Carol's password changes before she comes back: axum-login would end her session, and
    // so does the move.
    users.set_password(carol, "carol-new-pw").await.unwrap();

    // During: both layers. Each signed-in user's next request moves them.
    let during = common::serve(apps::during(
        ours::Backend::open(&url).await.unwrap(),
        new_layer(&new_store),
        old_layer(&old_store),
    ))
    .await;
    for (browser, name) in [(&alice, "alice"), (&bob, "bob")] {
        assert!(browser.cookie(OLD_COOKIE).is_some());
        assert_eq!(
            browser.get(during, "/account").await,
            (StatusCode::OK, "your account".into()),
            "{name}"
        );
        assert!(
            browser.cookie(OLD_COOKIE).is_none(),
            "{name}'s old cookie stayed"
        );
        assert!(
            browser.cookie(DEV_COOKIE_NAME).is_some(),
            "{name} has no new session"
        );
        assert_eq!(browser.get(during, "/").await.1, name);
    }
    assert_eq!(
        alice.get(during, "/cart").await.1,
        "kettle",
        "alice's cart stayed behind"
    );
    assert_eq!(
        visitor.get(during, "/cart").await.1,
        "teapot",
        "the visitor's cart stayed behind"
    );
    assert!(visitor.cookie(OLD_COOKIE).is_none());
    assert_eq!(visitor.get(during, "/").await.1, "anonymous");
    let (status, _) = carol_browser.get(during, "/account").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "carol's password changed, yet she was moved"
    );
    assert!(carol_browser.cookie(OLD_COOKIE).is_none());
    // The old sessions are gone from the old store: replaying one is anonymous there too.
    let replay = reqwest::Client::new()
        .get(format!("http://{before}/"))
        .header("cookie", format!("{OLD_COOKIE}={alices_old}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.text().await.unwrap(), "anonymous");
    // Someone who signs in on the new app during the migration is simply signed in.
    carol_browser.sign_in(during, "carol", "carol-new-pw").await;
    assert_eq!(carol_browser.get(during, "/").await.1, "carol");

    // After: the old layer removed. Moved users stay signed in; dave, who never came back
    // during the migration, signs in again.
    let after = common::serve(apps::after(
        ours::Backend::open(&url).await.unwrap(),
        new_layer(&new_store),
    ))
    .await;
    for (browser, name) in [(&alice, "alice"), (&bob, "bob"), (&carol_browser, "carol")] {
        assert_eq!(browser.get(after, "/").await.1, name);
    }
    assert!(dave.cookie(OLD_COOKIE).is_some());
    assert_eq!(dave.get(after, "/").await.1, "anonymous");
    assert_eq!(dave.get(after, "/account").await.0, StatusCode::SEE_OTHER);
}
