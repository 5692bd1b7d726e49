//! The layer over PostgreSQL, driven over real HTTP on loopback: what ends up in the table
//! and in the logs, rotation, logout, and a save racing a logout.

mod common;

use common::app::{call, router, serve};
use reqwest::{Method, StatusCode};
use session_layer::id::SessionId;
use session_layer_postgres::sqlx;
use session_layer_postgres::PostgresStore;

/// A store on a table of its own, and that table's qualified name.
async fn own_table() -> Option<(PostgresStore, String)> {
    let name = format!("h_{}", common::random_suffix());
    let builder = PostgresStore::builder()
        .with_table(&name)
        .expect("valid name");
    let store = common::store_with(builder).await?;
    Some((store, format!("\"{}\".\"{name}\"", common::run_schema())))
}

async fn row_exists(store: &PostgresStore, table: &str, cookie: &str) -> bool {
    let key = SessionId::parse(cookie.as_bytes())
        .expect("an issued ID")
        .storage_key();
    sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM {table} WHERE key = $1)"
    ))
    .bind(&key.as_bytes()[..])
    .fetch_one(store.pool())
    .await
    .expect("query")
}

#[tokio::test]
async fn no_row_and_no_log_line_contains_a_cookie_value() {
    let logs = session_layer::testing::logs::LogCapture::global();
    let Some((store, table)) = own_table().await else {
        return;
    };
    let addr = serve(router(store.clone())).await;
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
            row_exists(&store, &table, &cookie).await,
            "the row is keyed by the ID's hash"
        );
    }

    let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT t::text FROM {table} t"))
        .fetch_all(store.pool())
        .await
        .expect("the rows as text");
    assert_eq!(rows.len(), 20);
    assert!(
        logs.lines() > 0,
        "nothing was logged at all: the check would be empty"
    );
    for cookie in &issued {
        for row in &rows {
            assert!(!row.contains(cookie.as_str()), "a row holds a cookie value");
        }
        assert!(
            !logs.contains(cookie.as_str()),
            "a log line holds a cookie value"
        );
    }
}

#[tokio::test]
async fn rotation_at_login_deletes_the_old_row_and_the_old_id_is_anonymous() {
    let Some((store, table)) = own_table().await else {
        return;
    };
    let addr = serve(router(store.clone())).await;
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
        !row_exists(&store, &table, &old).await,
        "the old row survived rotation"
    );
    assert!(row_exists(&store, &table, &new).await);

    let replay = call(&client, addr, Method::GET, "/get/cart", Some(&old)).await;
    assert_eq!(replay.body, "none", "the old ID still opens the session");
    let current = call(&client, addr, Method::GET, "/get/cart", Some(&new)).await;
    assert_eq!(current.body, "\"apple\"", "data was not carried over");
}

#[tokio::test]
async fn logout_deletes_the_row_and_a_slower_save_does_not_bring_it_back() {
    let Some((store, table)) = own_table().await else {
        return;
    };
    let addr = serve(router(store.clone())).await;
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
    assert!(
        !row_exists(&store, &table, &cookie).await,
        "logout left the row"
    );

    let slow = slow.await.expect("the slow request");
    assert_eq!(slow.status, StatusCode::OK);
    assert!(
        !row_exists(&store, &table, &cookie).await,
        "a slow save revived a logged-out session"
    );
    let replay = call(&client, addr, Method::GET, "/get/n", Some(&cookie)).await;
    assert_eq!(replay.body, "none");
    // The slow request's write went to a fresh session, never into the old one.
    if let Some(fresh) = slow.cookie.filter(|c| !c.is_empty()) {
        assert_ne!(fresh, cookie);
    }
}
