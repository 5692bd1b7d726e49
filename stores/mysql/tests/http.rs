//! The layer over MySQL, driven over real HTTP on loopback: what ends up in the table and in
//! the logs, rotation, logout, and a save racing a logout.

mod common;

use async_trait::async_trait;
use session_layer::id::StorageKey;
use session_layer_mysql::sqlx::{self, AssertSqlSafe};
use session_layer_mysql::MySqlStore;
use session_layer_test_support::http::{self, Rows};
use session_layer_test_support::logs::LogCapture;

/// A store on a table of its own, and that table's name.
#[derive(Debug)]
struct OwnTable {
    store: MySqlStore,
    table: String,
}

impl OwnTable {
    async fn new() -> Option<Self> {
        let table = common::own_table_name("h");
        let builder = MySqlStore::builder()
            .with_table(&table)
            .expect("valid name");
        let store = common::store_with(builder).await?;
        Some(Self { store, table })
    }
}

#[async_trait]
impl Rows for OwnTable {
    async fn holds(&self, key: &StorageKey) -> bool {
        let found: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM `{}` WHERE `key` = ?)",
            self.table
        )))
        .bind(&key.as_bytes()[..])
        .fetch_one(self.store.pool())
        .await
        .expect("query");
        found == 1
    }

    async fn all_as_text(&self) -> Vec<String> {
        sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT CONCAT_WS('|', HEX(`key`), CAST(user_id AS CHAR), created, last_seen, \
             idle_deadline, absolute_deadline, expires, persistent, data, format) FROM `{}`",
            self.table
        )))
        .fetch_all(self.store.pool())
        .await
        .expect("the rows as text")
    }
}

#[tokio::test]
async fn no_row_and_no_log_line_contains_a_cookie_value() {
    let logs = LogCapture::global();
    let Some(t) = OwnTable::new().await else {
        return;
    };
    http::no_row_and_no_log_line_contains_a_cookie_value(t.store.clone(), &t, logs).await;
}

#[tokio::test]
async fn rotation_at_login_deletes_the_old_row_and_the_old_id_is_anonymous() {
    let Some(t) = OwnTable::new().await else {
        return;
    };
    http::rotation_at_login_deletes_the_old_row_and_the_old_id_is_anonymous(t.store.clone(), &t)
        .await;
}

#[tokio::test]
async fn logout_deletes_the_row_and_a_slower_save_does_not_bring_it_back() {
    let Some(t) = OwnTable::new().await else {
        return;
    };
    http::logout_deletes_the_row_and_a_slower_save_does_not_bring_it_back(t.store.clone(), &t)
        .await;
}
