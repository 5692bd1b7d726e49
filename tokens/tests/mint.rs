//! Minting over HTTP, on the memory store and on Redis: what a token carries, which
//! sessions may mint, how long a token lives, and what introspection adds.

mod common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{issuer_builder, json_of, split, Api, App, TestClock, AUDIENCE, COOKIE, ISSUER};
use reqwest::{Method, StatusCode};
use serde_json::json;
use session_layer::id::SessionId;
use session_layer::SessionStore;

on_memory_and_redis!(
    signed_in_session_mints_a_token_the_api_accepts,
    sid_names_the_session_without_revealing_its_id_or_storage_key,
    anonymous_request_cannot_mint_and_says_why,
    signed_out_session_cannot_mint_and_says_why,
    revoked_session_cannot_mint_and_says_why,
    expired_session_cannot_mint,
    session_signed_in_during_the_request_cannot_mint_yet,
    token_never_outlives_its_session,
    lifetime_defaults_to_five_minutes_and_cannot_pass_the_maximum,
    introspection_sees_a_revocation_that_the_offline_check_does_not,
);

async fn start<St: SessionStore + Clone>(store: St) -> (App, TestClock) {
    let clock = TestClock::default();
    let issuer = issuer_builder(&clock).build().expect("an issuer");
    (App::start(store, issuer, &clock).await, clock)
}

async fn signed_in_session_mints_a_token_the_api_accepts<St: SessionStore + Clone>(store: St) {
    let (app, clock) = start(store).await;
    let cookie = app.login("alice").await;
    let token = app
        .mint(Some(&cookie), "role=admin")
        .await
        .expect("a token");

    let [header, payload, _] = split(&token);
    let header = json_of(&header);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], app.issuer.keys()[0].kid.as_str());
    let claims = json_of(&payload);
    let now = clock.unix();
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], json!([AUDIENCE, "billing"]));
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["iat"], now);
    assert_eq!(claims["nbf"], now);
    assert_eq!(claims["exp"], now + 300, "five minutes by default");
    assert_eq!(claims["role"], "admin");
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 22));

    let api = Api::start(&app.jwks_url(), &clock, |b| b).await;
    let seen = api.call(&token).await.claims();
    assert_eq!(seen["sub"], "alice");
    assert_eq!(seen["sid"], claims["sid"]);
    assert_eq!(seen["role"], "admin");

    let again = app.mint(Some(&cookie), "").await.expect("a second token");
    let again = json_of(&split(&again)[1]);
    assert_ne!(again["jti"], claims["jti"], "every token has its own jti");
    assert_eq!(again["sid"], claims["sid"], "one session, one sid");
    assert!(again.get("role").is_none());
}

async fn sid_names_the_session_without_revealing_its_id_or_storage_key<St: SessionStore + Clone>(
    store: St,
) {
    let (app, _clock) = start(store).await;
    let cookie = app.login("alice").await;
    let other_device = app.login("alice").await;
    let sid_of = |token: String| {
        json_of(&split(&token)[1])["sid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let sid = sid_of(app.mint(Some(&cookie), "").await.unwrap());
    let other = sid_of(app.mint(Some(&other_device), "").await.unwrap());
    assert_ne!(sid, other, "each session has its own sid");

    let id = cookie.strip_prefix(&format!("{COOKIE}=")).unwrap();
    let key = SessionId::parse(id.as_bytes())
        .expect("the cookie carries a session ID")
        .storage_key();
    for revealing in [
        id.to_owned(),
        key.to_hex(),
        URL_SAFE_NO_PAD.encode(key.as_bytes()),
    ] {
        assert!(
            !sid.contains(&revealing) && !revealing.contains(&sid),
            "the sid gives away the session"
        );
    }
    // The handle the session's user sees in "your sessions" is not the sid either: it
    // cannot be turned into a token's sid without the issuer's secret.
    assert_eq!(
        app.issuer.sid(&session_layer::id::SessionHandle::from(key)),
        sid
    );
    assert_ne!(key.to_hex(), sid);
}

async fn anonymous_request_cannot_mint_and_says_why<St: SessionStore + Clone>(store: St) {
    let (app, _clock) = start(store).await;
    let (status, why) = app.mint(None, "").await.expect_err("no token");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(why.contains("no signed-in user"), "{why}");
}

async fn signed_out_session_cannot_mint_and_says_why<St: SessionStore + Clone>(store: St) {
    let (app, _clock) = start(store).await;
    let cookie = app.login("alice").await;
    let (status, why) = app
        .send(Method::POST, "/logout-then-mint", "", Some(&cookie))
        .await
        .expect_err("no token in the request that signs out");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(why.contains("signed out"), "{why}");

    let cookie = app.login("alice").await;
    app.mint(Some(&cookie), "")
        .await
        .expect("signed in: a token");
    app.send(Method::POST, "/logout", "", Some(&cookie))
        .await
        .expect("signed out");
    let (status, why) = app
        .mint(Some(&cookie), "")
        .await
        .expect_err("the old cookie mints nothing");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(why.contains("no signed-in user"), "{why}");
}

async fn revoked_session_cannot_mint_and_says_why<St: SessionStore + Clone>(store: St) {
    let (app, _clock) = start(store).await;
    let laptop = app.login("alice").await;
    let phone = app.login("alice").await;
    app.mint(Some(&phone), "").await.expect("a token before");

    let ended = app
        .send(Method::POST, "/revoke-others", "", Some(&laptop))
        .await
        .expect("sign out everywhere else");
    assert_eq!(ended, "1");
    let (status, why) = app.mint(Some(&phone), "").await.expect_err("revoked");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(why.contains("revoked"), "{why}");
    app.mint(Some(&laptop), "")
        .await
        .expect("the session that revoked the others still mints");

    // Revoked after the request loaded it: the store is asked, not the loaded copy.
    let (status, why) = app
        .send(Method::POST, "/revoked-then-mint", "", Some(&laptop))
        .await
        .expect_err("revoked during the request");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(why.contains("not live in the store"), "{why}");
    app.mint(Some(&laptop), "")
        .await
        .expect_err("and on later requests");
}

async fn expired_session_cannot_mint<St: SessionStore + Clone>(store: St) {
    let (app, clock) = start(store).await;
    let cookie = app.login("alice").await;
    clock.advance(Duration::from_secs(3600 + 1));
    let (status, why) = app
        .mint(Some(&cookie), "")
        .await
        .expect_err("idle too long");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(why.contains("expired"), "{why}");
}

async fn session_signed_in_during_the_request_cannot_mint_yet<St: SessionStore + Clone>(store: St) {
    let (app, _clock) = start(store).await;
    let (status, why) = app
        .send(Method::POST, "/login-then-mint", "user=alice", None)
        .await
        .expect_err("a new session is not stored yet");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(why.contains("not saved yet"), "{why}");
}

async fn token_never_outlives_its_session<St: SessionStore + Clone>(store: St) {
    let clock = TestClock::default();
    let issuer = issuer_builder(&clock).build().unwrap();
    let idle = Duration::from_secs(120);
    let app = App::start_with_idle(store, issuer, &clock, idle).await;
    let cookie = app.login("alice").await;
    let start = clock.unix();
    clock.advance(Duration::from_secs(30));
    let token = app.mint(Some(&cookie), "").await.unwrap();
    let exp = json_of(&split(&token)[1])["exp"].as_i64().unwrap();
    // The mint's own request moved the idle deadline no further than the session allows.
    assert!(
        exp <= clock.unix() + 120,
        "exp {exp} past the idle deadline"
    );
    assert!(
        exp < clock.unix() + 300,
        "shorter than the default lifetime"
    );
    assert!(exp >= start + 120);
}

async fn lifetime_defaults_to_five_minutes_and_cannot_pass_the_maximum<St: SessionStore + Clone>(
    store: St,
) {
    let (app, clock) = start(store).await;
    assert_eq!(app.issuer.lifetime(), Duration::from_secs(300));
    assert_eq!(app.issuer.max_lifetime(), Duration::from_secs(900));
    let cookie = app.login("alice").await;
    let exp = |token: String| json_of(&split(&token)[1])["exp"].as_i64().unwrap();
    let now = clock.unix();
    assert_eq!(
        exp(app.mint(Some(&cookie), "ttl=60").await.unwrap()),
        now + 60
    );
    assert_eq!(
        exp(app.mint(Some(&cookie), "ttl=900").await.unwrap()),
        now + 900
    );
    let (status, why) = app.mint(Some(&cookie), "ttl=901").await.unwrap_err();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(why.contains("maximum"), "{why}");

    let billing = app.mint(Some(&cookie), "aud=billing").await.unwrap();
    assert_eq!(json_of(&split(&billing)[1])["aud"], "billing");
    let (status, why) = app.mint(Some(&cookie), "aud=payroll").await.unwrap_err();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(why.contains("audience"), "{why}");
}

async fn introspection_sees_a_revocation_that_the_offline_check_does_not<
    St: SessionStore + Clone,
>(
    store: St,
) {
    let (app, clock) = start(store).await;
    let api = Api::start(&app.jwks_url(), &clock, |b| b).await;
    let laptop = app.login("alice").await;
    let phone = app.login("alice").await;
    let token = app.mint(Some(&phone), "").await.unwrap();
    let sid = json_of(&split(&token)[1])["sid"].clone();

    let live = app.introspect(&token).await;
    assert_eq!(live["active"], true);
    assert_eq!(live["sub"], "alice");
    assert_eq!(live["sid"], sid);

    app.send(Method::POST, "/revoke-others", "", Some(&laptop))
        .await
        .unwrap();
    // The trade: the token is still good offline until its exp...
    assert_eq!(api.call(&token).await.claims()["sub"], "alice");
    // ...but the app knows its session is gone.
    assert_eq!(app.introspect(&token).await, json!({"active": false}));

    let laptop_token = app.mint(Some(&laptop), "").await.unwrap();
    assert_eq!(app.introspect(&laptop_token).await["active"], true);
    let mut tampered = laptop_token.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(app.introspect(&tampered).await["active"], false);
    assert_eq!(app.introspect("not a token").await["active"], false);

    clock.advance(Duration::from_secs(300));
    assert_eq!(
        app.introspect(&laptop_token).await,
        json!({"active": false}),
        "expired"
    );
}
