//! Rotation: the record moves to its new key in one step; the old key is dead; collisions and limits change nothing.

use futures_util::future::join_all;
use serde_json::json;
use time::Duration;

use super::*;

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
