//! A user's index under stress, on private `redis-server`s: a server that evicts keys
//! (refused or warned about at start, and a revocation that finds the index evicted
//! fails instead of ending nothing), and one user with 10,000 sessions, listed and
//! revoked within the store's per-command timeout.

mod common;

use common::RedisServer;
use futures_util::future::try_join_all;
use redis::AsyncCommands;
use session_layer::id::{SessionId, StorageKey};
use session_layer::record::Record;
use session_layer::store::SessionStore;
use session_layer::StoreErrorKind;
use session_layer_redis::RedisStore;
use session_layer_test_support::logs::LogCapture;
use time::{Duration, OffsetDateTime};

fn now() -> OffsetDateTime {
    session_layer::clock::to_millis(OffsetDateTime::now_utc())
}

fn owned_by(user: &str, t: OffsetDateTime, bytes: usize) -> Record {
    let mut r = Record::new(t, t + Duration::hours(1), t + Duration::hours(2));
    r.meta.user = Some(user.to_owned());
    if bytes > 0 {
        r.data_mut().insert("blob".into(), "x".repeat(bytes).into());
    }
    r
}

/// Creates `n` sessions of `user` holding `bytes` of data each, a few hundred at a time.
async fn sign_in_many(
    store: &RedisStore,
    user: &str,
    n: usize,
    bytes: usize,
    t: OffsetDateTime,
) -> Vec<StorageKey> {
    let keys: Vec<StorageKey> = (0..n)
        .map(|_| SessionId::generate().storage_key())
        .collect();
    let record = owned_by(user, t, bytes);
    for chunk in keys.chunks(250) {
        let created = try_join_all(chunk.iter().map(|k| store.create(k, &record)))
            .await
            .expect("create");
        assert!(created.into_iter().all(|c| c), "a create collided");
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_may_evict_sessions_is_refused_on_request_and_warned_about() {
    let logs = LogCapture::global();
    let Some(evicting) =
        RedisServer::start_with_args(&["--maxmemory", "8mb", "--maxmemory-policy", "volatile-lru"])
    else {
        return;
    };
    let error = RedisStore::builder(evicting.url())
        .refuse_evicting_server(true)
        .connect()
        .await
        .expect_err("a server that may evict sessions was accepted");
    assert_eq!(error.kind(), StoreErrorKind::Other, "{error}");
    assert!(error.to_string().contains("noeviction"), "{error}");
    RedisStore::builder(evicting.url())
        .connect()
        .await
        .expect("without the switch, a warning only");
    assert!(
        logs.contains("maxmemory-policy noeviction"),
        "no warning about the eviction policy"
    );

    let Some(safe) = RedisServer::start_with_args(&["--maxmemory", "8mb"]) else {
        return;
    };
    RedisStore::builder(safe.url())
        .refuse_evicting_server(true)
        .connect()
        .await
        .expect("a noeviction server is accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_index_makes_sign_out_everywhere_fail_instead_of_ending_nothing() {
    // Filler keys without a TTL are never evicted under volatile-random: only the
    // sessions and the index are, in random order, and each large session evicted makes
    // room for a few more fillers.
    let Some(server) = RedisServer::start_with_args(&[
        "--maxmemory",
        "4mb",
        "--maxmemory-policy",
        "volatile-random",
    ]) else {
        return;
    };
    let store = server.store().await;
    let mut redis = server.inspector().await;
    let filler = vec![b'x'; 8 * 1024];
    for attempt in 0..30 {
        assert_eq!(server.cli(&["flushall"]).trim(), "OK");
        let (t, user) = (now(), format!("evicted-{attempt}"));
        let keys = sign_in_many(&store, &user, 8, 128 * 1024, t).await;
        let (own, index) = (store.redis_key(&keys[0]), store.user_index_key(&user));
        let mut i = 0;
        loop {
            let stored: redis::RedisResult<()> = redis.set(format!("filler-{i}"), &filler).await;
            i += 1;
            let index_left: bool = redis.exists(&index).await.unwrap();
            if stored.is_err() || !index_left || i > 2_000 {
                break;
            }
        }
        let index_left: bool = redis.exists(&index).await.unwrap();
        let own_left: bool = redis.exists(&own).await.unwrap();
        if index_left || !own_left {
            continue;
        }
        // The pressure is gone; the index is not.
        let _: () = redis::cmd("EVAL")
            .arg("for _, k in ipairs(redis.call('KEYS', 'filler-*')) do redis.call('DEL', k) end")
            .arg(0)
            .query_async(&mut redis)
            .await
            .unwrap();
        let error = store
            .delete_by_user(&user, Some(&keys[0]), t)
            .await
            .expect_err("sign-out everywhere reported success with its index evicted");
        assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
        assert!(error.to_string().contains("noeviction"), "{error}");
        return;
    }
    panic!("the server never evicted the index while the caller's session lived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_sessions_of_one_user_are_listed_and_revoked_within_the_timeouts() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // 300 ms per command, as the fault tests use.
    let store = server.store().await;
    let mut redis = server.inspector().await;
    let (t, user) = (now(), "many-devices");
    let keys = sign_in_many(&store, user, 10_000, 0, t).await;
    // A hundred of them end behind the index's back (as a TTL would end them).
    for k in &keys[1..101] {
        let _: () = redis.del(store.redis_key(k)).await.unwrap();
    }
    let listed = store.list_by_user(user, t).await.expect("list");
    assert_eq!(listed.len(), 9_900);
    let entries: usize = redis.zcard(store.user_index_key(user)).await.unwrap();
    assert_eq!(
        entries, 9_900,
        "dead entries stayed in the index after a listing"
    );

    let ended = store
        .delete_by_user(user, Some(&keys[0]), t)
        .await
        .expect("revoke");
    assert_eq!(ended, 9_899);
    let listed = store.list_by_user(user, t).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].handle.storage_key(), keys[0]);
    let entries: usize = redis.zcard(store.user_index_key(user)).await.unwrap();
    assert_eq!(entries, 1, "revoked entries stayed in the index");
}
