//! A Sentinel failover under load: a master, a replica and three Sentinels on loopback, an
//! app signing sessions out through the store (over real HTTP), the replica lagging when
//! the master dies (its link held back for a moment, as a slow link would), then the
//! master killed and the replica promoted by the Sentinels.
//!
//! A sign-out that fails is tried again later, as its user would. Once the replica is
//! promoted, the old master comes back (empty) and the Sentinels make it the new master's
//! replica.
//!
//! With the replication wait, every sign-out the app acknowledged stays signed out on the
//! new master, and the app serves through it. Without, the test counts the acknowledged
//! sign-outs whose sessions came back, and reports them (it does not fail: that is what
//! the wait is for).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::replicas::{ReplicaSet, MASTER_NAME};
use common::{app, serve, Client};
use session_layer_redis::RedisStore;

/// Sessions signed in before the load; each is signed out during it (tried again until
/// acknowledged, or until the load ends).
const SESSIONS: usize = 300;
/// How long the sign-outs go on at most once the new master has a replica again.
const LOAD_AFTER_RECOVERY: Duration = Duration::from_secs(4);
/// How long the load goes on past that while no sign-out has gone through the new master.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);
/// Concurrent sign-out clients, and the pause each takes between requests.
const SIGN_OUT_CLIENTS: usize = 4;
const SIGN_OUT_PAUSE: Duration = Duration::from_millis(20);
/// Clients reading their own sessions throughout.
const READERS: usize = 4;

#[derive(Debug, Default)]
struct Figures {
    acknowledged: usize,
    acknowledged_while_lagging: usize,
    acknowledged_after_failover: usize,
    refused: usize,
    never_acknowledged: usize,
    lost: usize,
    served_during_failover: usize,
    failed_during_failover: usize,
    served_after: usize,
    failover: Duration,
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Before,
    Lagging,
    FailingOver,
    After,
}

/// One failover at a time: the two runs' figures are comparable, and neither starves the
/// other's servers of the CPU.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn run(wait: bool) -> Option<Figures> {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut set = ReplicaSet::start().await?;
    let mut builder = RedisStore::sentinel_builder(set.sentinel_urls(), MASTER_NAME)
        .with_key_prefix("failover:")
        .with_command_timeout(Duration::from_millis(1000))
        .with_connect_timeout(Duration::from_millis(300));
    if wait {
        builder = builder.with_replication_wait(1, Duration::from_millis(100));
    }
    let store = builder
        .connect()
        .await
        .expect("connect through the sentinels");
    let client = Client::new(serve(app(store)).await);

    // Sign everyone in.
    let mut signed_in = Vec::new();
    for i in 0..SESSIONS + READERS {
        let reply = client.post(&format!("/login/user{i}"), None).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        signed_in.push((format!("user{i}"), reply.cookie.expect("a session cookie")));
    }
    let readers: Vec<_> = signed_in.split_off(SESSIONS);
    let queue = Arc::new(Mutex::new(signed_in));

    let phase = Arc::new(Mutex::new(Phase::Before));
    let stop = Arc::new(AtomicBool::new(false));
    // (phase, acknowledged, user, cookie) for every sign-out; (phase, ok) for every read.
    let sign_outs = Arc::new(Mutex::new(Vec::new()));
    let reads = Arc::new(Mutex::new(Vec::new()));

    let mut tasks = Vec::new();
    for _ in 0..SIGN_OUT_CLIENTS {
        let (client, queue, phase, stop, sign_outs) = (
            client.clone(),
            queue.clone(),
            phase.clone(),
            stop.clone(),
            sign_outs.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let Some((user, cookie)) = queue.lock().unwrap().pop() else {
                    break;
                };
                let at = *phase.lock().unwrap();
                let reply = client.post("/logout", Some(&cookie)).await;
                let acknowledged = reply.status == 200 && reply.cookie.as_deref() == Some("");
                if !acknowledged {
                    // Its user tries again later.
                    queue
                        .lock()
                        .unwrap()
                        .insert(0, (user.clone(), cookie.clone()));
                }
                sign_outs
                    .lock()
                    .unwrap()
                    .push((at, acknowledged, user, cookie));
                tokio::time::sleep(SIGN_OUT_PAUSE).await;
            }
        }));
    }
    for (user, cookie) in readers {
        let (client, phase, stop, reads) =
            (client.clone(), phase.clone(), stop.clone(), reads.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let at = *phase.lock().unwrap();
                let reply = client.get("/whoami", Some(&cookie)).await;
                reads
                    .lock()
                    .unwrap()
                    .push((at, reply.status == 200 && reply.body == user));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }

    // Let the load run, then make the replica lag, then kill the master.
    tokio::time::sleep(Duration::from_millis(600)).await;
    set.hold_replication();
    *phase.lock().unwrap() = Phase::Lagging;
    tokio::time::sleep(Duration::from_millis(400)).await;
    set.kill_master();
    let killed = Instant::now();
    *phase.lock().unwrap() = Phase::FailingOver;
    set.wait_until(
        Duration::from_secs(30),
        "the replica's promotion",
        ReplicaSet::replica_promoted,
    )
    .await;
    let failover = killed.elapsed();
    *phase.lock().unwrap() = Phase::After;
    set.bring_back_old_master();
    set.wait_until(
        Duration::from_secs(30),
        "the old master to replicate the new one",
        ReplicaSet::new_master_has_a_replica,
    )
    .await;
    let recovered = Instant::now();

    // The rest of the sign-outs, and reads through the new master meanwhile.
    // On a busy machine the replica may take a while to be in sync (a full resync of the
    // old master), and until then every waited sign-out is refused: keep the load on until
    // one goes through the new master, for at most RECOVERY_LIMIT.
    let through_new_master = || {
        sign_outs
            .lock()
            .unwrap()
            .iter()
            .any(|(at, acknowledged, _, _)| *at == Phase::After && *acknowledged)
    };
    while !queue.lock().unwrap().is_empty()
        && (recovered.elapsed() < LOAD_AFTER_RECOVERY
            || (!through_new_master() && recovered.elapsed() < RECOVERY_LIMIT))
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    let never_acknowledged = queue.lock().unwrap().len();

    // Every acknowledged sign-out: is its session still gone on the new master?
    let sign_outs = std::mem::take(&mut *sign_outs.lock().unwrap());
    let mut figures = Figures {
        failover,
        never_acknowledged,
        ..Figures::default()
    };
    for (at, acknowledged, user, cookie) in &sign_outs {
        if !acknowledged {
            figures.refused += 1;
            continue;
        }
        figures.acknowledged += 1;
        match at {
            Phase::Lagging => figures.acknowledged_while_lagging += 1,
            Phase::After => figures.acknowledged_after_failover += 1,
            _ => {}
        }
        let reply = client.get("/whoami", Some(cookie)).await;
        assert_eq!(reply.status, 200, "the new master serves: {reply:?}");
        if &reply.body == user {
            figures.lost += 1;
        }
    }
    for (at, ok) in reads.lock().unwrap().iter() {
        match (at, ok) {
            (Phase::FailingOver, true) => figures.served_during_failover += 1,
            (Phase::FailingOver, false) => figures.failed_during_failover += 1,
            (Phase::After, true) => figures.served_after += 1,
            _ => {}
        }
    }

    // The app serves through the new master: a new sign-in, and its session read back.
    let reply = client.post("/login/after-failover", None).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let cookie = reply.cookie.expect("a session cookie");
    let reply = client.get("/whoami", Some(&cookie)).await;
    assert_eq!(reply.body, "after-failover", "{reply:?}");
    assert!(
        figures.served_after > 0,
        "the readers were served after the failover"
    );

    eprintln!(
        "failover with the replication wait {}: {} sign-outs acknowledged ({} while the \
         replica lagged, {} through the new master), {} attempts refused with an error, {} \
         never acknowledged, {} lost (signed in again on the new master); reads while \
         failing over: {} served, {} failed; {} served after; promotion {} ms after the kill",
        if wait { "on" } else { "off" },
        figures.acknowledged,
        figures.acknowledged_while_lagging,
        figures.acknowledged_after_failover,
        figures.refused,
        figures.never_acknowledged,
        figures.lost,
        figures.served_during_failover,
        figures.failed_during_failover,
        figures.served_after,
        figures.failover.as_millis()
    );
    Some(figures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_replication_wait_no_acknowledged_sign_out_is_lost_in_a_failover() {
    let Some(figures) = run(true).await else {
        return;
    };
    assert_eq!(figures.lost, 0, "{figures:?}");
    assert!(figures.acknowledged_after_failover > 0, "{figures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_replication_wait_a_failover_can_lose_acknowledged_sign_outs() {
    let Some(figures) = run(false).await else {
        return;
    };
    assert!(figures.acknowledged > 0, "{figures:?}");
    // What the name says: a sign-out acknowledged while the replica lagged is gone with the
    // old master (a few sent just before the lag began are lost as well).
    assert!(
        figures.acknowledged_while_lagging > 0,
        "no sign-out was acknowledged while the replica lagged: {figures:?}"
    );
    assert!(
        figures.lost >= figures.acknowledged_while_lagging,
        "{figures:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_wait_that_times_out_fails_sign_out_rotation_and_revocation() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(set) = ReplicaSet::start().await else {
        return;
    };
    // Through the Sentinels, and straight to the master's URL.
    let builders = [
        RedisStore::sentinel_builder(set.sentinel_urls(), MASTER_NAME),
        RedisStore::builder(set.master.url()),
    ];
    let mut apps = Vec::new();
    for (n, builder) in builders.into_iter().enumerate() {
        // Apart: one app's revocation must not reach the other's sessions.
        let user = format!("waiting{n}");
        let store = builder
            .with_key_prefix(format!("failover-{n}:"))
            .with_replication_wait(1, Duration::from_millis(100))
            .connect()
            .await
            .expect("connect");
        let client = Client::new(serve(app(store)).await);
        let mut signed_in = Vec::new();
        for _ in 0..4 {
            let reply = client.post(&format!("/login/{user}"), None).await;
            assert_eq!(
                reply.status, 200,
                "a rotation the replica acknowledged: {reply:?}"
            );
            signed_in.push(reply.cookie.expect("a session cookie"));
        }
        let reply = client.post("/logout", Some(&signed_in[0])).await;
        assert_eq!(
            reply.status, 200,
            "a sign-out the replica acknowledged: {reply:?}"
        );
        apps.push((client, signed_in, user));
    }

    // The replica stops acknowledging: every write that ends or moves a session fails,
    // and no response claims it done.
    set.hold_replication();
    for (client, signed_in, user) in &apps {
        for (path, cookie) in [
            ("/logout".to_owned(), &signed_in[1]),
            (format!("/login/{user}"), &signed_in[2]),
            ("/revoke-others".to_owned(), &signed_in[3]),
        ] {
            let reply = client.post(&path, Some(cookie)).await;
            assert!(
                reply.status >= 500,
                "{path} without a replica's acknowledgement: {reply:?}"
            );
            assert_eq!(reply.cookie, None, "{path} sent a cookie: {reply:?}");
        }
        // Reads need no replica.
        let reply = client.get("/whoami", Some(&signed_in[3])).await;
        assert_eq!((reply.status, &reply.body), (200, user), "{reply:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_master_is_left_behind_and_the_app_serves_through_the_new_one() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(set) = ReplicaSet::start().await else {
        return;
    };
    let store = RedisStore::sentinel_builder(set.sentinel_urls(), MASTER_NAME)
        .with_key_prefix("failover-frozen:")
        .with_command_timeout(Duration::from_millis(300))
        .connect()
        .await
        .expect("connect through the sentinels");
    let client = Client::new(serve(app(store)).await);
    let reply = client.post("/login/frozen", None).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let cookie = reply.cookie.expect("a session cookie");

    // A frozen master keeps its sockets open: only timeouts show it is gone.
    set.freeze_master();
    let reply = client.get("/whoami", Some(&cookie)).await;
    assert!(
        reply.status >= 500,
        "a frozen master answers nothing: {reply:?}"
    );
    set.wait_until(
        Duration::from_secs(30),
        "the replica's promotion",
        ReplicaSet::replica_promoted,
    )
    .await;
    // The first requests after the promotion may still fail; the app reaches the new
    // master within a few.
    let mut served = None;
    for _ in 0..20 {
        let reply = client.get("/whoami", Some(&cookie)).await;
        if reply.status == 200 {
            served = Some(reply.body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        served.as_deref(),
        Some("frozen"),
        "served through the new master"
    );
}
