//! Key rotation and the verifier's key-set cache, over HTTP: the JWKS endpoint, next /
//! current / retired keys, refetches on unknown `kid`s under a cooldown, and a failing
//! JWKS endpoint.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{issuer_builder, join, json_of, split, Api, App, TestClock, COOLDOWN};
use reqwest::StatusCode;
use serde_json::{json, Value};
use session_layer::MemoryStore;
use session_layer_tokens::{KeyError, KeyState, SigningKey};

const MAX_AGE: Duration = Duration::from_secs(300);

async fn start(clock: &TestClock) -> App {
    let issuer = issuer_builder(clock).build().unwrap();
    App::start(MemoryStore::default(), issuer, clock).await
}

fn kid_of(token: &str) -> String {
    json_of(&split(token)[0])["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The kids the JWKS endpoint publishes, and its `Cache-Control`.
async fn published(app: &App) -> (Vec<String>, String) {
    let res = app.client.get(app.jwks_url()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cache = res
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let set: Value = res.json().await.unwrap();
    let kids = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            assert_eq!(k["kty"], "OKP");
            assert_eq!(k["crv"], "Ed25519");
            assert!(k.get("d").is_none(), "no private part");
            k["kid"].as_str().unwrap().to_owned()
        })
        .collect();
    (kids, cache)
}

#[tokio::test]
async fn next_key_is_published_a_whole_cache_time_before_it_signs() {
    let clock = TestClock::default();
    let app = start(&clock).await;
    let cookie = app.login("alice").await;
    let first = kid_of(&app.mint(Some(&cookie), "").await.unwrap());
    let (kids, cache) = published(&app).await;
    assert_eq!(kids, [first.as_str()]);
    assert_eq!(
        cache, "public, max-age=300",
        "the cache time the rotation waits for"
    );

    let next = SigningKey::generate().unwrap();
    let next_kid = next.kid().to_owned();
    app.issuer.publish_next(next).unwrap();
    assert_eq!(published(&app).await.0, [first.clone(), next_kid.clone()]);
    assert_eq!(
        kid_of(&app.mint(Some(&cookie), "").await.unwrap()),
        first,
        "a next key does not sign"
    );
    assert!(matches!(
        app.issuer.publish_next(SigningKey::generate().unwrap()),
        Err(KeyError::NextAlreadyPublished)
    ));

    clock.advance(MAX_AGE - Duration::from_secs(1));
    assert!(matches!(
        app.issuer.rotate(),
        Err(KeyError::NextNotReady { .. })
    ));
    assert_eq!(kid_of(&app.mint(Some(&cookie), "").await.unwrap()), first);
    clock.advance(Duration::from_secs(1));
    app.issuer
        .rotate()
        .expect("published for a whole cache time");

    assert_eq!(
        kid_of(&app.mint(Some(&cookie), "").await.unwrap()),
        next_kid
    );
    let states: Vec<(String, KeyState)> = app
        .issuer
        .keys()
        .into_iter()
        .map(|k| (k.kid, k.state))
        .collect();
    assert_eq!(
        states,
        [(first, KeyState::Retired), (next_kid, KeyState::Current)]
    );
}

#[tokio::test]
async fn verifier_learns_the_next_key_on_its_regular_refresh_before_it_signs() {
    let clock = TestClock::default();
    let app = start(&clock).await;
    let api = Api::start(&app.jwks_url(), &clock, |b| b).await;
    assert_eq!(app.hits(), 1);
    let cookie = app.login("alice").await;

    app.issuer
        .publish_next(SigningKey::generate().unwrap())
        .unwrap();
    clock.advance(MAX_AGE);
    let token = app.mint(Some(&cookie), "").await.unwrap();
    assert_eq!(api.call(&token).await.status, StatusCode::OK);
    assert_eq!(app.hits(), 2, "the cache time ran out: one refresh");

    app.issuer.rotate().unwrap();
    for _ in 0..5 {
        let token = app.mint(Some(&cookie), "").await.unwrap();
        assert_eq!(api.call(&token).await.status, StatusCode::OK);
    }
    assert_eq!(app.hits(), 2, "the new key was already known");
}

#[tokio::test]
async fn verifier_with_a_stale_cache_refetches_once_and_verifies() {
    let clock = TestClock::default();
    let app = start(&clock).await;
    let api = Api::start(&app.jwks_url(), &clock, |b| b).await;
    let cookie = app.login("alice").await;
    assert_eq!(app.hits(), 1);

    // A compromised key: the next one signs at once, before the API has seen it.
    app.issuer
        .publish_next(SigningKey::generate().unwrap())
        .unwrap();
    clock.advance(COOLDOWN);
    app.issuer.rotate_now().unwrap();
    let token = app.mint(Some(&cookie), "").await.unwrap();
    assert_eq!(api.call(&token).await.claims()["sub"], "alice");
    assert_eq!(app.hits(), 2, "one refetch for the unknown kid");
    for _ in 0..5 {
        let token = app.mint(Some(&cookie), "").await.unwrap();
        assert_eq!(api.call(&token).await.status, StatusCode::OK);
    }
    assert_eq!(app.hits(), 2, "and no more");
}

#[tokio::test]
async fn token_of_a_retired_key_verifies_until_the_key_is_removed_then_not() {
    // The API runs on a clock of its own that stays within the token's lifetime, so the
    // only thing that changes for it is the published key set.
    let app_clock = TestClock::default();
    let api_clock = TestClock::default();
    let app = start(&app_clock).await;
    let cookie = app.login("alice").await;
    let old_kid = app.issuer.keys()[0].kid.clone();

    app.issuer
        .publish_next(SigningKey::generate().unwrap())
        .unwrap();
    app_clock.advance(MAX_AGE);
    let old_token = app.mint(Some(&cookie), "").await.unwrap();
    assert_eq!(kid_of(&old_token), old_kid);
    app.issuer.rotate().unwrap();
    api_clock.advance(MAX_AGE);

    let api = Api::start(&app.jwks_url(), &api_clock, |b| b).await;
    assert_eq!(
        api.call(&old_token).await.status,
        StatusCode::OK,
        "retired, still published"
    );

    // Removal waits for the longest token lifetime (15 min), the cache time (5 min) and a
    // minute of margin.
    let keep = Duration::from_secs(900 + 300 + 60);
    app_clock.advance(keep - Duration::from_secs(1));
    assert!(app.issuer.prune().is_empty(), "too early to remove");
    assert!(published(&app).await.0.contains(&old_kid));
    app_clock.advance(Duration::from_secs(1));
    assert_eq!(app.issuer.prune(), [old_kid.as_str()]);
    assert!(!published(&app).await.0.contains(&old_kid));

    // A verifier that fetches the set now no longer knows the key, even after the one
    // refetch its cooldown allows.
    let fresh = Api::start(&app.jwks_url(), &api_clock, |b| b).await;
    api_clock.advance(COOLDOWN);
    let hits = app.hits();
    assert_eq!(
        fresh.call(&old_token).await.assert_invalid_token(),
        "unknown signing key"
    );
    assert_eq!(app.hits(), hits + 1);
}

/// `token` naming `kid` in its header instead of its own.
fn with_kid(token: &str, kid: &str) -> String {
    let mut parts = split(token);
    let mut header = json_of(&parts[0]);
    header.insert("kid".into(), json!(kid));
    parts[0] = serde_json::to_vec(&header).unwrap();
    join(&parts)
}

fn random_kid() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_flood_of_unknown_kids_refetches_at_most_once_per_cooldown() {
    let clock = TestClock::default();
    let app = start(&clock).await;
    let api = Arc::new(Api::start(&app.jwks_url(), &clock, |b| b).await);
    let cookie = app.login("alice").await;
    let token = app.mint(Some(&cookie), "").await.unwrap();
    assert_eq!(app.hits(), 1);

    // 1,000 at once, once the cooldown since the start has passed: one refetch between them.
    // (In waves of 100 concurrent requests, to stay within the open-files limit.)
    clock.advance(COOLDOWN);
    for _ in 0..10 {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let (api, forged) = (api.clone(), with_kid(&token, &random_kid()));
            tasks.spawn(async move { api.call(&forged).await });
        }
        while let Some(answer) = tasks.join_next().await {
            assert_eq!(
                answer.unwrap().assert_invalid_token(),
                "unknown signing key"
            );
        }
    }
    assert_eq!(app.hits(), 2, "1,000 unknown kids at once: one refetch");

    // 1,000 more, one every 50 ms of the clock: 50 s, five cooldowns, five refetches.
    for _ in 0..1_000 {
        clock.advance(Duration::from_millis(50));
        let answer = api.call(&with_kid(&token, &random_kid())).await;
        assert_eq!(answer.assert_invalid_token(), "unknown signing key");
    }
    assert_eq!(app.hits(), 2 + 5, "one refetch per cooldown");

    // The real token still verifies, without a fetch.
    assert_eq!(api.call(&token).await.status, StatusCode::OK);
    assert_eq!(app.hits(), 7);
}

#[tokio::test]
async fn a_failing_jwks_endpoint_keeps_the_last_good_set_for_a_bounded_time() {
    let clock = TestClock::default();
    let app = start(&clock).await;
    let max_stale = Duration::from_secs(600);
    let api = Api::start(&app.jwks_url(), &clock, |b| b.with_max_stale(max_stale)).await;
    let cookie = app.login("alice").await;

    app.jwks_down.store(true, Ordering::SeqCst);
    clock.advance(MAX_AGE);
    let token = app.mint(Some(&cookie), "").await.unwrap();
    assert_eq!(
        api.call(&token).await.status,
        StatusCode::OK,
        "the last good set"
    );
    assert_eq!(app.hits(), 2, "the refresh was tried");
    clock.advance(COOLDOWN / 2);
    assert_eq!(api.call(&token).await.status, StatusCode::OK);
    assert_eq!(app.hits(), 2, "no retry within the cooldown");

    clock.advance(max_stale - COOLDOWN / 2 - Duration::from_secs(1));
    let token = app.mint(Some(&cookie), "").await.unwrap();
    assert_eq!(
        api.call(&token).await.status,
        StatusCode::OK,
        "still within the bound"
    );
    clock.advance(Duration::from_secs(1));
    let token = app.mint(Some(&cookie), "").await.unwrap();
    let answer = api.call(&token).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "too old to trust"
    );
    assert_eq!(answer.www_authenticate, None, "not the client's fault");
    assert_eq!(answer.body, "signing keys unavailable");

    app.jwks_down.store(false, Ordering::SeqCst);
    clock.advance(COOLDOWN);
    assert_eq!(
        api.call(&token).await.status,
        StatusCode::OK,
        "back on the new set"
    );
}
