//! Per-session expiry: an idle timeout and an end time of a session's own are kept with the record, through later writes and rotation, and the touch and the idle restart use them; each case pins a store (or its script) to [`WriteRules::apply`](crate::store::WriteRules::apply) and [`TouchRule`](crate::store::TouchRule).

use serde_json::json;
use time::Duration;

use super::*;

/// The rules of these cases: the touch rule of the mirrored-rule cases, a session lifetime
/// of two hours (the absolute deadline of [`record`]) and end times of a session's own
/// allowed up to three hours after its creation.
fn lifetime_rules() -> WriteRules {
    rules(usize::MAX, usize::MAX).with_lifetime(Duration::hours(2), Duration::hours(3))
}

fn applied(answer: Applied) -> Metadata {
    match answer {
        Applied::Done(meta) => meta,
        other => panic!("apply of a live record answered {other:?}"),
    }
}

/// A record created with an idle timeout and an end time of its own loads with both, and
/// keeps both through a later write of its data and through a rotation.
pub async fn an_own_expiry_is_stored_and_survives_writes_and_rotation<S: SessionStore + ?Sized>(
    store: &S,
) {
    let (t, k, new) = (now(), key(), key());
    let mut r = record(t);
    r.meta.idle_timeout = Some(Duration::minutes(20));
    r.meta.idle_deadline = t + Duration::minutes(20);
    r.meta.absolute_deadline = t + Duration::minutes(150);
    create(store, &k, &r).await;
    assert_eq!(
        load(store, &k, t).await,
        Some(r.clone()),
        "an own idle timeout or end time did not round-trip"
    );

    let soon = t + Duration::seconds(10);
    let meta = applied(write(store, &k, &set("cart", json!([1])), &lifetime_rules(), soon).await);
    assert_eq!(
        meta.idle_timeout, r.meta.idle_timeout,
        "a write lost the idle timeout"
    );
    assert_eq!(
        meta.absolute_deadline, r.meta.absolute_deadline,
        "a write lost the end time"
    );
    assert_eq!(load(store, &k, soon).await.expect("live").meta, meta);

    let Rotated::Done(meta) = store
        .rotate(
            &k,
            &new,
            &set("role", json!("admin")),
            &lifetime_rules(),
            soon,
        )
        .await
        .expect("rotate")
    else {
        panic!("rotate of a live record did not move it");
    };
    assert_eq!(
        meta.idle_timeout, r.meta.idle_timeout,
        "rotation lost the idle timeout"
    );
    assert_eq!(
        meta.absolute_deadline, r.meta.absolute_deadline,
        "rotation moved the end time"
    );
    let moved = load(store, &new, soon)
        .await
        .expect("live under the new key");
    assert_eq!(moved.meta, meta);
    // The session's own idle timeout holds in the store: dead 20 minutes after the write.
    assert!(load(store, &new, t + Duration::minutes(21)).await.is_none());
}

/// A change that sets an idle timeout and an end time of the session's own applies both:
/// the idle deadline restarts at `now` with the new timeout, the end time becomes the
/// absolute deadline; an end time past the longest lifetime is cut to it, and clearing
/// either returns to the layer's (the lifetime from creation, the class's idle timeout).
pub async fn apply_sets_and_clears_an_own_idle_timeout_and_end_time<S: SessionStore + ?Sized>(
    store: &S,
) {
    let (t, k) = (now(), key());
    create(store, &k, &record(t)).await;
    let at = t + Duration::minutes(1);
    let change = Change {
        idle_timeout: Some(Some(Duration::minutes(10))),
        expires_at: Some(Some(t + Duration::minutes(150))),
        ..Change::default()
    };
    let meta = applied(write(store, &k, &change, &lifetime_rules(), at).await);
    assert_eq!(meta.idle_timeout, Some(Duration::minutes(10)));
    assert_eq!(meta.last_seen, at, "the idle deadline did not restart");
    assert_eq!(meta.idle_deadline, at + Duration::minutes(10));
    assert_eq!(meta.absolute_deadline, t + Duration::minutes(150));
    assert_eq!(load(store, &k, at).await.expect("live").meta, meta);
    assert!(
        load(store, &k, at + Duration::minutes(11)).await.is_none(),
        "the session outlived its own idle timeout"
    );

    let (k, at) = (key(), t + Duration::seconds(30));
    create(store, &k, &record(t)).await;
    let far = Change {
        expires_at: Some(Some(t + Duration::days(400))),
        ..Change::default()
    };
    let meta = applied(write(store, &k, &far, &lifetime_rules(), at).await);
    assert_eq!(
        meta.absolute_deadline,
        t + Duration::hours(3),
        "an end time passed the longest lifetime"
    );
    let early = Change {
        expires_at: Some(Some(t + Duration::minutes(30))),
        idle_timeout: Some(Some(Duration::minutes(45))),
        ..Change::default()
    };
    let meta = applied(write(store, &k, &early, &lifetime_rules(), at).await);
    assert_eq!(meta.absolute_deadline, t + Duration::minutes(30));
    assert_eq!(
        meta.idle_deadline,
        t + Duration::minutes(30),
        "the idle deadline passed the end time"
    );
    let back = Change {
        expires_at: Some(None),
        idle_timeout: Some(None),
        ..Change::default()
    };
    let meta = applied(write(store, &k, &back, &lifetime_rules(), at).await);
    assert_eq!(meta.idle_timeout, None);
    assert_eq!(
        meta.absolute_deadline,
        t + Duration::hours(2),
        "clearing the end time did not return to the lifetime from creation"
    );
    assert_eq!(meta.idle_deadline, at + Duration::hours(1));
    assert_eq!(load(store, &k, at).await.expect("live").meta, meta);
}

/// A change of persistence or of the idle timeout restarts the idle deadline at `now` with
/// the session's idle timeout afterwards, even inside the touch step, and brings it in when
/// the timeout shrinks; an own idle timeout wins over the persistence class.
pub async fn a_change_of_persistence_or_idle_timeout_restarts_the_idle_deadline<
    S: SessionStore + ?Sized,
>(
    store: &S,
) {
    let (t, k) = (now(), key());
    create(store, &k, &record(t)).await;
    let rules = lifetime_rules();
    let steps = [
        // (seconds after creation, change, expected idle deadline after creation)
        (
            20,
            Change {
                persistent: Some(true),
                ..Change::default()
            },
            Duration::hours(2),
        ),
        (
            30,
            Change {
                persistent: Some(false),
                ..Change::default()
            },
            Duration::seconds(30) + Duration::hours(1),
        ),
        (
            40,
            Change {
                idle_timeout: Some(Some(Duration::minutes(5))),
                ..Change::default()
            },
            Duration::seconds(40) + Duration::minutes(5),
        ),
        (
            50,
            Change {
                persistent: Some(true),
                ..Change::default()
            },
            Duration::seconds(50) + Duration::minutes(5),
        ),
    ];
    for (after, change, idle) in steps {
        let at = t + Duration::seconds(after);
        let meta = applied(write(store, &k, &change, &rules, at).await);
        assert_eq!(
            (meta.last_seen, meta.idle_deadline),
            (at, t + idle),
            "after {change:?}"
        );
        assert_eq!(load(store, &k, at).await.expect("live").meta, meta);
    }
}

/// The touch of a load and of a write uses the session's own idle timeout, not its class's.
pub async fn a_touch_uses_the_sessions_own_idle_timeout<S: SessionStore + ?Sized>(store: &S) {
    let (t, k, w) = (now(), key(), key());
    let mut r = record(t);
    r.meta.idle_timeout = Some(Duration::minutes(10));
    r.meta.idle_deadline = t + Duration::minutes(10);
    r.meta.persistent = true;
    create(store, &k, &r).await;
    let later = t + Duration::minutes(5);
    let loaded = load_touching(store, &k, later, &rule())
        .await
        .expect("load_touching")
        .expect("live");
    assert_eq!(
        loaded.meta.idle_deadline,
        later + Duration::minutes(10),
        "a load touched with the class's idle timeout"
    );
    assert_eq!(
        load(store, &k, later).await.expect("live").meta,
        loaded.meta
    );

    create(store, &w, &r).await;
    let meta = applied(write(store, &w, &set("n", json!(1)), &lifetime_rules(), later).await);
    assert_eq!(
        meta.idle_deadline,
        later + Duration::minutes(10),
        "a write touched with the class's idle timeout"
    );
}

/// A session of a user given an end time later than its absolute deadline is still listed
/// and revocable past that deadline: a store that indexes sessions by their deadline
/// re-indexes it.
pub async fn a_later_end_time_keeps_a_session_listed_and_revocable<S: SessionStore + ?Sized>(
    store: &S,
) {
    let (t, k, u) = (now(), key(), user());
    let mut r = record(t);
    r.meta.user = Some(u.clone());
    create(store, &k, &r).await;
    let change = Change {
        expires_at: Some(Some(t + Duration::minutes(170))),
        ..Change::default()
    };
    let at = t + Duration::minutes(1);
    let meta = applied(write(store, &k, &change, &lifetime_rules(), at).await);
    assert_eq!(meta.absolute_deadline, t + Duration::minutes(170));
    // Keep it active past its first absolute deadline (two hours).
    let mut later = at;
    for _ in 0..3 {
        later += Duration::minutes(40);
        load_touching(store, &k, later, &rule())
            .await
            .expect("load_touching")
            .expect("alive until its own end time");
    }
    assert!(later > t + Duration::hours(2));
    let listed = store.list_by_user(&u, later).await.expect("list");
    assert_eq!(
        listed.len(),
        1,
        "a session past its first deadline is not listed"
    );
    assert_eq!(listed[0].handle.storage_key(), k);
    let ended = store.delete_by_user(&u, None, later).await.expect("revoke");
    assert_eq!(
        ended, 1,
        "a session past its first deadline escaped revocation"
    );
    assert!(load(store, &k, later).await.is_none());
}
