//! Apps open and migrate stores inside spawned tasks, which need `Send` futures. This file
//! only has to compile: a future that is not provably `Send` fails the build.

use session_layer_mysql::MySqlStore;

fn assert_send<T: Send>(_: &T) {}

#[test]
fn public_futures_are_send() {
    let use_store = async {
        let store = MySqlStore::connect("mysql://unused").await.unwrap();
        store.migrate().await.unwrap();
    };
    assert_send(&use_store);
}
