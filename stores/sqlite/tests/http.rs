//! The layer over SQLite, driven over real HTTP on loopback: what ends up in the file and
//! in the logs, rotation, logout, and a save racing a logout.

mod common;

use async_trait::async_trait;
use common::TempStore;
use session_layer::id::StorageKey;
use session_layer_sqlite::sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use session_layer_sqlite::sqlx::{self, Connection};
use session_layer_test_support::http::{self, Rows};
use session_layer_test_support::logs::LogCapture;

/// The rows, read over a connection of their own, as another process would.
#[async_trait]
impl Rows for TempStore {
    async fn holds(&self, key: &StorageKey) -> bool {
        let mut conn = connect(self).await;
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sessions WHERE key = ?1)")
            .bind(&key.as_bytes()[..])
            .fetch_one(&mut conn)
            .await
            .expect("query")
    }

    async fn all_as_text(&self) -> Vec<String> {
        let mut conn = connect(self).await;
        sqlx::query_scalar(
            "SELECT hex(key) || '|' || coalesce(user_id, '') || '|' || created || '|' || last_seen \
             || '|' || expires || '|' || persistent || '|' || data FROM sessions",
        )
        .fetch_all(&mut conn)
        .await
        .expect("the rows as text")
    }
}

async fn connect(t: &TempStore) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&t.path))
        .await
        .expect("a connection")
}

#[tokio::test]
async fn no_row_no_file_byte_and_no_log_line_contains_a_cookie_value() {
    let logs = LogCapture::global();
    let t = TempStore::new().await;
    let issued =
        http::no_row_and_no_log_line_contains_a_cookie_value(t.store.clone(), &t, logs).await;
    // Every byte on disk too: the database file and its write-ahead log.
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(t.dir()).expect("the directory") {
        bytes.extend(std::fs::read(entry.expect("an entry").path()).expect("a file"));
    }
    let on_disk = String::from_utf8_lossy(&bytes);
    for cookie in &issued {
        assert!(
            !on_disk.contains(cookie.as_str()),
            "the database file holds a cookie value"
        );
    }
}

#[tokio::test]
async fn rotation_at_login_deletes_the_old_row_and_the_old_id_is_anonymous() {
    let t = TempStore::new().await;
    http::rotation_at_login_deletes_the_old_row_and_the_old_id_is_anonymous(t.store.clone(), &t)
        .await;
}

#[tokio::test]
async fn logout_deletes_the_row_and_a_slower_save_does_not_bring_it_back() {
    let t = TempStore::new().await;
    http::logout_deletes_the_row_and_a_slower_save_does_not_bring_it_back(t.store.clone(), &t)
        .await;
}
