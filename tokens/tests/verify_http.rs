//! The API's side over HTTP: what it accepts and everything it refuses, each a `401` with
//! `WWW-Authenticate: Bearer error="invalid_token"`.

mod common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{issuer_builder, join, json_of, split, Api, App, TestClock, AUDIENCE, ISSUER};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};
use session_layer::MemoryStore;
use session_layer_tokens::TokenIssuer;

/// An app with alice signed in, an API on the same clock, and a token of alice's.
async fn setup() -> (App, Api, TestClock, String) {
    let clock = TestClock::default();
    let issuer = issuer_builder(&clock).build().unwrap();
    let app = App::start(MemoryStore::default(), issuer, &clock).await;
    let api = Api::start(&app.jwks_url(), &clock, |b| b).await;
    let cookie = app.login("alice").await;
    let token = app.mint(Some(&cookie), "").await.unwrap();
    (app, api, clock, token)
}

#[tokio::test]
async fn token_verifies_through_the_layer_and_the_extractor() {
    let (app, api, clock, token) = setup().await;
    for path in ["/me", "/ext/me"] {
        let answer = api.get(path, Some(&format!("Bearer {token}"))).await;
        let claims = answer.claims();
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["aud"], json!([AUDIENCE, "billing"]));
        assert_eq!(claims["exp"], clock.unix() + 300);
    }
    // The scheme is case-insensitive (RFC 6750 follows RFC 7235).
    assert_eq!(
        api.get("/me", Some(&format!("bearer {token}")))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(app.hits(), 1, "one fetch, at the API's start");
}

#[tokio::test]
async fn expired_token_is_refused_past_its_exp_and_the_leeway() {
    let (_app, api, clock, token) = setup().await;
    clock.advance(Duration::from_secs(300 + 9));
    assert_eq!(
        api.call(&token).await.status,
        StatusCode::OK,
        "within 10 s of leeway"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        api.call(&token).await.assert_invalid_token(),
        "token expired"
    );
}

#[tokio::test]
async fn token_is_refused_before_its_nbf() {
    // The API's clock runs a minute behind the app's.
    let app_clock = TestClock::default();
    let api_clock = TestClock(session_layer::testing::MockClock::new());
    app_clock.advance(Duration::from_secs(60));
    let issuer = issuer_builder(&app_clock).build().unwrap();
    let app = App::start(MemoryStore::default(), issuer, &app_clock).await;
    let api = Api::start(&app.jwks_url(), &api_clock, |b| b).await;
    let cookie = app.login("alice").await;
    let token = app.mint(Some(&cookie), "").await.unwrap();
    assert_eq!(
        api.call(&token).await.assert_invalid_token(),
        "token not yet valid"
    );
    api_clock.advance(Duration::from_secs(49));
    assert_eq!(
        api.call(&token).await.assert_invalid_token(),
        "token not yet valid"
    );
    api_clock.advance(Duration::from_secs(1));
    assert_eq!(
        api.call(&token).await.status,
        StatusCode::OK,
        "within 10 s of leeway"
    );
}

#[tokio::test]
async fn token_for_another_audience_is_refused() {
    let (app, api, _clock, _) = setup().await;
    let cookie = app.login("alice").await;
    let billing = app.mint(Some(&cookie), "aud=billing").await.unwrap();
    assert_eq!(
        api.call(&billing).await.assert_invalid_token(),
        "wrong audience"
    );
    let both = app.mint(Some(&cookie), "").await.unwrap();
    assert_eq!(api.call(&both).await.status, StatusCode::OK);
}

#[tokio::test]
async fn token_from_another_issuer_is_refused_even_under_a_trusted_key() {
    let clock = TestClock::default();
    let key = session_layer_tokens::SigningKey::generate().unwrap();
    let trusted = TokenIssuer::builder(ISSUER, key.clone())
        .with_audience(AUDIENCE)
        .with_sid_secret([1u8; 32])
        .with_clock(clock.clone())
        .build()
        .unwrap();
    // Another app that (wrongly) shares the key, under its own name.
    let other = TokenIssuer::builder("https://other.test", key)
        .with_audience(AUDIENCE)
        .with_sid_secret([1u8; 32])
        .with_clock(clock.clone())
        .build()
        .unwrap();
    let app = App::start(MemoryStore::default(), trusted, &clock).await;
    let other_app = App::start(MemoryStore::default(), other, &clock).await;
    let api = Api::start(&app.jwks_url(), &clock, |b| b).await;
    let cookie = other_app.login("alice").await;
    let token = other_app.mint(Some(&cookie), "").await.unwrap();
    assert_eq!(
        api.call(&token).await.assert_invalid_token(),
        "wrong issuer"
    );
}

#[tokio::test]
async fn every_single_bit_flip_of_header_payload_and_signature_is_refused() {
    let (_app, api, _clock, token) = setup().await;
    let parts = split(&token);
    let mut tried = 0;
    for segment in 0..3 {
        for byte in 0..parts[segment].len() {
            for bit in 0..8 {
                let mut flipped = parts.clone();
                flipped[segment][byte] ^= 1 << bit;
                let answer = api.call(&join(&flipped)).await;
                answer.assert_invalid_token();
                tried += 1;
            }
        }
    }
    let bytes: usize = parts.iter().map(Vec::len).sum();
    assert_eq!(tried, bytes * 8);
    assert!(tried > 2_000, "{tried} flips");
    assert_eq!(
        api.call(&token).await.status,
        StatusCode::OK,
        "the original still verifies"
    );
}

/// `token` with its header replaced by `header` (JSON), keeping payload and signature.
fn with_header(token: &str, header: &Value) -> String {
    let mut parts = split(token);
    parts[0] = serde_json::to_vec(header).unwrap();
    join(&parts)
}

#[tokio::test]
async fn alg_none_is_refused() {
    let (_app, api, _clock, token) = setup().await;
    let kid = json_of(&split(&token)[0])["kid"].clone();
    let payload = token.split('.').nth(1).unwrap();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
        let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
        let unsigned = format!("{header}.{payload}.");
        assert_eq!(
            api.call(&unsigned).await.assert_invalid_token(),
            "algorithm not allowed"
        );
        let signed = format!("{header}.{payload}.{}", token.split('.').nth(2).unwrap());
        assert_eq!(
            api.call(&signed).await.assert_invalid_token(),
            "algorithm not allowed"
        );
    }
}

#[tokio::test]
async fn hs256_token_signed_with_the_public_key_is_refused() {
    let (app, api, _clock, token) = setup().await;
    let claims: Value = serde_json::from_slice(&split(&token)[1]).unwrap();
    let jwk = app.issuer.jwks().keys[0].clone();
    let kid = jwk.common.key_id.clone().unwrap();
    let x = match &jwk.algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(okp) => okp.x.clone(),
        _ => unreachable!("an Ed25519 key"),
    };
    // Every form a confused verifier might feed HMAC as the "secret".
    let secrets = [
        URL_SAFE_NO_PAD.decode(&x).unwrap(),
        x.clone().into_bytes(),
        serde_json::to_vec(&jwk).unwrap(),
    ];
    for secret in secrets {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some(kid.clone());
            let forged = jsonwebtoken::encode(
                &header,
                &claims,
                &EncodingKey::from_secret(&secret).unwrap(),
            )
            .unwrap();
            assert_eq!(
                api.call(&forged).await.assert_invalid_token(),
                "algorithm not allowed"
            );
        }
    }
}

#[tokio::test]
async fn every_other_algorithm_is_refused() {
    let (_app, api, _clock, token) = setup().await;
    let header = json_of(&split(&token)[0]);
    for alg in [
        "ES256", "ES384", "RS256", "PS256", "HS256", "EdDSA ", "eddsa", "Ed25519", "",
    ] {
        let mut h = header.clone();
        h.insert("alg".into(), json!(alg));
        let answer = api.call(&with_header(&token, &Value::Object(h))).await;
        answer.assert_invalid_token();
    }
    let mut h = header.clone();
    h.remove("alg");
    api.call(&with_header(&token, &Value::Object(h)))
        .await
        .assert_invalid_token();
}

#[tokio::test]
async fn missing_or_malformed_authorization_is_a_401_with_a_bearer_challenge() {
    let (_app, api, _clock, token) = setup().await;
    // No token at all: a bare challenge, no error code (RFC 6750, 3.1).
    for authorization in [
        None,
        Some("Basic YWxpY2U6cGFzc3dvcmQ="),
        Some("Token abc"),
        Some("Bearer"),
        Some("Bearer "),
    ] {
        let answer = api.get("/me", authorization).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.www_authenticate.as_deref(), Some("Bearer"));
    }
    let long = "a".repeat(10_000);
    let cases = [
        "Bearer garbage".to_owned(),
        "Bearer a.b.c".to_owned(),
        "Bearer ..".to_owned(),
        format!("Bearer {long}.{long}.{long}"),
        format!("Bearer {}", token.rsplit_once('.').unwrap().0),
        format!("Bearer {token}.extra"),
        format!("Bearer {token} {token}"),
    ];
    for authorization in &cases {
        api.get("/me", Some(authorization))
            .await
            .assert_invalid_token();
        api.get("/ext/me", Some(authorization))
            .await
            .assert_invalid_token();
    }
    // Bytes that are not text.
    let res = api
        .client
        .get(format!("{}/me", api.url))
        .header(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}
