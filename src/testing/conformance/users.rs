//! Per-user listing and revocation, including a revocation racing rotations of the user's sessions.

use time::Duration;

use super::*;

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
