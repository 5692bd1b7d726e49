//! Every log line of a full token flow, at every level, captured with `tracing-subscriber`:
//! no private key, token, session cookie or sid secret appears in any of them.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use common::{join, split, Api, App, TestClock, AUDIENCE, COOKIE, COOLDOWN, ISSUER};
use reqwest::Method;
use session_layer::MemoryStore;
use session_layer_tokens::{SigningKey, TokenIssuer};

/// Where the subscriber writes: one shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The forms a careless log line would give a secret in.
fn forms(secret: &[u8]) -> Vec<String> {
    let mut out = vec![
        STANDARD.encode(secret),
        STANDARD_NO_PAD.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
        secret.iter().map(|b| format!("{b:02x}")).collect(),
        format!("{secret:?}"),
    ];
    if let Ok(text) = std::str::from_utf8(secret) {
        out.push(text.to_owned());
    }
    out
}

#[tokio::test]
async fn no_private_key_token_or_cookie_appears_in_any_log_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let mut secrets: Vec<(&str, Vec<u8>)> = Vec::new();
    let clock = TestClock::default();
    let key = SigningKey::generate().unwrap();
    let pem = key.to_pkcs8_pem().unwrap();
    let der = STANDARD
        .decode(
            pem.expose()
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();
    secrets.push(("private key PEM", pem.expose().as_bytes().to_vec()));
    secrets.push(("private key DER", der.clone()));
    secrets.push(("private key seed", der[der.len() - 32..].to_vec()));
    let sid_secret = *b"sid secret for the log test 0123";
    secrets.push(("sid secret", sid_secret.to_vec()));

    let issuer = TokenIssuer::builder(ISSUER, key.clone())
        .with_audience(AUDIENCE)
        .with_sid_secret(sid_secret)
        .with_clock(clock.clone())
        .build()
        .unwrap();
    tracing::info!(
        ?key,
        ?pem,
        ?issuer,
        "the issuer's parts, as Debug shows them"
    );
    let app = App::start(MemoryStore::default(), issuer, &clock).await;
    let api = Api::start(&app.jwks_url(), &clock, |b| b).await;

    let cookie = app.login("alice").await;
    secrets.push((
        "session cookie",
        cookie
            .trim_start_matches(&format!("{COOKIE}="))
            .as_bytes()
            .to_vec(),
    ));
    let mut tokens = vec![app.mint(Some(&cookie), "role=admin").await.unwrap()];
    assert_eq!(api.call(&tokens[0]).await.status, reqwest::StatusCode::OK);

    // Refusals of every kind.
    let mut parts = split(&tokens[0]);
    parts[2][0] ^= 1;
    let tampered = join(&parts);
    api.call(&tampered).await.assert_invalid_token();
    let mut parts = split(&tokens[0]);
    parts[0] = br#"{"alg":"none"}"#.to_vec();
    api.call(&join(&parts)).await.assert_invalid_token();
    tokens.push(tampered);

    // A rotation, with the API refetching for the new key, then a failing endpoint.
    let next = SigningKey::generate().unwrap();
    let next_pem = next.to_pkcs8_pem().unwrap();
    secrets.push(("next key PEM", next_pem.expose().as_bytes().to_vec()));
    app.issuer.publish_next(next).unwrap();
    clock.advance(COOLDOWN);
    app.issuer.rotate_now().unwrap();
    tokens.push(app.mint(Some(&cookie), "").await.unwrap());
    assert_eq!(api.call(&tokens[2]).await.status, reqwest::StatusCode::OK);
    app.jwks_down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    clock.advance(Duration::from_secs(300));
    tokens.push(app.mint(Some(&cookie), "").await.unwrap());
    assert_eq!(api.call(&tokens[3]).await.status, reqwest::StatusCode::OK);
    let _ = app.introspect(&tokens[3]).await;
    clock.advance(Duration::from_secs(300 + 900 + 60));
    app.issuer.prune();
    api.call(&tokens[3]).await.assert_invalid_token();
    app.send(Method::POST, "/logout-then-mint", "", Some(&cookie))
        .await
        .unwrap_err();

    for token in &tokens {
        secrets.push(("token", token.as_bytes().to_vec()));
        for (i, part) in token.split('.').enumerate() {
            secrets.push((
                ["token header", "token payload", "token signature"][i],
                part.as_bytes().to_vec(),
            ));
        }
    }

    let logs = captured.text();
    for expected in [
        "minted a session token",
        "no session token minted",
        "request refused: bearer token",
        "refetched the token key set",
        "refetching the token key set failed",
        "rotated the token signing key",
        "removed retired token signing keys",
        "REDACTED",
    ] {
        assert!(
            logs.contains(expected),
            "nothing logged {expected:?}: the capture is broken"
        );
    }
    for (kind, secret) in &secrets {
        // The header names only the algorithm, the key ID and the type: not a secret.
        if *kind == "token header" {
            continue;
        }
        for form in forms(secret) {
            if form.len() >= 12 {
                assert!(!logs.contains(&form), "a {kind} appears in the logs");
            }
        }
    }
}
