//! Fuzz-style: every single-bit flip, truncation and extension of a sealed value, and
//! random rewrites, is an anonymous request: never an error, never a panic.

use axum::http::StatusCode;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use session_layer::testing::MockClock;

use super::{builder, ring, send, Browser, Mode, CLIENT_MODES};

/// Mutations of `good`: its text and its decoded bytes, bit by bit, cut and extended.
fn mutations(mode: Mode, good: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let text = good.as_bytes();
    for i in 0..text.len() {
        for bit in 0..8 {
            let mut m = text.to_vec();
            m[i] ^= 1 << bit;
            out.push(m);
        }
    }
    // Flip bits below the base64, where they reach the cryptography.
    let reencoded: Vec<String> = match mode {
        Mode::Private => flip_all(&STANDARD.decode(good).unwrap())
            .iter()
            .map(|b| STANDARD.encode(b))
            .collect(),
        _ => {
            let (tag, payload) = good.split_at(44);
            let tags = flip_all(&STANDARD.decode(tag).unwrap())
                .into_iter()
                .map(|t| format!("{}{payload}", STANDARD.encode(t)));
            let payloads = flip_all(&URL_SAFE_NO_PAD.decode(payload).unwrap())
                .into_iter()
                .map(|p| format!("{tag}{}", URL_SAFE_NO_PAD.encode(p)));
            tags.chain(payloads).collect()
        }
    };
    out.extend(reencoded.into_iter().map(String::into_bytes));
    for len in 0..text.len() {
        out.push(text[..len].to_vec());
        out.push(text[len + 1..].to_vec());
    }
    for tail in ["A", "=", "==", "AAAA", "_-", good] {
        out.push(format!("{good}{tail}").into_bytes());
        out.push(format!("{tail}{good}").into_bytes());
    }
    out
}

fn flip_all(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut m = bytes.to_vec();
            m[i] ^= 1 << bit;
            out.push(m);
        }
    }
    out
}

/// The value a server reads from `name=<value>`: without trailing blanks and without one
/// pair of surrounding double quotes.
fn as_seen(mut value: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => value,
    }
}

/// A value a `Cookie` header can carry (no control bytes); others cannot be sent at all.
fn sendable(value: &[u8]) -> Option<String> {
    let ok = value.iter().all(|b| *b >= 0x20 && *b != 0x7f && *b != b';');
    ok.then(|| value.iter().map(|b| char::from(*b)).collect())
}

#[tokio::test]
async fn every_mutation_of_a_sealed_value_is_an_anonymous_request() {
    for mode in CLIENT_MODES {
        let mut browser = Browser::new(
            builder(mode, ring(&[1]), &MockClock::new())
                .build()
                .unwrap(),
        );
        browser.get("/count").await;
        browser.get("/login").await;
        let good = browser.cookie.clone().unwrap();
        assert_eq!(send(&browser.app, "/read", Some(&good)).await.body, "1");

        let mut sent = 0;
        for mutation in mutations(mode, &good) {
            let Some(value) = sendable(&mutation) else {
                continue;
            };
            if as_seen(value.as_bytes()) == good.as_bytes() {
                continue;
            }
            let reply = send_raw(&browser.app, &mutation).await;
            assert_eq!(reply.0, StatusCode::OK, "{mode:?}: {value:?}");
            assert_eq!(reply.1, "0", "{mode:?}: a mutation opened: {value:?}");
            sent += 1;
        }
        assert!(sent > 2000, "{mode:?}: only {sent} mutations sent");
    }
}

#[tokio::test]
async fn random_rewrites_of_a_sealed_value_are_anonymous_requests() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for mode in CLIENT_MODES {
        let mut browser = Browser::new(
            builder(mode, ring(&[1]), &MockClock::new())
                .build()
                .unwrap(),
        );
        browser.get("/count").await;
        let good = browser.cookie.clone().unwrap().into_bytes();
        const ALPHABET: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_";
        for _ in 0..2000 {
            let mut m = good.clone();
            for _ in 0..1 + next() % 8 {
                let i = (next() as usize) % m.len();
                m[i] = ALPHABET[(next() as usize) % ALPHABET.len()];
            }
            if m == good {
                continue;
            }
            let (status, body) = send_raw(&browser.app, &m).await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, "0"), "{mode:?}");
        }
    }
}

#[tokio::test]
async fn junk_of_every_shape_is_an_anonymous_request() {
    let browser = Browser::new(
        super::builder(Mode::Private, ring(&[1]), &MockClock::new())
            .build()
            .unwrap(),
    );
    let huge = "A".repeat(64 * 1024);
    let mut cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"*".to_vec(),
        b"../x".to_vec(),
        b"%00".to_vec(),
        b"' OR 1=1--".to_vec(),
        b"\"quoted\"".to_vec(),
        vec![0x80, 0xff, 0xfe],
        huge.into_bytes(),
    ];
    cases.push("A".repeat(4096).into_bytes());
    cases.push("AAAA".repeat(20).into_bytes());
    for case in cases {
        let (status, body) = send_raw(&browser.app, &case).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "0"));
    }
}

async fn send_raw(app: &axum::Router, value: &[u8]) -> (StatusCode, String) {
    use axum::body::Body;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let mut header = format!("{}=", super::NAME).into_bytes();
    header.extend_from_slice(value);
    let req = axum::http::Request::get("/read")
        .header(
            "cookie",
            axum::http::HeaderValue::from_bytes(&header).unwrap(),
        )
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Property test through the layer: sealed values cut, grown, spliced and rewritten at
/// random places, several changes at once, are anonymous requests answered 200.
#[test]
fn any_mutated_sealed_value_is_an_anonymous_request() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let edits = prop::collection::vec(
        (
            any::<usize>(),
            0..4u8,
            prop::sample::select(b"AZaz09+/=-_\"; ".to_vec()),
        ),
        1..6,
    );
    let mut total = 0;
    for mode in CLIENT_MODES {
        let (app, good) = runtime.block_on(async {
            let mut browser = Browser::new(
                builder(mode, ring(&[1]), &MockClock::new())
                    .build()
                    .unwrap(),
            );
            browser.get("/count").await;
            browser.get("/login").await;
            let good = browser.cookie.clone().unwrap();
            (browser.app, good)
        });
        let mut runner = TestRunner::new(Config {
            cases: 512,
            ..Config::default()
        });
        runner
            .run(&edits, |edits| {
                let mut value = good.clone().into_bytes();
                for (at, kind, byte) in edits {
                    let at = at % (value.len() + 1);
                    match kind {
                        0 if at < value.len() => value[at] = byte,
                        1 => value.insert(at, byte),
                        2 if at < value.len() => {
                            value.remove(at);
                        }
                        _ => value.truncate(at),
                    }
                }
                // Trailing blanks and surrounding quotes are not part of a cookie's value
                // (RFC 6265), so such an edit sends the untouched value.
                prop_assume!(as_seen(&value) != good.as_bytes());
                let Some(value) = sendable(&value) else {
                    return Ok(());
                };
                let (status, body) = runtime.block_on(send_raw(&app, value.as_bytes()));
                if (status, body.as_str()) != (StatusCode::OK, "0") {
                    return Err(TestCaseError::fail(format!(
                        "{mode:?}: a mutated value answered {status} {body}"
                    )));
                }
                Ok(())
            })
            .unwrap();
        total += 512;
    }
    println!("hostile: {total} mutated sealed cookies (property test), all anonymous");
}
