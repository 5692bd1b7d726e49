//! Apps open stores inside spawned tasks, which need `Send` futures. This file only has to
//! compile: a future that is not provably `Send` fails the build.

use session_layer_redis::RedisStore;

fn assert_send<T: Send>(_: &T) {}

#[test]
fn public_futures_are_send() {
    let use_store = async {
        let _store = RedisStore::connect("redis://unused").await.unwrap();
    };
    assert_send(&use_store);
    let through_sentinel = async {
        let _store = RedisStore::sentinel_builder(["redis://unused"], "unused")
            .with_replication_wait(1, std::time::Duration::from_millis(100))
            .connect()
            .await
            .unwrap();
    };
    assert_send(&through_sentinel);
}
