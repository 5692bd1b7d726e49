//! Races a user can cause from two browsers, over real HTTP against the [`app`](crate::app)
//! on any store: "sign out everywhere else" while another session of the same user rotates
//! or changes hands, `revoke` of a session that already ended or belongs to someone else,
//! and concurrent read-then-write requests against the size limits.
//!
//! Each body takes the address of an app served with [`app::routes`](crate::app::routes)
//! and asserts what the user would see; run them on a multi-thread runtime so that the
//! requests really run at once.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::app::call;

/// How many rotations the rotating browser makes in each round.
const ROTATIONS: usize = 12;

fn fresh_user(tag: &str) -> String {
    format!("{tag}-{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish()
}

/// Signs a new browser in as `user`: its cookie.
async fn sign_in(client: &reqwest::Client, addr: SocketAddr, user: &str) -> String {
    let reply = call(client, addr, Method::POST, &format!("/login/{user}"), None).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "sign-in failed: {}",
        reply.body
    );
    reply.cookie.expect("a signed-in session has a cookie")
}

/// Who the browser holding `cookie` is signed in as ("none" if nobody).
async fn who(client: &reqwest::Client, addr: SocketAddr, cookie: &str) -> String {
    call(client, addr, Method::GET, "/user", Some(cookie))
        .await
        .body
}

/// Browser A rotates its session again and again while browser B, signed in as the same
/// user, signs out everywhere else. Every round, A ends signed out, whichever order the
/// store ran the two in: a rotation never carries a session out of a revocation's reach.
///
/// # Panics
///
/// When a round ends with A still signed in, or a request fails.
pub async fn revocation_racing_rotation(addr: SocketAddr, rounds: usize) {
    let client = reqwest::Client::new();
    let mut survivors = Vec::new();
    for round in 0..rounds {
        let user = fresh_user("racer");
        let a = sign_in(&client, addr, &user).await;
        let b = sign_in(&client, addr, &user).await;
        let rotating = {
            let client = client.clone();
            tokio::spawn(async move {
                let mut cookie = a;
                for _ in 0..ROTATIONS {
                    let reply = call(&client, addr, Method::POST, "/rotate", Some(&cookie)).await;
                    assert_eq!(reply.status, StatusCode::OK, "rotate: {}", reply.body);
                    match reply.cookie {
                        // A removal: the session ended under it; the browser has none.
                        Some(value) if value.is_empty() => return None,
                        Some(value) => cookie = value,
                        None => {}
                    }
                }
                Some(cookie)
            })
        };
        let revoking = {
            let client = client.clone();
            tokio::spawn(async move {
                // Land somewhere in the middle of the rotations.
                tokio::time::sleep(Duration::from_micros(rand_u64() % 3_000)).await;
                let reply = call(&client, addr, Method::POST, "/revoke-others", Some(&b)).await;
                assert_eq!(
                    reply.status,
                    StatusCode::OK,
                    "revoke-others: {}",
                    reply.body
                );
                b
            })
        };
        let last = rotating.await.expect("the rotating browser");
        let b = revoking.await.expect("the revoking browser");
        if let Some(cookie) = last {
            if who(&client, addr, &cookie).await != "none" {
                survivors.push(round);
            }
        }
        assert_eq!(
            who(&client, addr, &b).await,
            user,
            "the revoking browser was signed out"
        );
    }
    assert!(
        survivors.is_empty(),
        "the rotating session was still signed in after \"sign out everywhere else\" in {} of {rounds} rounds: {survivors:?}",
        survivors.len()
    );
}

/// Many sessions change hands between two users at once: each gets concurrent requests
/// that set its owner to one user or the other, keeping its ID. Then "sign out everywhere
/// else" from a fresh browser of each user ends every one of them, whoever owns it last:
/// the per-user index lost none.
///
/// # Panics
///
/// When a session survives its owner's "sign out everywhere else".
pub async fn revocation_after_owner_changes(addr: SocketAddr, sessions: usize, switches: usize) {
    let client = reqwest::Client::new();
    let users = [fresh_user("left"), fresh_user("right")];
    let mut held = Vec::new();
    for _ in 0..sessions {
        held.push(sign_in(&client, addr, &users[0]).await);
    }
    let mut tasks = Vec::new();
    for (n, cookie) in held.iter().enumerate() {
        for switch in 0..switches {
            let client = client.clone();
            let cookie = cookie.clone();
            let path = format!("/own/{}", users[(n + switch) % 2]);
            tasks.push(tokio::spawn(async move {
                let reply = call(&client, addr, Method::POST, &path, Some(&cookie)).await;
                assert_eq!(reply.status, StatusCode::OK, "set owner: {}", reply.body);
            }));
        }
    }
    for task in tasks {
        task.await.expect("an owner change");
    }
    for user in &users {
        let fresh = sign_in(&client, addr, user).await;
        let reply = call(&client, addr, Method::POST, "/revoke-others", Some(&fresh)).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "revoke-others: {}",
            reply.body
        );
    }
    let mut survivors = 0;
    for cookie in &held {
        survivors += usize::from(who(&client, addr, cookie).await != "none");
    }
    assert_eq!(
        survivors, 0,
        "{survivors} of {sessions} sessions survived their owner's \"sign out everywhere else\""
    );
}

/// `revoke(handle)` answers `true` only when it ended a live session of the caller's user:
/// `false` for a session that already ended, and `false`, ending nothing, for another
/// user's session.
///
/// # Panics
///
/// When `revoke` answers wrongly or ends another user's session.
pub async fn revoke_answers_truthfully(addr: SocketAddr) {
    let client = reqwest::Client::new();
    let alice = fresh_user("alice");
    let mallory = fresh_user("mallory");
    let phone = sign_in(&client, addr, &alice).await;
    let laptop = sign_in(&client, addr, &alice).await;
    let other = sign_in(&client, addr, &mallory).await;
    let handle_of = |cookie: String| {
        let client = client.clone();
        async move {
            call(&client, addr, Method::GET, "/handle", Some(&cookie))
                .await
                .body
        }
    };
    let phone_handle = handle_of(phone.clone()).await;
    let other_handle = handle_of(other.clone()).await;
    assert_ne!(phone_handle, "none");

    let revoke = |handle: String| {
        let client = client.clone();
        let laptop = laptop.clone();
        async move {
            let path = format!("/revoke/{handle}");
            let reply = call(&client, addr, Method::POST, &path, Some(&laptop)).await;
            assert_eq!(reply.status, StatusCode::OK, "revoke: {}", reply.body);
            reply.body
        }
    };
    assert_eq!(
        revoke(other_handle).await,
        "false",
        "another user's session"
    );
    assert_eq!(
        who(&client, addr, &other).await,
        mallory,
        "another user's session ended"
    );
    assert_eq!(
        revoke(phone_handle.clone()).await,
        "true",
        "a live session of mine"
    );
    assert_eq!(who(&client, addr, &phone).await, "none");
    assert_eq!(
        revoke(phone_handle).await,
        "false",
        "a session already ended"
    );
}

/// Requests that each read a session and then add a key of their own, all at once, against
/// a layer whose limits allow `max_keys` keys: however they interleave, the session never
/// holds more than that, and every request that answered 200 kept its key.
///
/// The app must be served with a layer of `with_limits(usize::MAX, max_keys)`.
///
/// # Panics
///
/// When the session ends up over its limit or loses an acknowledged write.
pub async fn limits_hold_for_concurrent_read_then_write(
    addr: SocketAddr,
    max_keys: usize,
    writers: usize,
) {
    let client = reqwest::Client::new();
    let first = call(&client, addr, Method::POST, "/set/k0/v", None).await;
    let cookie = first.cookie.expect("a new session");
    let mut tasks = Vec::new();
    for i in 1..=writers {
        let client = client.clone();
        let cookie = cookie.clone();
        tasks.push(tokio::spawn(async move {
            let path = format!("/read-then-set/k{i}/v");
            let reply = call(&client, addr, Method::POST, &path, Some(&cookie)).await;
            (i, reply.status)
        }));
    }
    let mut kept = vec![0];
    for task in tasks {
        let (i, status) = task.await.expect("a writer");
        if status == StatusCode::OK {
            kept.push(i);
        } else {
            assert!(status.is_server_error(), "k{i}: {status}");
        }
    }
    let mut held = 0;
    for i in 0..=writers {
        let path = format!("/get/k{i}");
        let reply = call(&client, addr, Method::GET, &path, Some(&cookie)).await;
        if reply.body != "none" {
            held += 1;
        } else {
            assert!(!kept.contains(&i), "k{i} was acknowledged and then lost");
        }
    }
    assert!(
        held <= max_keys,
        "the session holds {held} keys, over its limit of {max_keys}"
    );
}
