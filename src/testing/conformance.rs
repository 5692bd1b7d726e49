//! The store contract, one public async function per case. Each panics with a message that
//! names the broken rule. Cases use fresh random keys and user names, so they can run
//! concurrently against one shared backend.

use futures_util::future::join_all;
use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::clock::to_millis;
use crate::id::{SessionId, StorageKey};
use crate::record::Metadata;
use crate::record::{Change, Record, Touch};
use crate::store::{Applied, Limits, Rotated, SessionStore, Totals, TouchRule, WriteRules};

fn now() -> OffsetDateTime {
    to_millis(OffsetDateTime::now_utc())
}

fn key() -> StorageKey {
    SessionId::generate().storage_key()
}

fn user() -> String {
    format!("user-{}", &key().to_hex()[..16])
}

/// A live record: idle deadline in one hour, absolute in two.
fn record(now: OffsetDateTime) -> Record {
    let mut r = Record::new(now, now + Duration::hours(1), now + Duration::hours(2));
    r.data_mut().insert("greeting".into(), json!("hello"));
    r
}

fn set(key: &str, value: serde_json::Value) -> Change {
    let mut c = Change::default();
    c.set(key, value);
    c
}

async fn create<S: SessionStore + ?Sized>(store: &S, key: &StorageKey, record: &Record) {
    assert!(
        store.create(key, record).await.expect("create"),
        "create of a fresh key reported a collision"
    );
}

async fn load<S: SessionStore + ?Sized>(
    store: &S,
    key: &StorageKey,
    now: OffsetDateTime,
) -> Option<Record> {
    store.load(key, None, now).await.expect("load")
}

/// Rules that never refuse and never touch: the change alone applies.
fn loose() -> WriteRules {
    WriteRules::new(
        Limits::new(usize::MAX, usize::MAX),
        TouchRule::new(Duration::hours(1), Duration::hours(10), Duration::MAX),
    )
}

type Result<T> = std::result::Result<T, crate::store::StoreError>;

/// `apply` of a change alone: its metadata afterwards, or `None` if the record is gone.
async fn update<S: SessionStore + ?Sized>(
    store: &S,
    key: &StorageKey,
    change: &Change,
    now: OffsetDateTime,
) -> Result<Option<Metadata>> {
    Ok(match store.apply(key, change, &loose(), now).await? {
        Applied::Done(meta) => Some(meta),
        Applied::Gone => None,
        other => panic!("apply within limits that cannot be passed answered {other:?}"),
    })
}

/// `apply` of a change that only moves the idle deadline: whether the record was live.
async fn touch<S: SessionStore + ?Sized>(
    store: &S,
    key: &StorageKey,
    seen: OffsetDateTime,
    idle_deadline: OffsetDateTime,
) -> Result<bool> {
    let change = Change {
        touch: Some(Touch {
            seen,
            idle_deadline,
        }),
        ..Change::default()
    };
    Ok(update(store, key, &change, seen).await?.is_some())
}

/// `rotate` of a change alone.
async fn rotate<S: SessionStore + ?Sized>(
    store: &S,
    old: &StorageKey,
    new: &StorageKey,
    change: &Change,
    now: OffsetDateTime,
) -> Result<Rotated> {
    store.rotate(old, new, change, &loose(), now).await
}

/// `rotate` within `limits`, never touching.
async fn rotate_within<S: SessionStore + ?Sized>(
    store: &S,
    old: &StorageKey,
    new: &StorageKey,
    change: &Change,
    limits: &Limits,
    now: OffsetDateTime,
) -> Result<Rotated> {
    let rules = WriteRules::new(*limits, loose().touch);
    store.rotate(old, new, change, &rules, now).await
}

/// `load` with the touch rule.
async fn load_touching<S: SessionStore + ?Sized>(
    store: &S,
    key: &StorageKey,
    now: OffsetDateTime,
    rule: &TouchRule,
) -> Result<Option<Record>> {
    store.load(key, Some(rule), now).await
}

/// create, then load: the record comes back equal, metadata to the millisecond.
pub async fn create_then_load_round_trips<S: SessionStore + ?Sized>(store: &S) {
    let (t, k) = (now(), key());
    let mut r = record(t);
    r.meta.persistent = true;
    r.meta.user = Some(user());
    create(store, &k, &r).await;
    assert_eq!(
        load(store, &k, t).await,
        Some(r),
        "load returned another record"
    );
}

/// create on a taken key reports a collision and leaves the first record alone.
pub async fn create_never_overwrites<S: SessionStore + ?Sized>(store: &S) {
    let (t, k) = (now(), key());
    let first = record(t);
    create(store, &k, &first).await;
    let mut second = record(t);
    second
        .data_mut()
        .insert("greeting".into(), json!("intruder"));
    assert!(
        !store.create(&k, &second).await.expect("create"),
        "create overwrote an existing record instead of reporting a collision"
    );
    assert_eq!(load(store, &k, t).await, Some(first));
}

/// load of a key never created is `None`.
pub async fn unknown_keys_load_nothing<S: SessionStore + ?Sized>(store: &S) {
    assert_eq!(load(store, &key(), now()).await, None);
}

/// A record past its idle or its absolute deadline is never returned, even if the backend
/// still holds it.
pub async fn expired_records_are_never_returned<S: SessionStore + ?Sized>(store: &S) {
    let (t, k) = (now(), key());
    create(store, &k, &record(t)).await;
    assert!(load(store, &k, t + Duration::minutes(59)).await.is_some());
    assert_eq!(
        load(store, &k, t + Duration::hours(1)).await,
        None,
        "a record was returned at its idle deadline"
    );
    // Absolute deadline: idle deadline moved past it is capped, so the record dies at 2 h.
    let k2 = key();
    let mut r = record(t);
    r.meta.idle_deadline = r.meta.absolute_deadline;
    create(store, &k2, &r).await;
    assert_eq!(
        load(store, &k2, t + Duration::hours(2) + Duration::seconds(1)).await,
        None,
        "a record was returned after its absolute deadline"
    );
}

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

/// rotate moves the record, with the change, to the new key; the old key is dead; the
/// absolute deadline and creation time stay.
pub async fn rotate_moves_the_record_and_kills_the_old_key<S: SessionStore + ?Sized>(store: &S) {
    let (t, old, new, u) = (now(), key(), key(), user());
    let r = record(t);
    create(store, &old, &r).await;
    let mut change = set("role", json!("admin"));
    change.user = Some(Some(u.clone()));
    let meta = match rotate(store, &old, &new, &change, t).await.expect("rotate") {
        Rotated::Done(meta) => meta,
        other => panic!("rotate of a live record gave {other:?}"),
    };
    assert_eq!(meta.absolute_deadline, r.meta.absolute_deadline);
    assert_eq!(meta.created, r.meta.created);
    assert_eq!(
        load(store, &old, t).await,
        None,
        "the old key survived rotation"
    );
    let moved = load(store, &new, t)
        .await
        .expect("the new key holds nothing");
    assert_eq!(moved.data()["greeting"], json!("hello"));
    assert_eq!(moved.data()["role"], json!("admin"));
    let listed = store.list_by_user(&u, t).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].handle.storage_key(), new);
    assert_eq!(
        update(store, &old, &set("x", json!(1)), t)
            .await
            .expect("update"),
        None
    );
}

/// rotate of a session that already has an owner, with a change that does not name one,
/// keeps the owner: the user's sessions list the new key, not the old one.
pub async fn rotate_keeps_the_owner_of_an_owned_session<S: SessionStore + ?Sized>(store: &S) {
    let (t, old, new, u) = (now(), key(), key(), user());
    let mut r = record(t);
    r.meta.user = Some(u.clone());
    create(store, &old, &r).await;
    let meta = match rotate(store, &old, &new, &set("step", json!(2)), t)
        .await
        .expect("rotate")
    {
        Rotated::Done(meta) => meta,
        other => panic!("rotate of a live owned record gave {other:?}"),
    };
    assert_eq!(meta.user.as_deref(), Some(u.as_str()));
    let listed = store.list_by_user(&u, t).await.expect("list");
    assert_eq!(listed.len(), 1, "listed: {listed:?}");
    assert_eq!(listed[0].handle.storage_key(), new);
    assert_eq!(load(store, &old, t).await, None, "the old key survived");
}

/// rotate of a key holding nothing returns `Gone` and creates nothing.
pub async fn rotate_of_a_missing_session_writes_nothing<S: SessionStore + ?Sized>(store: &S) {
    let (t, old, new) = (now(), key(), key());
    let outcome = rotate(store, &old, &new, &set("x", json!(1)), t)
        .await
        .expect("rotate");
    assert_eq!(outcome, Rotated::Gone);
    assert_eq!(load(store, &new, t).await, None);
    // An expired record is gone too.
    create(store, &old, &record(t)).await;
    let late = t + Duration::hours(3);
    let outcome = rotate(store, &old, &new, &Change::default(), late)
        .await
        .expect("rotate");
    assert_eq!(outcome, Rotated::Gone);
    assert_eq!(
        load(store, &new, t).await,
        None,
        "rotation revived an expired record"
    );
}

/// rotate into a taken key reports a collision; both records stay as they were.
pub async fn rotate_into_a_taken_key_changes_nothing<S: SessionStore + ?Sized>(store: &S) {
    let (t, old, taken) = (now(), key(), key());
    let a = record(t);
    let mut b = record(t);
    b.data_mut().insert("greeting".into(), json!("other"));
    create(store, &old, &a).await;
    create(store, &taken, &b).await;
    let outcome = rotate(store, &old, &taken, &set("x", json!(1)), t)
        .await
        .expect("rotate");
    assert_eq!(outcome, Rotated::Collision);
    assert_eq!(load(store, &old, t).await, Some(a));
    assert_eq!(load(store, &taken, t).await, Some(b));
}

/// rotate_within moves the record as rotate does when the change keeps to the limits, and
/// refuses one that would pass them with `TooLarge` and the exact totals, changing nothing;
/// a change that shrinks an oversized session is allowed, and a missing session is `Gone`.
pub async fn rotate_checks_the_limits_on_the_record_it_moves<S: SessionStore + ?Sized>(store: &S) {
    let (t, old, new) = (now(), key(), key());
    let r = record(t);
    create(store, &old, &r).await;
    let stored = Totals::of(r.data());
    let big = set("big", json!("x".repeat(100)));
    let after = Totals::after(r.data(), &big);
    let tight = Limits::new(after.bytes - 1, 100);
    let outcome = rotate_within(store, &old, &new, &big, &tight, t)
        .await
        .expect("rotate_within");
    assert_eq!(outcome, Rotated::TooLarge(after));
    assert_eq!(
        load(store, &old, t).await,
        Some(r.clone()),
        "the refused rotation wrote"
    );
    assert_eq!(
        load(store, &new, t).await,
        None,
        "the refused rotation created the new key"
    );

    // Too many keys, counted the same way.
    let outcome = rotate_within(
        store,
        &old,
        &new,
        &big,
        &Limits::new(1 << 16, stored.keys),
        t,
    )
    .await
    .expect("rotate_within");
    assert_eq!(outcome, Rotated::TooLarge(after));
    assert_eq!(load(store, &old, t).await, Some(r.clone()));

    // Within the limits (exactly at them): moved, as rotate does.
    let exact = Limits::new(after.bytes, after.keys);
    match rotate_within(store, &old, &new, &big, &exact, t)
        .await
        .expect("rotate_within")
    {
        Rotated::Done(meta) => assert_eq!(meta.created, r.meta.created),
        other => panic!("rotate_within at the limits gave {other:?}"),
    }
    assert_eq!(load(store, &old, t).await, None, "the old key survived");
    let moved = load(store, &new, t)
        .await
        .expect("the new key holds nothing");
    assert_eq!(moved.data()["big"], json!("x".repeat(100)));

    // Over limits it can never meet, a change that shrinks the session is allowed.
    let newer = key();
    let mut shrink = Change::default();
    shrink.remove("big");
    let outcome = rotate_within(store, &new, &newer, &shrink, &Limits::new(1, 1), t)
        .await
        .expect("rotate_within");
    assert!(matches!(outcome, Rotated::Done(_)), "{outcome:?}");
    assert_eq!(
        load(store, &newer, t).await.expect("moved").data(),
        r.data()
    );

    // Nothing there: gone, nothing written.
    let (missing, target) = (key(), key());
    let outcome = rotate_within(store, &missing, &target, &big, &exact, t)
        .await
        .expect("rotate_within");
    assert_eq!(outcome, Rotated::Gone);
    assert_eq!(load(store, &target, t).await, None);
}

/// 20 concurrent rotations of one session: exactly one succeeds, exactly one new key lives.
pub async fn concurrent_rotations_have_one_winner<S: SessionStore + ?Sized>(store: &S) {
    let (t, old) = (now(), key());
    create(store, &old, &record(t)).await;
    let news: Vec<StorageKey> = (0..20).map(|_| key()).collect();
    let rotations = news.iter().map(|new| {
        let change = Change::default();
        async move { rotate(store, &old, new, &change, t).await }
    });
    let outcomes = join_all(rotations).await;
    let wins = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Rotated::Done(_))))
        .count();
    assert_eq!(wins, 1, "concurrent rotations: {outcomes:?}");
    let mut live = 0;
    for new in &news {
        live += usize::from(load(store, new, t).await.is_some());
    }
    assert_eq!(live, 1, "more than one new key holds the session");
    assert_eq!(load(store, &old, t).await, None);
}

/// Updates of the old key racing a rotation: each lands before the move (and is carried
/// over) or finds the old key gone; none recreates the old key.
pub async fn updates_racing_a_rotation_never_revive_the_old_key<S: SessionStore + ?Sized>(
    store: &S,
) {
    let (t, old, new) = (now(), key(), key());
    create(store, &old, &record(t)).await;
    let store_ref = store;
    let updates = (0..40).map(|i| {
        let change = set(&format!("k{i}"), json!(i));
        async move {
            update(store_ref, &old, &change, t)
                .await
                .expect("update")
                .is_some()
        }
    });
    let rotation = async { rotate(store, &old, &new, &Change::default(), t).await };
    let (landed, rotated) = tokio::join!(join_all(updates), rotation);
    assert!(matches!(rotated.expect("rotate"), Rotated::Done(_)));
    assert_eq!(
        load(store, &old, t).await,
        None,
        "an update revived the rotated-away key"
    );
    let moved = load(store, &new, t).await.expect("rotated record");
    for (i, ok) in landed.iter().enumerate() {
        if *ok {
            assert!(
                moved.data().contains_key(&format!("k{i}")),
                "an update reported success but is missing after rotation"
            );
        }
    }
}

/// delete removes the record; deleting an absent key is fine.
pub async fn delete_removes_and_tolerates_absence<S: SessionStore + ?Sized>(store: &S) {
    let (t, k) = (now(), key());
    create(store, &k, &record(t)).await;
    store.delete(&k).await.expect("delete");
    assert_eq!(load(store, &k, t).await, None);
    store
        .delete(&k)
        .await
        .expect("deleting an absent key is not an error");
    assert!(
        store.create(&k, &record(t)).await.expect("create"),
        "a deleted key stays blocked"
    );
}

/// list_by_user shows that user's live sessions, and nobody else's or any dead one.
pub async fn list_by_user_shows_only_live_sessions_of_that_user<S: SessionStore + ?Sized>(
    store: &S,
) {
    let (t, alice, bob) = (now(), user(), user());
    let mut keys = Vec::new();
    for i in 0..3 {
        let k = key();
        let mut r = record(t);
        r.meta.user = Some(alice.clone());
        if i == 2 {
            r.meta.idle_deadline = t + Duration::minutes(5);
        }
        create(store, &k, &r).await;
        keys.push(k);
    }
    let mut rb = record(t);
    rb.meta.user = Some(bob.clone());
    create(store, &key(), &rb).await;
    // A session that gets its user through an update is listed too.
    let late_joiner = key();
    create(store, &late_joiner, &record(t)).await;
    let change = Change {
        user: Some(Some(alice.clone())),
        ..Change::default()
    };
    update(store, &late_joiner, &change, t)
        .await
        .expect("update")
        .expect("live");

    let mut listed: Vec<StorageKey> = store
        .list_by_user(&alice, t + Duration::minutes(10))
        .await
        .expect("list")
        .into_iter()
        .map(|i| {
            assert_eq!(i.meta.user.as_deref(), Some(alice.as_str()));
            i.handle.storage_key()
        })
        .collect();
    listed.sort();
    let mut expected = vec![keys[0], keys[1], late_joiner];
    expected.sort();
    assert_eq!(
        listed, expected,
        "listing shows dead or foreign sessions, or misses one"
    );

    store.delete(&keys[0]).await.expect("delete");
    let change = Change {
        user: Some(None),
        ..Change::default()
    };
    update(store, &late_joiner, &change, t)
        .await
        .expect("update")
        .expect("live");
    let listed = store.list_by_user(&alice, t).await.expect("list");
    assert_eq!(
        listed.len(),
        2,
        "deleted or disowned sessions still listed: {listed:?}"
    );
    assert!(store
        .list_by_user(&user(), t)
        .await
        .expect("list")
        .is_empty());
}

/// delete_by_user ends all of a user's sessions but the exception, and no one else's.
pub async fn delete_by_user_spares_the_exception_and_other_users<S: SessionStore + ?Sized>(
    store: &S,
) {
    let (t, alice, bob) = (now(), user(), user());
    let mut keys = Vec::new();
    for _ in 0..4 {
        let k = key();
        let mut r = record(t);
        r.meta.user = Some(alice.clone());
        create(store, &k, &r).await;
        keys.push(k);
    }
    let bob_key = key();
    let mut rb = record(t);
    rb.meta.user = Some(bob.clone());
    create(store, &bob_key, &rb).await;

    let n = store
        .delete_by_user(&alice, Some(&keys[0]), t)
        .await
        .expect("delete_by_user");
    assert_eq!(n, 3);
    assert!(
        load(store, &keys[0], t).await.is_some(),
        "the exception was deleted"
    );
    for k in &keys[1..] {
        assert_eq!(load(store, k, t).await, None, "a revoked session survived");
    }
    assert!(
        load(store, &bob_key, t).await.is_some(),
        "another user's session was deleted"
    );
    assert_eq!(
        store
            .delete_by_user(&alice, None, t)
            .await
            .expect("delete_by_user"),
        1
    );
    assert_eq!(load(store, &keys[0], t).await, None);
    assert!(store
        .list_by_user(&alice, t)
        .await
        .expect("list")
        .is_empty());
}

/// delete_expired removes only expired records (or none, for backends that expire records
/// by themselves) and never a live one.
pub async fn delete_expired_never_removes_live_sessions<S: SessionStore + ?Sized>(store: &S) {
    let t = now();
    let live = key();
    create(store, &live, &record(t)).await;
    let dead = key();
    let mut r = record(t);
    r.meta.idle_deadline = t + Duration::seconds(1);
    create(store, &dead, &r).await;
    let later = t + Duration::minutes(1);
    for _ in 0..1000 {
        if store
            .delete_expired(later, 100)
            .await
            .expect("delete_expired")
            == 0
        {
            break;
        }
    }
    assert!(
        load(store, &live, later).await.is_some(),
        "a live record was removed"
    );
    assert_eq!(load(store, &dead, later).await, None);
    // Removed or not, the dead key may be reused once expired records are cleaned.
}

/// Strings with every kind of character, numbers, nesting, nulls and empty containers
/// survive a round trip unchanged.
pub async fn values_of_every_json_shape_round_trip<S: SessionStore + ?Sized>(store: &S) {
    let (t, k) = (now(), key());
    create(store, &k, &record(t)).await;
    let value = json!({
        "text": "quote \" backslash \\ nul-free unicode: é 漢字 🙂 and $1 %s {}",
        "int": -9_007_199_254_740_991_i64,
        "float": 1.5,
        // Floats whose shortest decimal form only an exact parser reads back bit for bit.
        "floats": [1.2345678901234547e31, 1.2345678345678901e25, 0.1, 5e-324,
                   1.7976931348623157e308, -2.2250738585072014e-308],
        "big": u64::MAX,
        "null": null,
        "empty_list": [],
        "empty_map": {},
        "nested": {"a": [1, {"b": [true, false]}]},
    });
    let weird_key = "key with spaces, dots. and 'quotes' \u{e9}";
    update(store, &k, &set(weird_key, value.clone()), t)
        .await
        .expect("update")
        .expect("live");
    let loaded = load(store, &k, t).await.expect("live");
    assert_eq!(loaded.data().get(weird_key), Some(&value));
}

/// The touch rule of the cases below: idle 1 hour, persistent idle 10 hours, step 1 minute.
fn rule() -> TouchRule {
    TouchRule::new(
        Duration::hours(1),
        Duration::hours(10),
        Duration::minutes(1),
    )
}

fn rules(max_bytes: usize, max_keys: usize) -> WriteRules {
    WriteRules::new(Limits::new(max_bytes, max_keys), rule())
}

async fn write<S: SessionStore + ?Sized>(
    store: &S,
    key: &StorageKey,
    change: &Change,
    rules: &WriteRules,
    now: OffsetDateTime,
) -> Applied {
    store.apply(key, change, rules, now).await.expect("apply")
}

/// load_touching returns the live record; inside the touch step it writes nothing, past it
/// it moves `last_seen` and the idle deadline (and returns them moved), data untouched.
pub async fn load_with_a_touch_rule_moves_a_due_idle_deadline_only<S: SessionStore + ?Sized>(
    store: &S,
) {
    let (t, k) = (now(), key());
    let r = record(t);
    create(store, &k, &r).await;
    let soon = t + Duration::seconds(30);
    let loaded = load_touching(store, &k, soon, &rule())
        .await
        .expect("load_touching");
    assert_eq!(loaded, Some(r.clone()), "a touch inside the step was made");
    assert_eq!(load(store, &k, t).await, Some(r.clone()));

    let later = t + Duration::minutes(10);
    let loaded = load_touching(store, &k, later, &rule())
        .await
        .expect("load_touching")
        .expect("live");
    assert_eq!(loaded.meta.last_seen, later, "a due touch was not made");
    assert_eq!(loaded.meta.idle_deadline, later + Duration::hours(1));
    assert_eq!(loaded.data(), r.data());
    let stored = load(store, &k, later).await.expect("live");
    assert_eq!(stored, loaded, "the touch returned is not the touch stored");
    // Alive past the first idle deadline: the touch stuck.
    assert!(load(store, &k, t + Duration::minutes(65)).await.is_some());
}

/// load_touching uses the record's own persistence flag and never passes the absolute
/// deadline.
pub async fn load_with_a_touch_rule_is_capped_at_the_absolute_deadline<S: SessionStore + ?Sized>(
    store: &S,
) {
    let (t, k, p) = (now(), key(), key());
    create(store, &k, &record(t)).await;
    load_touching(store, &k, t + Duration::minutes(50), &rule())
        .await
        .expect("load_touching")
        .expect("live");
    let late = t + Duration::minutes(100);
    let loaded = load_touching(store, &k, late, &rule())
        .await
        .expect("load_touching")
        .expect("live");
    assert_eq!(
        loaded.meta.idle_deadline,
        t + Duration::hours(2),
        "a touch passed the absolute deadline"
    );
    assert_eq!(load(store, &k, late).await.expect("live").meta, loaded.meta);

    let mut persistent = record(t);
    persistent.meta.persistent = true;
    create(store, &p, &persistent).await;
    let soon = t + Duration::minutes(10);
    let loaded = load_touching(store, &p, soon, &rule())
        .await
        .expect("load_touching")
        .expect("live");
    assert_eq!(
        loaded.meta.idle_deadline,
        t + Duration::hours(2),
        "a persistent session was touched with the browser-only idle timeout"
    );
}

/// load_touching of a missing or expired record is `None` and writes nothing.
pub async fn load_with_a_touch_rule_of_a_dead_session_is_none_and_writes_nothing<
    S: SessionStore + ?Sized,
>(
    store: &S,
) {
    let (t, k) = (now(), key());
    assert_eq!(
        load_touching(store, &k, t, &rule())
            .await
            .expect("load_touching"),
        None
    );
    assert_eq!(
        load(store, &k, t).await,
        None,
        "load_touching created a record"
    );
    let r = record(t);
    create(store, &k, &r).await;
    let late = t + Duration::hours(1) + Duration::seconds(1);
    assert_eq!(
        load_touching(store, &k, late, &rule())
            .await
            .expect("load_touching"),
        None,
        "an expired record was returned"
    );
    expired_and_untouched(
        store,
        &k,
        &r,
        late,
        "load_touching of an expired record wrote to it",
    )
    .await;
}

/// After an operation at `late` on the record `r` (stored under `k`, expired by `late`):
/// nothing under `k` is live at `late`, and what is seen earlier is `r` unchanged or
/// nothing (a backend may remove what it found expired, but not change it).
async fn expired_and_untouched<S: SessionStore + ?Sized>(
    store: &S,
    k: &StorageKey,
    r: &Record,
    late: OffsetDateTime,
    what: &str,
) {
    assert_eq!(
        load(store, k, late).await,
        None,
        "an expired record came back"
    );
    let seen_earlier = load(store, k, r.meta.created).await;
    assert!(
        seen_earlier.is_none() || seen_earlier.as_ref() == Some(r),
        "{what}"
    );
}

/// write applies the change like update, and the touch only when due; a change's own touch
/// or persistence flag counts.
pub async fn apply_makes_a_due_touch_with_the_change<S: SessionStore + ?Sized>(store: &S) {
    let (t, k) = (now(), key());
    let r = record(t);
    create(store, &k, &r).await;
    let wide = rules(64 * 1024, 1024);
    let soon = t + Duration::seconds(30);
    let Applied::Done(meta) = write(store, &k, &set("a", json!(1)), &wide, soon).await else {
        panic!("write of a live record did not apply");
    };
    assert_eq!(meta, r.meta, "a touch inside the step was made");
    let later = t + Duration::minutes(10);
    let mut change = set("b", json!([2]));
    change.remove("greeting");
    let Applied::Done(meta) = write(store, &k, &change, &wide, later).await else {
        panic!("write of a live record did not apply");
    };
    assert_eq!(meta.last_seen, later, "a due touch was not made");
    assert_eq!(meta.idle_deadline, later + Duration::hours(1));
    let stored = load(store, &k, later).await.expect("live");
    assert_eq!(stored.meta, meta);
    assert_eq!(stored.data().get("a"), Some(&json!(1)));
    assert_eq!(stored.data().get("b"), Some(&json!([2])));
    assert_eq!(stored.data().get("greeting"), None);

    // Becoming persistent: the due touch uses the persistent idle timeout (capped).
    let change = Change {
        persistent: Some(true),
        ..Change::default()
    };
    let at = t + Duration::minutes(20);
    let Applied::Done(meta) = write(store, &k, &change, &wide, at).await else {
        panic!("write of a live record did not apply");
    };
    assert!(meta.persistent);
    assert_eq!(meta.idle_deadline, t + Duration::hours(2));
    // A change's own touch is applied as given.
    let mut change = set("c", json!(3));
    change.touch = Some(Touch {
        seen: at,
        idle_deadline: at + Duration::minutes(5),
    });
    let Applied::Done(meta) = write(store, &k, &change, &wide, at).await else {
        panic!("write of a live record did not apply");
    };
    assert_eq!(meta.idle_deadline, at + Duration::minutes(5));
}

/// write of a missing, deleted or expired record is `Gone` and writes nothing: never an
/// upsert, never a resurrection.
pub async fn apply_of_a_dead_session_is_gone_and_writes_nothing<S: SessionStore + ?Sized>(
    store: &S,
) {
    let (t, k) = (now(), key());
    let wide = rules(64 * 1024, 1024);
    assert_eq!(
        write(store, &k, &set("x", json!(1)), &wide, t).await,
        Applied::Gone
    );
    assert_eq!(load(store, &k, t).await, None, "write created a record");

    create(store, &k, &record(t)).await;
    store.delete(&k).await.expect("delete");
    assert_eq!(
        write(store, &k, &set("x", json!(1)), &wide, t).await,
        Applied::Gone
    );
    assert_eq!(
        load(store, &k, t).await,
        None,
        "a deleted session came back"
    );

    let r = record(t);
    create(store, &k, &r).await;
    let late = t + Duration::hours(1) + Duration::seconds(1);
    assert_eq!(
        write(store, &k, &set("x", json!(1)), &wide, late).await,
        Applied::Gone
    );
    expired_and_untouched(
        store,
        &k,
        &r,
        late,
        "a write to an expired record changed it",
    )
    .await;
}

/// write refuses, writing nothing (not even the touch), a change that would pass the
/// limits, counted exactly as [`Limits`] says; one that stays within them, or shrinks a
/// session already past them, applies.
pub async fn apply_past_the_limits_writes_nothing<S: SessionStore + ?Sized>(store: &S) {
    let (t, k) = (now(), key());
    let r = record(t);
    create(store, &k, &r).await;
    let mut change = set("a", json!("x".repeat(20)));
    change.set("b", json!({"n": [1, 2]}));
    let exact = Totals::after(r.data(), &change);
    assert_eq!(exact.keys, 3);
    let due = t + Duration::minutes(10);
    // One byte short, then one key short: refused, with the totals it would have had.
    for limits in [rules(exact.bytes - 1, 3), rules(exact.bytes, 2)] {
        assert_eq!(
            write(store, &k, &change, &limits, due).await,
            Applied::TooLarge(exact)
        );
        assert_eq!(
            load(store, &k, t).await,
            Some(r.clone()),
            "a refused write changed the record"
        );
    }
    // Exactly at the limits: applied.
    let at_limit = rules(exact.bytes, 3);
    assert!(matches!(
        write(store, &k, &change, &at_limit, due).await,
        Applied::Done(_)
    ));
    let stored = load(store, &k, due).await.expect("live");
    assert_eq!(Totals::of(stored.data()), exact);
    // A session past its (since lowered) limits may shrink, but not grow.
    let lowered = rules(10, 1);
    let mut shrink = set("a", json!("x"));
    shrink.remove("b");
    assert!(matches!(
        write(store, &k, &shrink, &lowered, due).await,
        Applied::Done(_)
    ));
    let grow = set("c", json!(1));
    assert!(matches!(
        write(store, &k, &grow, &lowered, due).await,
        Applied::TooLarge(_)
    ));
    let stored = load(store, &k, due).await.expect("live");
    assert_eq!(stored.data().len(), 2);
    assert_eq!(stored.data().get("c"), None);
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

/// rotate makes a due touch with the change, as apply does, and none inside the step.
pub async fn rotate_makes_a_due_touch<S: SessionStore + ?Sized>(store: &S) {
    let (t, old, new, newer) = (now(), key(), key(), key());
    let r = record(t);
    create(store, &old, &r).await;
    let wide = rules(64 * 1024, 1024);
    let soon = t + Duration::seconds(30);
    let Rotated::Done(meta) = store
        .rotate(&old, &new, &Change::default(), &wide, soon)
        .await
        .expect("rotate")
    else {
        panic!("rotate of a live record did not move it");
    };
    assert_eq!(
        meta.idle_deadline, r.meta.idle_deadline,
        "a touch inside the step was made"
    );
    let later = t + Duration::minutes(10);
    let Rotated::Done(meta) = store
        .rotate(&new, &newer, &Change::default(), &wide, later)
        .await
        .expect("rotate")
    else {
        panic!("rotate of a live record did not move it");
    };
    assert_eq!(meta.last_seen, later, "a due touch was not made");
    assert_eq!(meta.idle_deadline, later + Duration::hours(1));
    assert_eq!(load(store, &newer, later).await.expect("live").meta, meta);
    assert_eq!(
        meta.absolute_deadline, r.meta.absolute_deadline,
        "rotation moved the absolute deadline"
    );
}

/// delete_owned removes a session of its owner and says so; it leaves another user's
/// session, an ownerless one and a missing one alone and says it ended nothing.
pub async fn delete_owned_ends_only_a_session_of_that_user<S: SessionStore + ?Sized>(store: &S) {
    let (t, mine, theirs, nobodys) = (now(), key(), key(), key());
    let (me, them) = (user(), user());
    for (k, owner) in [(&mine, Some(&me)), (&theirs, Some(&them)), (&nobodys, None)] {
        let mut r = record(t);
        r.meta.user = owner.cloned();
        create(store, k, &r).await;
    }
    for k in [&theirs, &nobodys, &key()] {
        assert!(
            !store.delete_owned(k, &me, t).await.expect("delete_owned"),
            "delete_owned reported ending a session that is not the user's"
        );
        if k != &nobodys && k != &theirs {
            continue;
        }
        assert!(
            load(store, k, t).await.is_some(),
            "delete_owned ended another user's session"
        );
    }
    assert!(store
        .delete_owned(&mine, &me, t)
        .await
        .expect("delete_owned"));
    assert_eq!(load(store, &mine, t).await, None);
    assert!(
        !store
            .delete_owned(&mine, &me, t)
            .await
            .expect("delete_owned"),
        "a second delete_owned reported ending it again"
    );
    let listed = store.list_by_user(&me, t).await.expect("list");
    assert!(listed.is_empty(), "a deleted session is still listed");
}

/// "Sign out everywhere else" racing rotations of another session of the same user: after
/// the revocation returns, that session is dead under every key it was moved to.
pub async fn revocation_racing_rotations_leaves_no_survivor<S: SessionStore + ?Sized>(store: &S) {
    let wide = rules(64 * 1024, 1024);
    for round in 0..20 {
        let (t, keeper, start) = (now(), key(), key());
        let me = user();
        for k in [&keeper, &start] {
            let mut r = record(t);
            r.meta.user = Some(me.clone());
            create(store, k, &r).await;
        }
        let rotations = async {
            let mut current = start;
            for _ in 0..8 {
                let next = key();
                match store
                    .rotate(&current, &next, &Change::default(), &wide, t)
                    .await
                    .expect("rotate")
                {
                    Rotated::Done(_) => current = next,
                    _ => break,
                }
            }
            current
        };
        let revocation = async {
            // Let the rotations start first in some rounds and not in others.
            for _ in 0..round % 4 {
                tokio::task::yield_now().await;
            }
            store
                .delete_by_user(&me, Some(&keeper), t)
                .await
                .expect("delete_by_user")
        };
        let (last, _) = race(rotations, revocation).await;
        assert_eq!(
            load(store, &last, t).await,
            None,
            "round {round}: a session rotated during its user's revocation survived it"
        );
        let listed = store.list_by_user(&me, t).await.expect("list");
        assert_eq!(
            listed.len(),
            1,
            "round {round}: the revocation left {listed:?}"
        );
        assert!(
            load(store, &keeper, t).await.is_some(),
            "the kept session was revoked"
        );
    }
}

/// Runs `a` and `b` at the same time: on threads of their own where the runtime has
/// several (so an in-process store, whose calls never wait, really races), else interleaved
/// at their waits.
async fn race<A, B>(a: A, b: B) -> (A::Output, B::Output)
where
    A: std::future::Future + Send,
    B: std::future::Future + Send,
    A::Output: Send,
    B::Output: Send,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    let handle = Handle::current();
    if handle.runtime_flavor() != RuntimeFlavor::MultiThread {
        return tokio::join!(a, b);
    }
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let a = scope.spawn(|| handle.block_on(a));
            let b = scope.spawn(|| handle.block_on(b));
            (
                a.join().expect("the first racer panicked"),
                b.join().expect("the second racer panicked"),
            )
        })
    })
}

/// Runs every case in turn against `store`.
pub async fn run_all<S: SessionStore + ?Sized>(store: &S) {
    macro_rules! run {
        ($($case:ident),*) => {$( $case(store).await; )*};
    }
    crate::for_each_conformance_case!(run);
}
