//! Applying a change to a live record: per key, atomically, never to a missing, deleted or expired record.

use futures_util::future::join_all;
use serde_json::json;
use time::Duration;

use super::*;

/// update applies sets, removes and metadata, and returns the metadata afterwards.
pub async fn apply_applies_a_per_key_change<S: SessionStore + ?Sized>(store: &S) {
    let (t, k, u) = (now(), key(), user());
    let mut r = record(t);
    r.data_mut().insert("drop".into(), json!(1));
    create(store, &k, &r).await;
    let mut change = set("cart", json!(["apple"]));
    change.remove("drop");
    change.persistent = Some(true);
    change.user = Some(Some(u.clone()));
    change.touch = Some(Touch {
        seen: t + Duration::minutes(10),
        idle_deadline: t + Duration::minutes(70),
    });
    let meta = update(store, &k, &change, t + Duration::minutes(10))
        .await
        .expect("update")
        .expect("update of a live record reported it gone");
    assert!(meta.persistent);
    assert_eq!(meta.user.as_deref(), Some(u.as_str()));
    assert_eq!(meta.idle_deadline, t + Duration::minutes(70));
    assert_eq!(meta.last_seen, t + Duration::minutes(10));
    assert_eq!(meta.created, t);
    let loaded = load(store, &k, t + Duration::minutes(10))
        .await
        .expect("live");
    assert_eq!(loaded.meta, meta);
    assert_eq!(loaded.data().get("cart"), Some(&json!(["apple"])));
    assert_eq!(loaded.data().get("greeting"), Some(&json!("hello")));
    assert_eq!(loaded.data().get("drop"), None);

    let mut clear = Change::default();
    clear.clear();
    clear.set("only", json!(true));
    update(store, &k, &clear, t)
        .await
        .expect("update")
        .expect("live");
    let loaded = load(store, &k, t).await.expect("live");
    assert_eq!(loaded.data().len(), 1, "clear left keys behind");
}

/// update of a key that holds nothing returns `None` and creates nothing.
pub async fn apply_of_a_missing_session_writes_nothing<S: SessionStore + ?Sized>(store: &S) {
    let (t, k) = (now(), key());
    let result = update(store, &k, &set("x", json!(1)), t)
        .await
        .expect("update");
    assert_eq!(result, None);
    assert_eq!(
        load(store, &k, t).await,
        None,
        "update created a record (upsert)"
    );
}

/// A save after a logout deleted the session leaves it deleted.
pub async fn apply_after_delete_does_not_resurrect<S: SessionStore + ?Sized>(store: &S) {
    let (t, k) = (now(), key());
    create(store, &k, &record(t)).await;
    store.delete(&k).await.expect("delete");
    assert_eq!(
        update(store, &k, &set("x", json!(1)), t)
            .await
            .expect("update"),
        None
    );
    assert!(!touch(store, &k, t, t + Duration::hours(1))
        .await
        .expect("touch"));
    assert_eq!(
        load(store, &k, t).await,
        None,
        "a deleted session came back"
    );
}

/// update of an expired record writes nothing, and the record stays dead.
pub async fn apply_of_an_expired_session_writes_nothing<S: SessionStore + ?Sized>(store: &S) {
    let (t, k) = (now(), key());
    create(store, &k, &record(t)).await;
    let late = t + Duration::hours(1) + Duration::seconds(1);
    let mut change = set("x", json!(1));
    change.touch = Some(Touch {
        seen: late,
        idle_deadline: late + Duration::hours(1),
    });
    assert_eq!(
        update(store, &k, &change, late).await.expect("update"),
        None
    );
    assert!(!touch(store, &k, late, late + Duration::hours(1))
        .await
        .expect("touch"));
    assert_eq!(
        load(store, &k, late).await,
        None,
        "an expired session came back"
    );
}

/// 50 concurrent updates, each of its own key, all land.
pub async fn concurrent_writes_of_different_keys_are_all_kept<S: SessionStore + ?Sized>(store: &S) {
    let (t, k) = (now(), key());
    create(store, &k, &record(t)).await;
    let writes = (0..50).map(|i| {
        let change = set(&format!("k{i}"), json!(i));
        async move { update(store, &k, &change, t).await }
    });
    for result in join_all(writes).await {
        assert!(result.expect("update").is_some());
    }
    let loaded = load(store, &k, t).await.expect("live");
    for i in 0..50 {
        assert_eq!(
            loaded.data().get(&format!("k{i}")),
            Some(&json!(i)),
            "a concurrent write of a different key was lost"
        );
    }
    assert_eq!(loaded.data().get("greeting"), Some(&json!("hello")));
}

/// Two writes of one key: the later one stands.
pub async fn the_last_write_of_one_key_wins<S: SessionStore + ?Sized>(store: &S) {
    let (t, k) = (now(), key());
    create(store, &k, &record(t)).await;
    update(store, &k, &set("n", json!(1)), t)
        .await
        .expect("update");
    update(store, &k, &set("n", json!(2)), t)
        .await
        .expect("update");
    assert_eq!(
        load(store, &k, t).await.expect("live").data()["n"],
        json!(2)
    );
}

/// touch moves `last_seen` and the idle deadline and keeps the data.
pub async fn a_touch_alone_moves_the_idle_deadline_only<S: SessionStore + ?Sized>(store: &S) {
    let (t, k) = (now(), key());
    let r = record(t);
    create(store, &k, &r).await;
    let seen = t + Duration::minutes(50);
    assert!(touch(store, &k, seen, seen + Duration::hours(1))
        .await
        .expect("touch"));
    // Alive past the original idle deadline.
    let loaded = load(store, &k, t + Duration::minutes(90))
        .await
        .expect("touch did not stick");
    assert_eq!(loaded.meta.idle_deadline, seen + Duration::hours(1));
    assert_eq!(loaded.meta.last_seen, seen);
    assert_eq!(loaded.data(), r.data());
    assert!(!touch(store, &key(), t, t + Duration::hours(1))
        .await
        .expect("touch"));
}

/// No touch moves the idle deadline past the absolute one.
pub async fn no_touch_passes_the_absolute_deadline<S: SessionStore + ?Sized>(store: &S) {
    let (t, k) = (now(), key());
    create(store, &k, &record(t)).await;
    let seen = t + Duration::minutes(50);
    assert!(touch(store, &k, seen, seen + Duration::hours(1))
        .await
        .expect("touch"));
    let seen = t + Duration::minutes(100);
    assert!(touch(store, &k, seen, seen + Duration::hours(1))
        .await
        .expect("touch"));
    let loaded = load(store, &k, seen).await.expect("live");
    assert_eq!(loaded.meta.idle_deadline, t + Duration::hours(2));
    assert_eq!(load(store, &k, t + Duration::hours(2)).await, None);
}

/// 50 concurrent writes without a read, each of its own key, all land.
pub async fn concurrent_blind_writes_of_different_keys_are_all_kept<S: SessionStore + ?Sized>(
    store: &S,
) {
    let (t, k) = (now(), key());
    create(store, &k, &record(t)).await;
    let wide = rules(64 * 1024, 1024);
    let writes = (0..50).map(|i| {
        let change = set(&format!("k{i}"), json!(i));
        let wide = &wide;
        async move { store.apply(&k, &change, wide, t).await }
    });
    for result in join_all(writes).await {
        assert!(matches!(result.expect("write"), Applied::Done(_)));
    }
    let loaded = load(store, &k, t).await.expect("live");
    for i in 0..50 {
        assert_eq!(
            loaded.data().get(&format!("k{i}")),
            Some(&json!(i)),
            "a concurrent blind write of a different key was lost"
        );
    }
    assert_eq!(loaded.data().get("greeting"), Some(&json!("hello")));
}

/// A record at its key limit can have one of its keys replaced: the replaced value counts
/// once, not twice.
pub async fn a_session_at_its_key_limit_can_replace_a_key<S: SessionStore + ?Sized>(store: &S) {
    let (t, k) = (now(), key());
    let r = record(t);
    create(store, &k, &r).await;
    let mut second = set("second", json!(2));
    second.set("greeting", json!("hi"));
    let at_limit = rules(64 * 1024, 2);
    assert!(matches!(
        write(store, &k, &second, &at_limit, t).await,
        Applied::Done(_)
    ));
    assert!(
        matches!(
            write(store, &k, &set("second", json!(3)), &at_limit, t).await,
            Applied::Done(_)
        ),
        "replacing a key of a session at its key limit was refused"
    );
    assert!(
        matches!(
            write(store, &k, &set("third", json!(3)), &at_limit, t).await,
            Applied::TooLarge(_)
        ),
        "a third key passed a limit of two"
    );
    let stored = load(store, &k, t).await.expect("live");
    assert_eq!(stored.data().get("second"), Some(&json!(3)));
    assert_eq!(stored.data().len(), 2);
}
