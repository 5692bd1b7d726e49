//! The key ring: the first key seals, every key opens, old-key cookies are resealed, removed
//! keys' cookies are rejected; bad keys are refused at start-up.

use session_layer::testing::MockClock;
use session_layer::{ClientSide, KeyRing, SessionLayer};

use super::{builder, key, ring, send, Browser, Mode, CLIENT_MODES};

fn layer(mode: Mode, seeds: &[u8], clock: &MockClock) -> SessionLayer {
    builder(mode, ring(seeds), clock).build().unwrap()
}

#[tokio::test]
async fn an_old_keys_cookie_opens_and_is_resealed_with_the_new_key_in_the_same_response() {
    for mode in CLIENT_MODES {
        let clock = MockClock::new();
        let mut before = Browser::new(layer(mode, &[1], &clock));
        before.get("/count").await;
        let old = before.cookie.clone().unwrap();

        // Key 2 is new and seals; key 1 still opens.
        let rotated = super::app(layer(mode, &[2, 1], &clock));
        let reply = send(&rotated, "/read", Some(&old)).await;
        assert_eq!(
            reply.body, "1",
            "{mode:?}: the old key's cookie did not open"
        );
        let resealed = reply
            .cookie_value()
            .expect("resealed in the same response")
            .to_owned();
        assert_ne!(resealed, old);

        // Key 1 removed: the resealed cookie opens, the old one is rejected.
        let after = super::app(layer(mode, &[2], &clock));
        assert_eq!(
            send(&after, "/read", Some(&resealed)).await.body,
            "1",
            "{mode:?}"
        );
        let reply = send(&after, "/read", Some(&old)).await;
        assert_eq!(reply.body, "0", "{mode:?}: a removed key's cookie opened");
        assert!(reply.removes_cookie());
    }
}

#[tokio::test]
async fn only_the_first_key_seals() {
    for mode in CLIENT_MODES {
        let clock = MockClock::new();
        let mut browser = Browser::new(layer(mode, &[2, 1], &clock));
        browser.get("/count").await;
        let value = browser.cookie.clone().unwrap();
        let only_first = super::app(layer(mode, &[2], &clock));
        let only_second = super::app(layer(mode, &[1], &clock));
        assert_eq!(
            send(&only_first, "/read", Some(&value)).await.body,
            "1",
            "{mode:?}"
        );
        assert_eq!(
            send(&only_second, "/read", Some(&value)).await.body,
            "0",
            "{mode:?}"
        );
    }
}

#[tokio::test]
async fn a_cookie_of_the_first_key_is_not_resealed_by_a_read() {
    for mode in CLIENT_MODES {
        let mut browser = Browser::new(layer(mode, &[2, 1], &MockClock::new()));
        browser.get("/count").await;
        let reply = browser.get("/read").await;
        assert!(reply.set_cookies.is_empty(), "{mode:?}: {reply:?}");
    }
}

#[tokio::test]
async fn a_value_sealed_for_another_purpose_or_cookie_name_does_not_open() {
    let clock = MockClock::new();
    let shop = || ClientSide::new(ring(&[1])).with_purpose("shop");
    let mut browser = Browser::new(
        SessionLayer::client_side_builder(shop())
            .with_clock(clock.clone())
            .build()
            .unwrap(),
    );
    browser.get("/count").await;
    let value = browser.cookie.clone().unwrap();

    let blog = SessionLayer::client_side_builder(ClientSide::new(ring(&[1])).with_purpose("blog"))
        .with_clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(
        send(&super::app(blog), "/read", Some(&value)).await.body,
        "0"
    );

    // Same keys and purpose, another cookie name: the value is presented under that name.
    let renamed = SessionLayer::client_side_builder(shop())
        .with_cookie_name("__Host-other")
        .with_clock(clock.clone())
        .build()
        .unwrap();
    let res = {
        use axum::body::Body;
        use tower::ServiceExt as _;
        let req = axum::http::Request::get("/read")
            .header("cookie", format!("__Host-other={value}"))
            .body(Body::empty())
            .unwrap();
        super::app(renamed).oneshot(req).await.unwrap()
    };
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"0");

    let same = SessionLayer::client_side_builder(shop())
        .with_clock(clock)
        .build()
        .unwrap();
    assert_eq!(
        send(&super::app(same), "/read", Some(&value)).await.body,
        "1"
    );
}

#[test]
fn missing_short_all_zero_and_repeated_keys_are_refused() {
    let refused = [
        ("no key", KeyRing::new(Vec::<Vec<u8>>::new())),
        ("63 bytes", KeyRing::new([&key(1)[..63]])),
        ("all zero", KeyRing::new([[0u8; 64]])),
        ("one byte repeated", KeyRing::new([[0xA5u8; 128]])),
        ("short second key", KeyRing::new([key(1), vec![1, 2, 3]])),
        ("a key twice", KeyRing::new([key(1), key(2), key(1)])),
        ("17 keys", KeyRing::new((0..17).map(key))),
        ("not base64", KeyRing::from_base64(["not base64 at all!"])),
        ("short base64", KeyRing::from_base64(["c2hvcnQ="])),
        ("empty base64", KeyRing::from_base64([""])),
    ];
    for (what, result) in refused {
        let err = result.expect_err(what).to_string();
        assert!(err.contains("client-side session keys"), "{what}: {err}");
    }
    assert!(KeyRing::new([key(1), key(2)]).is_ok());
}

#[test]
fn error_messages_and_debug_output_never_show_a_key() {
    use base64::Engine as _;
    let material = key(1);
    let text = base64::engine::general_purpose::STANDARD.encode(&material);
    let err = KeyRing::from_base64([format!("{text}!")])
        .unwrap_err()
        .to_string();
    assert!(!err.contains(&text[..16]), "{err}");
    let ring = KeyRing::from_base64([&text]).unwrap();
    let shown = format!(
        "{ring:?} {:?} {:?}",
        ClientSide::new(ring.clone()),
        SessionLayer::client_side(ring.clone())
    );
    assert!(!shown.contains(&text[..16]), "{shown}");
    assert!(
        !shown.contains(&format!("{:?}", &material[..4])[1..8]),
        "{shown}"
    );
}

#[test]
fn the_builders_cookie_checks_still_run_in_client_side_mode() {
    let build =
        |f: fn(session_layer::SessionLayerBuilder) -> session_layer::SessionLayerBuilder| {
            f(SessionLayer::client_side_builder(ring(&[1]))).build()
        };
    assert!(build(|b| b.with_domain("example.com")).is_err());
    assert!(build(|b| b.with_secure(false)).is_err());
    assert!(build(|b| b.with_touch_step(super::minutes(120))).is_err());
    assert!(build(|b| b.with_cookie_name("bad name")).is_err());
    let err = build(|b| b.with_cookie_name("x".repeat(3900))).unwrap_err();
    assert!(err.to_string().contains("short name"), "{err}");
    let err = SessionLayer::client_side_builder(ClientSide::new(ring(&[1])).with_purpose(""))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("purpose"), "{err}");
    assert!(build(|b| b.with_plain_http_for_development()).is_ok());
}

/// `n` bytes from the operating system's CSPRNG, as `openssl rand` gives them.
fn random_bytes(n: usize) -> Vec<u8> {
    use rand::TryRngCore as _;
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).unwrap();
    bytes
}

#[test]
fn passphrases_and_long_runs_are_refused_pointing_at_openssl() {
    use base64::Engine as _;
    let base64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let passphrase = "correct horse battery staple, and then some more words to pad it";
    assert_eq!(passphrase.len(), 64);
    // Printable ASCII drawn at random is still text, not 64 random bytes.
    let printable: Vec<u8> = random_bytes(64).iter().map(|b| b' ' + b % 95).collect();
    let mut run = random_bytes(64);
    run[20..28].fill(0);
    let mut long_run = random_bytes(128);
    long_run[64..96].fill(0xFF);
    let few_values: Vec<u8> = random_bytes(64).iter().map(|b| b % 4).collect();
    let refused = [
        ("a passphrase", KeyRing::new([passphrase])),
        ("random printable ASCII", KeyRing::new([&printable])),
        (
            "a key still in base64",
            KeyRing::new([base64(&random_bytes(64))]),
        ),
        (
            "a base64-encoded passphrase",
            KeyRing::from_base64([base64(passphrase.as_bytes())]),
        ),
        ("eight zero bytes in a row", KeyRing::new([&run])),
        ("a run of 32", KeyRing::new([&long_run])),
        ("four byte values", KeyRing::new([&few_values])),
        (
            "a passphrase as the second key",
            KeyRing::new([random_bytes(64), passphrase.as_bytes().to_vec()]),
        ),
    ];
    for (what, result) in refused {
        let err = result.expect_err(what).to_string();
        assert!(
            err.contains("openssl rand -base64 64") && err.contains("not random"),
            "{what}: {err}"
        );
        assert!(
            !err.contains("horse"),
            "{what}: the message quotes the key: {err}"
        );
    }
    let err = KeyRing::new([random_bytes(64), passphrase.as_bytes().to_vec()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("key 2"), "{err}");
}

#[test]
fn many_generated_random_keys_are_accepted() {
    use base64::Engine as _;
    for _ in 0..100_000 {
        let key = random_bytes(64);
        if let Err(err) = KeyRing::new([&key]) {
            panic!("a random 64-byte key was refused: {err}");
        }
    }
    for len in [65, 96, 128, 1024] {
        for _ in 0..1_000 {
            let text = base64::engine::general_purpose::STANDARD.encode(random_bytes(len));
            if let Err(err) = KeyRing::from_base64([&text]) {
                panic!("a random {len}-byte key was refused: {err}");
            }
        }
    }
    // The ring a test or a development server generates passes the same checks.
    for _ in 0..1_000 {
        let _ = SessionLayer::client_side(KeyRing::generate());
    }
}
