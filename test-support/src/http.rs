//! The layer over a real store, driven over real HTTP on loopback: what ends up in the
//! store's rows and in the logs, rotation, logout, and a save racing a logout.
//!
//! The checks look at the rows below the [`SessionStore`] contract, through [`Rows`], which
//! each store crate implements with its own SQL:
//!
//! ```no_run
//! use session_layer::id::StorageKey;
//! use session_layer_test_support::http::{self, Rows};
//!
//! /// A store's rows as the store crate reads them. A SQL store runs its own queries here
//! /// (`SELECT EXISTS (SELECT 1 FROM sessions WHERE key = $1)`, `SELECT t::text FROM
//! /// sessions t`); this one keeps them in memory.
//! #[derive(Debug, Default)]
//! struct Table(std::sync::Mutex<Vec<(StorageKey, String)>>);
//!
//! #[async_trait::async_trait]
//! impl Rows for Table {
//!     async fn holds(&self, key: &StorageKey) -> bool {
//!         self.0.lock().unwrap().iter().any(|(k, _)| k == key)
//!     }
//!     async fn all_as_text(&self) -> Vec<String> {
//!         self.0.lock().unwrap().iter().map(|(_, row)| row.clone()).collect()
//!     }
//! }
//!
//! #[tokio::test]
//! async fn rotation_at_login_deletes_the_old_row_and_the_old_id_is_anonymous() {
//!     let store = session_layer::MemoryStore::default();
//!     let table = Table::default();
//!     http::rotation_at_login_deletes_the_old_row_and_the_old_id_is_anonymous(store, &table)
//!         .await;
//! }
//! # fn main() {}
//! ```

use crate::logs::LogCapture;
use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use session_layer::id::{SessionId, StorageKey};
use session_layer::SessionStore;

use crate::app::{call, router, serve};

/// What a store keeps, read with the backend's own queries rather than through the store.
#[async_trait]
pub trait Rows: Send + Sync {
    /// Whether a row is stored under `key`.
    async fn holds(&self, key: &StorageKey) -> bool;
    /// Every stored row, each rendered as one string with all its columns.
    async fn all_as_text(&self) -> Vec<String>;
}

async fn row_exists(rows: &impl Rows, cookie: &str) -> bool {
    let key = SessionId::parse(cookie.as_bytes())
        .expect("an issued ID")
        .storage_key();
    rows.holds(&key).await
}

/// Creates 20 sessions over HTTP through the layer over `store` (rotating every other one at
/// a login), then checks that no row in `rows` and no line in `logs` holds any cookie value
/// the app issued, and that each row is keyed by the ID's hash. Returns every cookie value
/// issued, for checks of other places the backend writes to.
///
/// # Panics
///
/// When a request fails, `rows` does not hold the 20 sessions, nothing was logged, or a row
/// or a log line holds a cookie value.
pub async fn no_row_and_no_log_line_contains_a_cookie_value(
    store: impl SessionStore,
    rows: &impl Rows,
    logs: &LogCapture,
) -> Vec<String> {
    let addr = serve(router(store)).await;
    let client = reqwest::Client::new();
    let mut issued = Vec::new();
    for i in 0..20 {
        let reply = call(&client, addr, Method::POST, &format!("/set/n/{i}"), None).await;
        assert_eq!(reply.status, StatusCode::OK);
        let mut cookie = reply.cookie.expect("a new session");
        issued.push(cookie.clone());
        if i % 2 == 0 {
            let reply = call(
                &client,
                addr,
                Method::POST,
                &format!("/login/user{i}"),
                Some(&cookie),
            )
            .await;
            cookie = reply.cookie.expect("a rotated ID");
            issued.push(cookie.clone());
        }
        let reply = call(&client, addr, Method::GET, "/get/n", Some(&cookie)).await;
        assert_eq!(reply.body, format!("\"{i}\""));
        assert!(
            row_exists(rows, &cookie).await,
            "the row is keyed by the ID's hash"
        );
    }

    let all = rows.all_as_text().await;
    assert_eq!(all.len(), 20);
    assert!(
        logs.lines() > 0,
        "nothing was logged at all: the check would be empty"
    );
    for cookie in &issued {
        for row in &all {
            assert!(!row.contains(cookie.as_str()), "a row holds a cookie value");
        }
        assert!(
            !logs.contains(cookie.as_str()),
            "a log line holds a cookie value"
        );
    }
    issued
}

/// Signs in over HTTP with a session that holds data: the ID changes, the old row is gone,
/// the old ID opens nothing, and the data moved to the new ID.
///
/// # Panics
///
/// When any of that does not hold.
pub async fn rotation_at_login_deletes_the_old_row_and_the_old_id_is_anonymous(
    store: impl SessionStore,
    rows: &impl Rows,
) {
    let addr = serve(router(store)).await;
    let client = reqwest::Client::new();
    let old = call(&client, addr, Method::POST, "/set/cart/apple", None)
        .await
        .cookie
        .expect("a session");
    let new = call(&client, addr, Method::POST, "/login/alice", Some(&old))
        .await
        .cookie
        .expect("a rotated ID");
    assert_ne!(old, new);
    assert!(
        !row_exists(rows, &old).await,
        "the old row survived rotation"
    );
    assert!(row_exists(rows, &new).await);

    let replay = call(&client, addr, Method::GET, "/get/cart", Some(&old)).await;
    assert_eq!(replay.body, "none", "the old ID still opens the session");
    let current = call(&client, addr, Method::GET, "/get/cart", Some(&new)).await;
    assert_eq!(current.body, "\"apple\"", "data was not carried over");
}

/// Logs out over HTTP while a slower request on the same session is between its read and
/// its write: logout removes the cookie and the row, and the slow save does not bring the
/// row back.
///
/// # Panics
///
/// When logout fails or leaves the row, or the slow save revives the session.
pub async fn logout_deletes_the_row_and_a_slower_save_does_not_bring_it_back(
    store: impl SessionStore,
    rows: &impl Rows,
) {
    let addr = serve(router(store)).await;
    let client = reqwest::Client::new();
    let cookie = call(&client, addr, Method::POST, "/set/n/1", None)
        .await
        .cookie
        .expect("a session");

    let slow = {
        let (client, cookie) = (client.clone(), cookie.clone());
        tokio::spawn(
            async move { call(&client, addr, Method::POST, "/slow/n/2", Some(&cookie)).await },
        )
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let bye = call(&client, addr, Method::POST, "/logout", Some(&cookie)).await;
    assert_eq!(bye.status, StatusCode::OK);
    assert_eq!(
        bye.cookie.as_deref(),
        Some(""),
        "logout sends a removal cookie"
    );
    assert!(!row_exists(rows, &cookie).await, "logout left the row");

    let slow = slow.await.expect("the slow request");
    assert_eq!(slow.status, StatusCode::OK);
    assert!(
        !row_exists(rows, &cookie).await,
        "a slow save revived a logged-out session"
    );
    let replay = call(&client, addr, Method::GET, "/get/n", Some(&cookie)).await;
    assert_eq!(replay.body, "none");
    // The slow request's write went to a fresh session, never into the old one.
    if let Some(fresh) = slow.cookie.filter(|c| !c.is_empty()) {
        assert_ne!(fresh, cookie);
    }
}
