//! The rules a store mirrors when it cannot call them (a script, one SQL statement): each case pins the store to [`TouchRule`](crate::store::TouchRule), [`Limits`](crate::store::Limits) and [`WriteRules::apply`](crate::store::WriteRules::apply).

use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::*;

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
