//! Configuration refused early, keys loaded from PEM, state restored after a restart, and
//! secrets kept out of `Debug` and errors.

use std::time::Duration;

use session_layer_tokens::{ConfigError, KeyError, KeyState, SigningKey, TokenIssuer};
use session_layer_verify::{BuildError, Verifier};

/// The Ed25519 key of RFC 8037, appendix A.1, as PKCS#8 PEM.
const RFC8037_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g
-----END PRIVATE KEY-----
";
/// Its seed (`d`) and public key (`x`), base64url, as the RFC gives them.
const RFC8037_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
/// Its RFC 7638 thumbprint (RFC 8037, appendix A.3).
const RFC8037_THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

fn builder() -> session_layer_tokens::TokenIssuerBuilder {
    TokenIssuer::builder("https://app.test", SigningKey::generate().unwrap())
        .with_audience("api")
        .with_sid_secret([9u8; 32])
}

#[test]
fn issuer_settings_that_cannot_work_are_refused_at_build() {
    assert_eq!(
        TokenIssuer::builder("https://app.test", SigningKey::generate().unwrap())
            .with_sid_secret([9u8; 32])
            .build()
            .unwrap_err(),
        ConfigError::NoAudience
    );
    assert_eq!(
        TokenIssuer::builder("", SigningKey::generate().unwrap())
            .with_audience("api")
            .with_sid_secret([9u8; 32])
            .build()
            .unwrap_err(),
        ConfigError::NoIssuer
    );
    assert_eq!(
        builder()
            .with_lifetime(Duration::from_secs(901))
            .build()
            .unwrap_err(),
        ConfigError::BadLifetime,
        "the default lifetime may not pass the maximum"
    );
    assert_eq!(
        builder().with_lifetime(Duration::ZERO).build().unwrap_err(),
        ConfigError::BadLifetime
    );
    assert_eq!(
        builder()
            .with_max_lifetime(Duration::from_secs(60))
            .build()
            .unwrap_err(),
        ConfigError::BadLifetime,
        "a maximum below the 5-minute default needs a shorter default too"
    );
    assert_eq!(
        builder().with_sid_secret([9u8; 31]).build().unwrap_err(),
        ConfigError::SidSecret
    );
    let issuer = builder()
        .with_lifetime(Duration::from_secs(60))
        .with_max_lifetime(Duration::from_secs(120))
        .build()
        .unwrap();
    assert_eq!(issuer.lifetime(), Duration::from_secs(60));
    assert_eq!(issuer.max_lifetime(), Duration::from_secs(120));
}

#[test]
fn a_pkcs8_pem_key_loads_with_its_thumbprint_as_kid() {
    let key = SigningKey::from_pkcs8_pem(RFC8037_PEM).unwrap();
    assert_eq!(key.kid(), RFC8037_THUMBPRINT);
    let jwk = serde_json::to_value(key.public_jwk()).unwrap();
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert_eq!(jwk["x"], RFC8037_X);
    assert_eq!(jwk["alg"], "EdDSA");
    assert_eq!(jwk["use"], "sig");
    assert!(
        jwk.get("d").is_none(),
        "the published key has no private part"
    );

    let pem = key.to_pkcs8_pem().unwrap();
    assert_eq!(
        SigningKey::from_pkcs8_pem(pem.expose()).unwrap().kid(),
        key.kid(),
        "a key kept as PEM comes back the same"
    );
    let renamed = key.clone().with_kid("2025-01").unwrap();
    assert_eq!(renamed.kid(), "2025-01");
    assert_eq!(key.clone().with_kid("").unwrap_err(), KeyError::BadKid);

    for bad in [
        "",
        "not a key",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        // A public key is not a private key.
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n",
    ] {
        let error = SigningKey::from_pkcs8_pem(bad).unwrap_err();
        assert_eq!(error, KeyError::Pem);
    }
    let error = SigningKey::from_pkcs8_pem(&RFC8037_PEM.replace('M', "m")).unwrap_err();
    assert!(
        !error.to_string().contains("MC4C"),
        "the error quotes no key"
    );
}

#[test]
fn private_keys_stay_out_of_debug_and_errors() {
    let key = SigningKey::from_pkcs8_pem(RFC8037_PEM).unwrap();
    let pem = key.to_pkcs8_pem().unwrap();
    let issuer = TokenIssuer::builder("https://app.test", key.clone())
        .with_audience("api")
        .with_sid_secret(*b"the sid secret, thirty-two bytes")
        .build()
        .unwrap();
    let shown = format!(
        "{key:?} {key:#?} {pem:?} {issuer:?} {issuer:#?} {:?}",
        builder()
    );
    assert!(shown.contains("REDACTED"));
    let seed = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, RFC8037_D)
        .unwrap();
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    for secret in [
        RFC8037_D,
        "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v",
        "nWGxne",
        hex.as_str(),
        "the sid secret",
    ] {
        assert!(!shown.contains(secret), "Debug shows a secret");
    }
}

#[test]
fn keys_and_their_states_are_restored_after_a_restart() {
    let (current, next, retired) = (
        SigningKey::generate().unwrap(),
        SigningKey::generate().unwrap(),
        SigningKey::generate().unwrap(),
    );
    let retired_at = time::OffsetDateTime::now_utc() - time::Duration::minutes(3);
    let issuer = TokenIssuer::builder("https://app.test", current.clone())
        .with_audience("api")
        .with_sid_secret([9u8; 32])
        .with_next_key(next.clone())
        .with_retired_key(retired.clone(), retired_at)
        .build()
        .unwrap();
    let keys = issuer.keys();
    let state_of = |kid: &str| keys.iter().find(|k| k.kid == kid).unwrap().clone();
    assert_eq!(state_of(current.kid()).state, KeyState::Current);
    assert_eq!(state_of(next.kid()).state, KeyState::Next);
    let old = state_of(retired.kid());
    assert_eq!(old.state, KeyState::Retired);
    assert_eq!(
        old.ready_at,
        Some(retired_at + Duration::from_secs(900 + 300 + 60)),
        "removable once its tokens and every cached copy of the set are gone"
    );
    assert_eq!(issuer.jwks().keys.len(), 3);
    assert!(issuer.prune().is_empty());

    let clash = TokenIssuer::builder("https://app.test", current.clone())
        .with_audience("api")
        .with_sid_secret([9u8; 32])
        .with_next_key(current)
        .build()
        .unwrap_err();
    assert_eq!(clash, ConfigError::Key(KeyError::DuplicateKid));
}

#[tokio::test]
async fn verifier_settings_that_cannot_work_are_refused_at_build() {
    let jwks = format!(
        r#"{{"keys": [{{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "{RFC8037_X}"}}]}}"#
    );
    let err = Verifier::builder("https://app.test")
        .static_keys(jwks.clone())
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::NoAudience), "{err}");
    let err = Verifier::builder("")
        .with_audience("api")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::NoIssuer), "{err}");
    let err = Verifier::builder("https://app.test")
        .with_audience("api")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::NoKeySource), "{err}");
    let err = Verifier::builder("https://app.test")
        .with_audience("api")
        .jwks_url("file:///etc/passwd")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::BadUrl), "{err}");
    let err = Verifier::builder("https://app.test")
        .with_audience("api")
        .static_keys(r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}"#)
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(err, BuildError::StaticKeys(_)),
        "an HMAC key is never usable"
    );

    // Nothing listens on a port just closed: the first fetch fails, and says so.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = Verifier::builder("https://app.test")
        .with_audience("api")
        .jwks_url(format!("http://127.0.0.1:{port}/.well-known/jwks.json"))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::Fetch(_)), "{err}");
    assert!(err.to_string().contains("first fetch"), "{err}");

    Verifier::builder("https://app.test")
        .with_audience("api")
        .static_keys(jwks)
        .build()
        .await
        .expect("a static Ed25519 key set");
}
