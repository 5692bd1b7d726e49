//! 10,000 concurrent requests over 1,000 sessions, each writing its own key, through the
//! layer and a real PostgreSQL: every write is kept, none lands in another session.

mod common;

use session_layer_postgres::PostgresStore;
use session_layer_test_support::load;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_writes_over_a_thousand_sessions_are_all_kept() {
    let name = format!("load_{}", common::random_suffix());
    let builder = PostgresStore::builder()
        .with_table(&name)
        .expect("valid name")
        .with_max_connections(16);
    let Some(store) = common::store_with(builder).await else {
        return;
    };
    load::ten_thousand_concurrent_writes_over_a_thousand_sessions_are_all_kept(store, "postgres")
        .await;
}
