//! The layer over PostgreSQL, driven over real HTTP on loopback: what ends up in the table
//! and in the logs, rotation, logout, and a save racing a logout.

mod common;

use async_trait::async_trait;
use session_layer::id::StorageKey;
use session_layer_postgres::sqlx;
use session_layer_postgres::PostgresStore;
use session_layer_test_support::http::{self, Rows};
use session_layer_test_support::logs::LogCapture;

/// A store on a table of its own, and that table's qualified name.
#[derive(Debug)]
struct OwnTable {
    store: PostgresStore,
    table: String,
}

impl OwnTable {
    async fn new() -> Option<Self> {
        let name = format!("h_{}", common::random_suffix());
        let builder = PostgresStore::builder()
            .with_table(&name)
            .expect("valid name");
        let store = common::store_with(builder).await?;
        let table = format!("\"{}\".\"{name}\"", common::run_schema());
        Some(Self { store, table })
    }
}

#[async_trait]
impl Rows for OwnTable {
    async fn holds(&self, key: &StorageKey) -> bool {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE key = $1)",
            self.table
        )))
        .bind(&key.as_bytes()[..])
        .fetch_one(self.store.pool())
        .await
        .expect("query")
    }

    async fn all_as_text(&self) -> Vec<String> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT t::text FROM {} t",
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
