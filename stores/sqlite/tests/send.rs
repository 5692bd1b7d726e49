//! Apps open and migrate stores inside spawned tasks, which need `Send` futures. This file
//! only has to compile: a future that is not provably `Send` fails the build.

use session_layer_sqlite::SqliteStore;

fn assert_send<T: Send>(_: &T) {}

#[test]
fn public_futures_are_send() {
    let dir = tempfile::tempdir().unwrap();
    let open = SqliteStore::open(dir.path().join("s.db"));
    assert_send(&open);
    let use_store = async {
        let store = open.await.unwrap();
        store.migrate().await.unwrap();
        store.close().await;
    };
    assert_send(&use_store);
}
