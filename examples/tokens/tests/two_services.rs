//! The example's two services on loopback, as `tokens-app` and `tokens-api` run them: a
//! token the app mints is accepted by the API; a tampered one is refused.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use session_layer_example_tokens::api::{api, verifier};
use session_layer_example_tokens::app::{app, AppSettings};
use session_layer_example_tokens::users::Users;

async fn serve(listener: tokio::net::TcpListener, router: axum::Router) {
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
}

#[tokio::test]
async fn token_minted_by_the_app_is_accepted_by_the_api_and_a_tampered_one_refused() {
    let app_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_url = format!("http://{}", app_listener.local_addr().unwrap());
    let settings = AppSettings::generated(app_url.clone()).unwrap();
    serve(app_listener, app(settings, Users::demo()).unwrap()).await;

    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}", api_listener.local_addr().unwrap());
    let jwks_url = format!("{app_url}/.well-known/jwks.json");
    let verifier = verifier(&app_url, &jwks_url, Duration::from_secs(10))
        .await
        .expect("the API fetches the app's keys");
    serve(api_listener, api(verifier)).await;

    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let service = reqwest::Client::new();
    let whoami = |token: String| {
        service
            .get(format!("{api_url}/whoami"))
            .bearer_auth(token)
            .send()
    };

    let refused = browser
        .post(format!("{app_url}/login"))
        .form(&[("user", "alice"), ("password", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        browser
            .get(format!("{app_url}/token"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED,
        "no token before signing in"
    );

    let signed_in = browser
        .post(format!("{app_url}/login"))
        .form(&[("user", "alice"), ("password", "alice-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::OK);
    let minted: Value = browser
        .get(format!("{app_url}/token"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = minted["token"].as_str().unwrap().to_owned();

    let res = whoami(token.clone()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["user"], "alice");
    assert_eq!(me["expires_at"], minted["expires_at"]);

    // One character of the payload changed: the signature no longer matches.
    let (header, rest) = token.split_once('.').unwrap();
    let mut payload: Vec<u8> = rest.split('.').next().unwrap().bytes().collect();
    payload[5] = if payload[5] == b'A' { b'B' } else { b'A' };
    let signature = rest.split('.').nth(1).unwrap();
    let tampered = format!(
        "{header}.{}.{signature}",
        String::from_utf8(payload).unwrap()
    );
    let res = whoami(tampered).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );

    let res = service
        .get(format!("{api_url}/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "no token at all");

    // Signing out stops minting; the token already minted lives until its exp.
    browser
        .post(format!("{app_url}/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        browser
            .get(format!("{app_url}/token"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        whoami(token.clone()).await.unwrap().status(),
        StatusCode::OK
    );
    let active: Value = service
        .post(format!("{app_url}/oauth/introspect"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(active["active"], false, "introspection sees the sign-out");
}
