//! 10,000 concurrent requests over 1,000 sessions, each writing its own key, through the
//! layer and a real MySQL or MariaDB: every write is kept, none lands in another session.

mod common;

use session_layer_mysql::MySqlStore;
use session_layer_test_support::load;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_writes_over_a_thousand_sessions_are_all_kept() {
    let builder = MySqlStore::builder()
        .with_table(common::own_table_name("load"))
        .expect("valid name")
        .with_max_connections(16);
    let Some(store) = common::store_with(builder).await else {
        return;
    };
    load::ten_thousand_concurrent_writes_over_a_thousand_sessions_are_all_kept(store, "mysql")
        .await;
}
