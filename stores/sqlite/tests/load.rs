//! 10,000 concurrent requests over 1,000 sessions, each writing its own key, through the
//! layer and a real SQLite file: every write is kept, none lands in another session.

mod common;

use common::TempStore;
use session_layer_test_support::load;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_writes_over_a_thousand_sessions_are_all_kept() {
    let temp = TempStore::new().await;
    let store = temp.store.clone();
    load::ten_thousand_concurrent_writes_over_a_thousand_sessions_are_all_kept(store, "sqlite")
        .await;
}
