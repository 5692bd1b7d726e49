//! What the Redis store promises beyond the shared contract, checked against a private
//! `redis-server` each test starts: Redis-native expiry, the user index's own expiry, the
//! key prefix, failure kinds, unreadable records, and scripts a server has forgotten.

mod common;

use session_layer_test_support::StoreExt as _;
use std::time::{Duration as StdDuration, Instant};

use common::RedisServer;
use redis::AsyncCommands;
use serde_json::json;
use session_layer::id::{SessionId, StorageKey};
use session_layer::record::{Change, Record};
use session_layer::store::{Rotated, SessionStore};
use session_layer::StoreErrorKind;
use session_layer_redis::RedisStore;
use time::{Duration, OffsetDateTime};

fn now() -> OffsetDateTime {
    session_layer::clock::to_millis(OffsetDateTime::now_utc())
}

fn key() -> StorageKey {
    SessionId::generate().storage_key()
}

/// Idle deadline in one hour, absolute in two.
fn record(t: OffsetDateTime) -> Record {
    let mut r = Record::new(t, t + Duration::hours(1), t + Duration::hours(2));
    r.data_mut().insert("greeting".into(), json!("hello"));
    r
}

async fn pttl(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    conn.pttl(key).await.unwrap()
}

fn assert_near(actual_ms: i64, expected: Duration) {
    let expected = expected.whole_milliseconds() as i64;
    assert!(
        actual_ms <= expected && actual_ms > expected - 5_000,
        "TTL {actual_ms} ms, expected just under {expected} ms"
    );
}

#[tokio::test]
async fn every_session_key_carries_its_remaining_lifetime_as_ttl() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = server.store().await;
    let mut redis = server.inspector().await;
    let (t, k) = (now(), key());
    store.create(&k, &record(t)).await.unwrap();
    let name = store.redis_key(&k);
    assert_near(pttl(&mut redis, &name).await, Duration::hours(1));

    // A touch moves the TTL with the idle deadline, relative to the time seen.
    let seen = t + Duration::minutes(10);
    assert!(store
        .touch(&k, seen, seen + Duration::minutes(30))
        .await
        .unwrap());
    assert_near(pttl(&mut redis, &name).await, Duration::minutes(30));

    // No touch reaches past the absolute deadline: 85 minutes were left at `seen`.
    let seen = t + Duration::minutes(35);
    assert!(store
        .touch(&k, seen, seen + Duration::hours(2))
        .await
        .unwrap());
    assert_near(pttl(&mut redis, &name).await, Duration::minutes(85));

    // An update recomputes it from the layer's `now`.
    let mut change = Change::default();
    change.set("n", json!(1));
    store
        .update(&k, &change, t + Duration::minutes(110))
        .await
        .unwrap()
        .expect("live");
    assert_near(pttl(&mut redis, &name).await, Duration::minutes(10));

    // A rotated record keeps its deadlines, hence its TTL.
    let new = key();
    let outcome = store
        .rotate_to(&k, &new, &Change::default(), t + Duration::minutes(110))
        .await
        .unwrap();
    assert!(matches!(outcome, Rotated::Done(_)));
    assert_near(
        pttl(&mut redis, &store.redis_key(&new)).await,
        Duration::minutes(10),
    );
    let exists: bool = redis.exists(&name).await.unwrap();
    assert!(!exists, "the rotated-away key is still in Redis");

    // A touch that leaves no lifetime deletes the key instead of keeping it.
    let seen = t + Duration::minutes(111);
    store.touch(&new, seen, seen).await.unwrap();
    let exists: bool = redis.exists(store.redis_key(&new)).await.unwrap();
    assert!(!exists, "a session with no lifetime left was kept");
}

#[tokio::test]
async fn a_users_index_is_pruned_and_expires_with_its_last_session() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = server.store().await;
    let mut redis = server.inspector().await;
    let t = now();
    let (short, long) = (key(), key());
    for (k, life) in [(short, Duration::hours(1)), (long, Duration::hours(3))] {
        let mut r = Record::new(t, t + life, t + life);
        r.meta.user = Some("alice".into());
        store.create(&k, &r).await.unwrap();
    }
    let index = store.user_index_key("alice");
    assert!(
        !index.contains("alice"),
        "the index key spells the user name"
    );
    assert_near(pttl(&mut redis, &index).await, Duration::hours(3));
    let members: Vec<String> = redis.zrange(&index, 0, -1).await.unwrap();
    assert_eq!(members.len(), 2);

    // Past the first session's absolute deadline its entry is dropped by the next read.
    let later = t + Duration::minutes(90);
    let listed = store.list_by_user("alice", later).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].handle.storage_key(), long);
    let members: Vec<String> = redis.zrange(&index, 0, -1).await.unwrap();
    assert_eq!(
        members,
        vec![long.to_hex()],
        "a dead entry stayed in the index"
    );

    // Revoking everything empties the index, and Redis drops the empty set.
    assert_eq!(store.delete_by_user("alice", None, later).await.unwrap(), 1);
    let exists: bool = redis.exists(&index).await.unwrap();
    assert!(!exists, "an empty index was left behind");
}

#[tokio::test]
async fn every_key_the_store_writes_starts_with_its_prefix() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::builder(server.url())
        .with_key_prefix("app1:sess:")
        .connect()
        .await
        .unwrap();
    assert_eq!(store.key_prefix(), "app1:sess:");
    let t = now();
    let (a, b) = (key(), key());
    let mut r = record(t);
    r.meta.user = Some("bob".into());
    store.create(&a, &r).await.unwrap();
    store
        .rotate_to(&a, &b, &Change::default(), t)
        .await
        .unwrap();
    store.list_by_user("bob", t).await.unwrap();
    let mut redis = server.inspector().await;
    let keys: Vec<String> = redis.keys("*").await.unwrap();
    // The session, its user's index, and the short-lived note the rotation left under the
    // old key (naming the new one, for a revocation that read the index before it).
    assert_eq!(
        keys.len(),
        3,
        "expected one session, one index and one rotation note: {keys:?}"
    );
    for k in keys {
        assert!(k.starts_with("app1:sess:"), "{k} is outside the prefix");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_reported_unavailable_and_its_return_is_noticed() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store = server.store().await;
    let (t, k) = (now(), key());
    store.create(&k, &record(t)).await.unwrap();
    server.stop();
    let started = Instant::now();
    let error = store.load(&k, None, t).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    let error = store.create(&key(), &record(t)).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    assert!(
        started.elapsed() < StdDuration::from_secs(1),
        "failing took too long"
    );

    server.restart();
    // The very first call after the server is back succeeds (its data is gone: no disk).
    assert_eq!(store.load(&k, None, t).await.unwrap(), None);
    assert!(store.create(&k, &record(t)).await.unwrap());

    // A port nobody listens on is unavailable from the start.
    let port = server.port;
    drop(server);
    let error = RedisStore::connect(&format!("redis://127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
}

#[tokio::test]
async fn a_stalled_server_fails_calls_within_the_command_timeout() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = server.store().await; // 300 ms per command
    let (t, k) = (now(), key());
    store.create(&k, &record(t)).await.unwrap();
    server.pause();
    let started = Instant::now();
    let error = store.load(&k, None, t).await.unwrap_err();
    let took = started.elapsed();
    server.resume();
    assert_eq!(error.kind(), StoreErrorKind::Timeout, "{error}");
    assert!(
        took < StdDuration::from_millis(800),
        "a stalled server held the call for {took:?}"
    );
    assert!(store.load(&k, None, t).await.unwrap().is_some());
}

#[tokio::test]
async fn an_unreadable_record_is_absent_and_never_written_to() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = server.store().await;
    let mut redis = server.inspector().await;
    let (t, k) = (now(), key());
    let name = store.redis_key(&k);
    store.create(&k, &record(t)).await.unwrap();
    let good: Vec<u8> = redis.get(&name).await.unwrap();
    let ms = |d: OffsetDateTime| (d.unix_timestamp_nanos() / 1_000_000).to_string();
    let mut later_version = good.clone();
    later_version[0] = b'3';
    let mut cut_short = good.clone();
    cut_short.pop();
    for (what, value) in [
        ("a later format", later_version),
        ("a damaged value", cut_short),
    ] {
        let _: () = redis.set(&name, &value).await.unwrap();
        assert_eq!(store.load(&k, None, t).await.unwrap(), None, "{what}");
        let mut change = Change::default();
        change.set("x", json!(1));
        if what == "a later format" {
            assert_eq!(store.update(&k, &change, t).await.unwrap(), None, "{what}");
            assert!(!store.touch(&k, t, t + Duration::hours(1)).await.unwrap());
        }
        let outcome = store
            .rotate_to(&k, &key(), &Change::default(), t)
            .await
            .unwrap();
        assert_eq!(outcome, Rotated::Gone, "{what}");
        let after: Vec<u8> = redis.get(&name).await.unwrap();
        assert_eq!(after, value, "{what} was written to");
    }

    // A session of the previous format (one hash per session) reads as absent, and no
    // write turns it into a session of this one.
    let _: () = redis.del(&name).await.unwrap();
    let _: () = redis
        .hset_multiple(
            &name,
            &[
                ("v", "1".to_owned()),
                ("m:created", ms(t)),
                ("m:seen", ms(t)),
                ("m:idle", ms(t + Duration::hours(1))),
                ("m:abs", ms(t + Duration::hours(2))),
                ("m:pers", "0".to_owned()),
                ("d:greeting", "\"hello\"".to_owned()),
            ],
        )
        .await
        .unwrap();
    let before: Vec<(String, String)> = redis.hgetall(&name).await.unwrap();
    assert_eq!(store.load(&k, None, t).await.unwrap(), None);
    let rule = session_layer::store::TouchRule::new(
        Duration::hours(1),
        Duration::days(1),
        Duration::minutes(1),
    );
    assert_eq!(store.load(&k, Some(&rule), t).await.unwrap(), None);
    let mut change = Change::default();
    change.set("x", json!(1));
    assert_eq!(store.update(&k, &change, t).await.unwrap(), None);
    let outcome = store
        .rotate_to(&k, &key(), &Change::default(), t)
        .await
        .unwrap();
    assert_eq!(outcome, Rotated::Gone);
    assert!(!store.create(&k, &record(t)).await.unwrap(), "overwrote it");
    let after: Vec<(String, String)> = redis.hgetall(&name).await.unwrap();
    assert_eq!(
        before, after,
        "a record of the previous format was written to"
    );
}

#[tokio::test]
async fn scripts_a_server_forgot_are_loaded_again() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = server.store().await;
    let (t, k) = (now(), key());
    store.create(&k, &record(t)).await.unwrap();
    assert_eq!(server.cli(&["script", "flush"]).trim(), "OK");
    let mut change = Change::default();
    change.set("after", json!("flush"));
    store.update(&k, &change, t).await.unwrap().expect("live");
    let loaded = store.load(&k, None, t).await.unwrap().expect("live");
    assert_eq!(loaded.data()["after"], json!("flush"));
}

#[tokio::test]
async fn sign_out_everywhere_else_spares_the_session_its_own_rotation_moved() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = server.store().await;
    let t = now();
    let (before, after, other) = (key(), key(), key());
    let mut r = record(t);
    r.meta.user = Some("dana".into());
    store.create(&before, &r).await.unwrap();
    store.create(&other, &r).await.unwrap();
    // A signed-in session gets a new ID (a privilege change), keeping its owner; the old
    // key holds, for a while, the note that leads a revocation to the new one.
    let outcome = store
        .rotate_to(&before, &after, &Change::default(), t)
        .await
        .unwrap();
    assert!(matches!(outcome, Rotated::Done(_)));
    assert_eq!(
        store.delete_by_user("dana", Some(&after), t).await.unwrap(),
        1
    );
    assert!(
        store.load(&after, None, t).await.unwrap().is_some(),
        "the caller's own session was signed out"
    );
    assert!(store.load(&other, None, t).await.unwrap().is_none());
}

/// A session written with the first header of the string format (80 bytes, no idle
/// timeout of its own), as the previous release left it, stays live after the upgrade and
/// takes an idle timeout, which rewrites it with the longer header.
#[tokio::test]
async fn a_session_of_the_first_header_is_read_and_takes_an_idle_timeout() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = server.store().await;
    let mut redis = server.inspector().await;
    let (t, k) = (now(), key());
    let ms = |d: Duration| (t + d).unix_timestamp_nanos() / 1_000_000;
    let value = format!(
        "2080{:016}{:016}{:016}{:016}11{:010}alice4:cart9:[\"apple\"]",
        ms(Duration::ZERO),
        ms(Duration::ZERO),
        ms(Duration::hours(1)),
        ms(Duration::hours(2)),
        5
    );
    let name = store.redis_key(&k);
    let _: () = redis.set_ex(&name, &value, 3600).await.unwrap();

    let loaded = store.load(&k, None, t).await.unwrap().expect("live");
    assert_eq!(loaded.data()["cart"], json!(["apple"]));
    assert_eq!(loaded.meta.user.as_deref(), Some("alice"));
    assert!(loaded.meta.persistent);
    assert_eq!(loaded.meta.idle_timeout, None);
    assert_eq!(loaded.meta.absolute_deadline, t + Duration::hours(2));

    let mut change = Change::default();
    change.idle_timeout = Some(Some(Duration::minutes(5)));
    let meta = store.update(&k, &change, t).await.unwrap().expect("live");
    assert_eq!(meta.idle_timeout, Some(Duration::minutes(5)));
    assert_eq!(meta.idle_deadline, t + Duration::minutes(5));
    let reloaded = store.load(&k, None, t).await.unwrap().expect("live");
    assert_eq!(reloaded.meta, meta);
    assert_eq!(reloaded.data(), loaded.data());
    let raw: String = redis.get(&name).await.unwrap();
    assert!(
        raw.starts_with("2097"),
        "the header was not rewritten: {}",
        &raw[..4]
    );
}
