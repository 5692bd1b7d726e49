//! The layer over SQLite, driven over real HTTP on loopback: what ends up in the file and
//! in the logs, rotation, logout, and a save racing a logout.

mod common;

use std::sync::Arc;

use common::app::{call, router, serve};
use common::TempStore;
use reqwest::{Method, StatusCode};
use session_layer::id::SessionId;
use session_layer_sqlite::sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use session_layer_sqlite::sqlx::{self, Connection};

async fn row_exists(t: &TempStore, cookie: &str) -> bool {
    let key = SessionId::parse(cookie.as_bytes())
        .expect("an issued ID")
        .storage_key();
    let mut conn = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&t.path))
        .await
        .expect("a connection");
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sessions WHERE key = ?1)")
        .bind(&key.as_bytes()[..])
        .fetch_one(&mut conn)
        .await
        .expect("query")
}

#[tokio::test]
async fn no_row_no_file_byte_and_no_log_line_contains_a_cookie_value() {
    let logs = session_layer::testing::logs::LogCapture::global();
    let t = Arc::new(TempStore::new().await);
    let addr = serve(router(t.store.clone())).await;
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
            row_exists(&t, &cookie).await,
            "the row is keyed by the ID's hash"
        );
    }

    let mut conn = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&t.path))
        .await
        .expect("a connection");
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT hex(key) || '|' || coalesce(user_id, '') || '|' || created || '|' || last_seen \
         || '|' || expires || '|' || persistent || '|' || data FROM sessions",
    )
    .fetch_all(&mut conn)
    .await
    .expect("the rows as text");
    assert_eq!(rows.len(), 20);
    // Every byte on disk too: the database file and its write-ahead log.
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(t.dir()).expect("the directory") {
        bytes.extend(std::fs::read(entry.expect("an entry").path()).expect("a file"));
    }
    let on_disk = String::from_utf8_lossy(&bytes);
    assert!(
        logs.lines() > 0,
        "nothing was logged at all: the check would be empty"
    );
    for cookie in &issued {
        for row in &rows {
            assert!(!row.contains(cookie.as_str()), "a row holds a cookie value");
        }
        assert!(
            !on_disk.contains(cookie.as_str()),
            "the database file holds a cookie value"
        );
        assert!(
            !logs.contains(cookie.as_str()),
            "a log line holds a cookie value"
        );
    }
}

#[tokio::test]
async fn rotation_at_login_deletes_the_old_row_and_the_old_id_is_anonymous() {
    let t = TempStore::new().await;
    let addr = serve(router(t.store.clone())).await;
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
    assert!(!row_exists(&t, &old).await, "the old row survived rotation");
    assert!(row_exists(&t, &new).await);

    let replay = call(&client, addr, Method::GET, "/get/cart", Some(&old)).await;
    assert_eq!(replay.body, "none", "the old ID still opens the session");
    let current = call(&client, addr, Method::GET, "/get/cart", Some(&new)).await;
    assert_eq!(current.body, "\"apple\"", "data was not carried over");
}

#[tokio::test]
async fn logout_deletes_the_row_and_a_slower_save_does_not_bring_it_back() {
    let t = TempStore::new().await;
    let addr = serve(router(t.store.clone())).await;
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
    assert!(!row_exists(&t, &cookie).await, "logout left the row");

    let slow = slow.await.expect("the slow request");
    assert_eq!(slow.status, StatusCode::OK);
    assert!(
        !row_exists(&t, &cookie).await,
        "a slow save revived a logged-out session"
    );
    let replay = call(&client, addr, Method::GET, "/get/n", Some(&cookie)).await;
    assert_eq!(replay.body, "none");
    if let Some(fresh) = slow.cookie.filter(|c| !c.is_empty()) {
        assert_ne!(fresh, cookie);
    }
}
