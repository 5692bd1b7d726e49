//! Create, load, delete and cleanup: what goes in comes out, nothing is overwritten, nothing expired is returned.

use serde_json::json;
use time::Duration;

use super::*;

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
