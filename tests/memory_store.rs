//! `MemoryStore`'s own promises: bounded, evicts expired records by itself, and concurrent.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{body, new_value, TestApp};
use session_layer::id::SessionId;
use session_layer::record::Record;
use session_layer::{MemoryStore, SessionStore, StoreErrorKind};
use time::OffsetDateTime;

fn record(now: OffsetDateTime, idle_secs: i64) -> Record {
    Record::new(
        now,
        now + time::Duration::seconds(idle_secs),
        now + time::Duration::hours(2),
    )
}

#[tokio::test]
async fn at_capacity_new_sessions_are_refused_and_live_ones_kept() {
    let store = MemoryStore::default().with_capacity(3);
    let now = OffsetDateTime::now_utc();
    let mut keys = Vec::new();
    for _ in 0..3 {
        let k = SessionId::generate().storage_key();
        assert!(store.create(&k, &record(now, 3600)).await.unwrap());
        keys.push(k);
    }
    let err = store
        .create(&SessionId::generate().storage_key(), &record(now, 3600))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Full);
    assert!(err.to_string().contains("with_capacity"), "{err}");
    for k in &keys {
        assert!(
            store.load(k, None, now).await.unwrap().is_some(),
            "a live session was evicted"
        );
    }
}

#[tokio::test]
async fn at_capacity_expired_records_make_room() {
    let store = MemoryStore::default().with_capacity(3);
    let now = OffsetDateTime::now_utc();
    for _ in 0..3 {
        let k = SessionId::generate().storage_key();
        assert!(store.create(&k, &record(now, 1)).await.unwrap());
    }
    let later = now + time::Duration::seconds(5);
    let k = SessionId::generate().storage_key();
    assert!(store.create(&k, &record(later, 3600)).await.unwrap());
    assert_eq!(store.len(), 1, "expired records were not evicted");
}

#[tokio::test]
async fn a_create_at_capacity_does_not_sweep_every_shard() {
    // 8,000 sessions that all expire, spread over every shard. A create at capacity must
    // not walk them all: it sweeps a bounded part of the store, and within the same second
    // a create that still finds no room is refused without sweeping more. What was swept
    // shows in `len()`.
    const CAPACITY: usize = 8_000;
    let store = MemoryStore::default().with_capacity(CAPACITY);
    let now = OffsetDateTime::now_utc();
    for _ in 0..CAPACITY {
        let k = SessionId::generate().storage_key();
        assert!(store.create(&k, &record(now, 60)).await.unwrap());
    }
    let later = now + time::Duration::minutes(2);
    let create = || async {
        store
            .create(&SessionId::generate().storage_key(), &record(later, 3600))
            .await
    };
    assert!(create().await.unwrap(), "a create at capacity made no room");
    let after_one = store.len();
    assert!(
        after_one > CAPACITY / 2,
        "one create at capacity swept {} of {CAPACITY} expired records",
        CAPACITY + 1 - after_one
    );
    // Fill the room that sweep made, then one more: refused in the same second, with the
    // expired records of the other shards still there.
    let mut made = 1;
    let refused = loop {
        match create().await {
            Ok(created) => {
                assert!(created);
                made += 1;
                assert!(
                    made <= CAPACITY,
                    "every create succeeded: the store was swept whole"
                );
            }
            Err(err) => break err,
        }
    };
    assert_eq!(refused.kind(), StoreErrorKind::Full);
    assert_eq!(store.len(), CAPACITY);
    assert!(
        made < CAPACITY / 2,
        "{made} creates at capacity within one second found room: more than a few shards \
         were swept"
    );
    // A second later, the next create at capacity sweeps the next shard.
    let next = later + time::Duration::seconds(1);
    let k = SessionId::generate().storage_key();
    assert!(store.create(&k, &record(next, 3600)).await.unwrap());
    assert!(store.len() < CAPACITY, "the next shard was not swept");
}

#[tokio::test]
async fn a_full_store_turns_a_new_session_into_a_server_error() {
    let full = MemoryStore::default().with_capacity(0);
    let layer = session_layer::SessionLayer::builder(full).build().unwrap();
    let router = common::routes(common::Gates::default()).layer(layer);
    let req = axum::http::Request::post("/incr")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(router, req).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(common::set_cookies(&res).is_empty());
}

#[tokio::test]
async fn expired_records_are_swept_without_being_asked() {
    let store = MemoryStore::default();
    let now = OffsetDateTime::now_utc();
    for _ in 0..2_000 {
        let k = SessionId::generate().storage_key();
        store.create(&k, &record(now, 1)).await.unwrap();
    }
    // New sessions long after: every 256 creations sweep one shard, so 256 x 128 creations
    // walk every shard (there are fewer than 128) at least once.
    let later = now + time::Duration::minutes(1);
    for _ in 0..(256 * 128) {
        let k = SessionId::generate().storage_key();
        store.create(&k, &record(later, 3600)).await.unwrap();
    }
    assert_eq!(store.len(), 256 * 128, "expired records linger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_requests_over_a_thousand_sessions_keep_every_write() {
    let app = TestApp::with(|b| b.with_touch_step(Duration::from_secs(30)));
    let mut ids = Vec::new();
    for i in 0..1_000 {
        let res = app.send("POST", &format!("/set/owner/s{i}"), None).await;
        ids.push(new_value(&res).unwrap());
    }
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..10_000 {
        let router = app.router.clone();
        let id = ids[n % 1_000].clone();
        tasks.spawn(async move {
            let req = axum::http::Request::post(format!("/set/w{}/{n}", n / 1_000))
                .header("cookie", format!("__Host-session={id}"))
                .body(axum::body::Body::empty())
                .unwrap();
            tower::ServiceExt::oneshot(router, req)
                .await
                .unwrap()
                .status()
        });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            body(app.send("GET", "/get/owner", Some(id)).await).await,
            format!("\"s{i}\"")
        );
        for w in 0..10 {
            let got = body(app.send("GET", &format!("/get/w{w}"), Some(id)).await).await;
            assert_eq!(
                got,
                format!("\"{}\"", w * 1_000 + i),
                "write lost or crossed sessions"
            );
        }
    }
}

/// Sessions change owner from many threads at once, without rotating; afterwards each
/// user's listing names exactly the sessions that user owns, and "sign out everywhere" for
/// a user ends every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_user_index_follows_concurrent_owner_changes() {
    use session_layer::record::Change;
    use session_layer::store::{Limits, TouchRule, WriteRules};

    let store = std::sync::Arc::new(MemoryStore::default());
    let now = session_layer::clock::to_millis(OffsetDateTime::now_utc());
    let day = time::Duration::days(1);
    let users = ["left", "right"];
    let keys: Vec<_> = (0..16)
        .map(|_| SessionId::generate().storage_key())
        .collect();
    for key in &keys {
        let mut record = Record::new(now, now + day, now + day);
        record.meta.user = Some(users[0].to_owned());
        assert!(store.create(key, &record).await.unwrap());
    }
    let rules = WriteRules::new(
        Limits::default(),
        TouchRule::new(day, day, time::Duration::MAX),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for thread in 0..8usize {
        let (store, keys) = (store.clone(), keys.clone());
        tasks.spawn(async move {
            for n in 0..4_000usize {
                let key = &keys[(thread * 7 + n) % keys.len()];
                let mut change = Change::default();
                change.user = Some(Some(users[(thread + n) % 2].to_owned()));
                store.apply(key, &change, &rules, now).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let mut owner = std::collections::HashMap::new();
    for key in &keys {
        let record = store.load(key, None, now).await.unwrap().expect("alive");
        owner.insert(key.to_hex(), record.meta.user.expect("owned"));
    }
    for user in users {
        let owned: std::collections::HashSet<_> = owner
            .iter()
            .filter(|(_, u)| u.as_str() == user)
            .map(|(k, _)| k.clone())
            .collect();
        let listed: std::collections::HashSet<_> = store
            .list_by_user(user, now)
            .await
            .unwrap()
            .iter()
            .map(|info| info.handle.storage_key().to_hex())
            .collect();
        assert_eq!(
            listed, owned,
            "{user}'s listing differs from what {user} owns"
        );
        let ended = store.delete_by_user(user, None, now).await.unwrap();
        assert_eq!(
            ended as usize,
            owned.len(),
            "{user}'s sign-out missed sessions"
        );
    }
}
