//! Sealing internals, and the one response and log line every rejected cookie gets.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use http::header::{COOKIE, SET_COOKIE, VARY};
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::json;
use time::{Duration, OffsetDateTime};
use tower::ServiceExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

use super::seal::{Mode, Nonce, Sealer, MAX_COOKIE_BYTES};
use super::{fuzz_unseal, ClientSide, KeyRing};
use crate::record::Record;
use crate::{Session, SessionError, SessionLayer, DEFAULT_COOKIE_NAME};

/// A test key: distinct bytes across the whole range, so not text, as a ring requires.
fn key(seed: u8) -> Vec<u8> {
    (0..64u8)
        .map(|i| seed.wrapping_mul(31).wrapping_add(i.wrapping_mul(7)))
        .collect()
}

fn ring() -> KeyRing {
    KeyRing::new([key(1), key(2)]).unwrap()
}

fn sealer(mode: Mode, purpose: &str, name: &str) -> Sealer {
    Sealer::new(
        mode,
        ring().derive(mode.label(), purpose, name),
        name.to_owned(),
    )
}

fn record() -> Record {
    let now = crate::clock::to_millis(OffsetDateTime::now_utc());
    let mut r = Record::new(now, now + Duration::hours(1), now + Duration::days(1));
    r.data_mut().insert("visits".into(), json!(3));
    r.meta.user = Some("alice".into());
    r
}

const MODES: [Mode; 2] = [Mode::Private, Mode::Signed];

#[test]
fn sealed_values_open_to_the_same_record() {
    for mode in MODES {
        let s = sealer(mode, "app", DEFAULT_COOKIE_NAME);
        let nonce = Nonce::generate();
        let sealed = record();
        let value = s.seal(&sealed, &nonce).unwrap();
        assert!(
            s.has_shape(value.as_bytes()),
            "{mode:?}: own value has a bad shape"
        );
        let opened = s.open(&value).expect("opens");
        assert_eq!(opened.record, sealed);
        assert_eq!(opened.nonce, nonce);
        assert!(!opened.old_key);
    }
}

#[test]
fn floats_in_a_sealed_cookie_come_back_bit_for_bit() {
    let floats = json!([1.2345678901234547e31, 1.2345678345678901e25, 0.1, 5e-324]);
    for mode in MODES {
        let s = sealer(mode, "app", DEFAULT_COOKIE_NAME);
        let mut sealed = record();
        sealed.data_mut().insert("floats".into(), floats.clone());
        let value = s.seal(&sealed, &Nonce::generate()).unwrap();
        assert_eq!(s.open(&value).unwrap().record.data()["floats"], floats);
    }
}

#[test]
fn the_size_estimate_is_exact() {
    for mode in MODES {
        let s = sealer(mode, "app", DEFAULT_COOKIE_NAME);
        let mut r = record();
        for n in 0..200 {
            r.data_mut()
                .insert(format!("k{n}"), json!("é\"\\\u{1}".repeat(n % 7)));
            let value = s.seal(&r, &Nonce::generate()).unwrap();
            assert_eq!(
                s.cookie_len(&r),
                DEFAULT_COOKIE_NAME.len() + value.len(),
                "{mode:?} after {n} keys"
            );
            if s.cookie_len(&r) > MAX_COOKIE_BYTES - 300 {
                break;
            }
        }
    }
}

#[test]
fn a_cookie_over_the_budget_is_never_sealed() {
    for mode in MODES {
        let s = sealer(mode, "app", DEFAULT_COOKIE_NAME);
        let mut r = record();
        r.data_mut().insert("big".into(), json!("x".repeat(4000)));
        let err = s.seal(&r, &Nonce::generate()).unwrap_err();
        assert!(err > MAX_COOKIE_BYTES);
        assert_eq!(err, s.cookie_len(&r));
    }
}

#[test]
fn shapes_other_than_a_sealed_value_are_refused_before_any_cryptography() {
    for mode in MODES {
        let s = sealer(mode, "app", DEFAULT_COOKIE_NAME);
        let good = s.seal(&record(), &Nonce::generate()).unwrap();
        let too_long = "A".repeat(MAX_COOKIE_BYTES);
        for bad in [
            "",
            "a",
            "*",
            "../x",
            "%00",
            "' OR 1=1--",
            &too_long,
            &format!("{good} "),
            &format!("{good}\""),
            &good.replace(|c: char| c.is_ascii_digit(), "."),
        ] {
            assert!(
                !s.has_shape(bad.as_bytes()),
                "{mode:?}: {bad:?} passed the shape check"
            );
        }
    }
}

#[test]
fn a_value_sealed_for_another_purpose_name_or_mode_does_not_open() {
    let base = sealer(Mode::Private, "app", "__Host-a");
    let value = base.seal(&record(), &Nonce::generate()).unwrap();
    assert!(base.open(&value).is_some());
    for other in [
        sealer(Mode::Private, "other-app", "__Host-a"),
        sealer(Mode::Private, "app", "__Host-b"),
        sealer(Mode::Signed, "app", "__Host-a"),
    ] {
        assert!(other.open(&value).is_none(), "{other:?} opened it");
    }
    let signed = sealer(Mode::Signed, "app", "__Host-a");
    let value = signed.seal(&record(), &Nonce::generate()).unwrap();
    assert!(sealer(Mode::Signed, "app", "__Host-b")
        .open(&value)
        .is_none());
    assert!(sealer(Mode::Signed, "x", "__Host-a").open(&value).is_none());
}

/// One session in the payload format this crate writes (5: times after the first as
/// differences, the sign-in time, the idle timeout of its own (empty: none), the owner only
/// when there is one) and in the ones it wrote before (4: no idle timeout; 3: no sign-in
/// time either; 2: absolute times, the owner always written).
const FORMAT_5: &str = r#"5.AAAAAAAAAAAAAAAAAAAAAA.1.0.9999999999998.9999999999998.0..0.{}"#;
const FORMAT_4: &str = r#"4.AAAAAAAAAAAAAAAAAAAAAA.1.0.9999999999998.9999999999998.0.0.{}"#;
const FORMAT_3: &str = r#"3.AAAAAAAAAAAAAAAAAAAAAA.1.0.9999999999998.9999999999998.0.{}"#;
const FORMAT_2: &str = r#"2.AAAAAAAAAAAAAAAAAAAAAA.1.1.9999999999999.9999999999999.0.[null,{}]"#;

#[test]
fn sessions_sealed_in_formats_2_to_4_still_open_as_they_did() {
    for mode in MODES {
        let s = sealer(mode, "app", DEFAULT_COOKIE_NAME);
        for (previous, old, older, new) in [
            (
                FORMAT_4.to_owned(),
                FORMAT_3.to_owned(),
                FORMAT_2.to_owned(),
                FORMAT_5.to_owned(),
            ),
            (
                FORMAT_4.replace(".{}", r#".["alice",{"n":7}]"#),
                FORMAT_3.replace(".{}", r#".["alice",{"n":7}]"#),
                FORMAT_2.replace("[null,{}]", r#"["alice",{"n":7}]"#),
                FORMAT_5.replace(".{}", r#".["alice",{"n":7}]"#),
            ),
        ] {
            let older = s
                .open(&s.seal_raw(&older))
                .expect("a format-2 payload opens");
            let old = s.open(&s.seal_raw(&old)).expect("a format-3 payload opens");
            let previous = s
                .open(&s.seal_raw(&previous))
                .expect("a format-4 payload opens");
            let new = s.open(&s.seal_raw(&new)).expect("a format-5 payload opens");
            assert_eq!(previous.record, new.record, "{mode:?}");
            assert_eq!(previous.record.meta.idle_timeout, None, "{mode:?}");
            for opened in [&older, &old] {
                assert_eq!(opened.record, new.record, "{mode:?}");
                // Signed in when created, as every session was before sign-in times.
                assert_eq!(opened.signed_in, opened.record.meta.created, "{mode:?}");
            }
            assert_eq!(new.record.meta.created.unix_timestamp_nanos(), 1_000_000);
            assert_eq!(
                new.record.meta.absolute_deadline.unix_timestamp_nanos(),
                9_999_999_999_999_000_000
            );
        }
        // A sign-in time after the creation is read back.
        let rotated = FORMAT_4.replace(".0.0.{}", ".5.0.{}");
        let opened = s.open(&s.seal_raw(&rotated)).unwrap();
        assert_eq!(opened.signed_in.unix_timestamp_nanos(), 6_000_000);
        // So is an idle timeout of the session's own.
        let own = FORMAT_5.replace("..0.{}", ".60000.0.{}");
        let opened = s.open(&s.seal_raw(&own)).unwrap();
        assert_eq!(
            opened.record.meta.idle_timeout,
            Some(time::Duration::minutes(1))
        );
        // What this crate seals now opens to the record sealed.
        let record = record();
        let sealed = s.seal(&record, &Nonce::generate()).unwrap();
        assert_eq!(s.open(&sealed).unwrap().record, record, "{mode:?}");
    }
    // And it is format 5: a signed-only cookie shows its payload.
    let signed = sealer(Mode::Signed, "app", DEFAULT_COOKIE_NAME);
    let value = signed.seal(&record(), &Nonce::generate()).unwrap();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(&value[44..]).unwrap()).unwrap();
    assert!(payload.starts_with("5."), "{payload}");
    assert!(payload.ends_with(r#".["alice",{"visits":3}]"#), "{payload}");
}

#[test]
fn payloads_of_another_version_or_shape_are_rejected() {
    for mode in MODES {
        let s = sealer(mode, "app", DEFAULT_COOKIE_NAME);
        for (good, version) in [
            (FORMAT_2, "2."),
            (FORMAT_3, "3."),
            (FORMAT_4, "4."),
            (FORMAT_5, "5."),
        ] {
            assert!(
                s.open(&s.seal_raw(good)).is_some(),
                "{mode:?}: the control payload {good}"
            );
            let tail = if version == "2." { "[null,{}]" } else { "{}" };
            let fields = &good[..good.len() - tail.len()];
            for bad in [
                good.replacen(version, "1.", 1),
                good.replacen(version, "6.", 1),
                good.replacen(version, if version == "4." { "3." } else { "4." }, 1),
                good.replacen(version, if version == "5." { "3." } else { "5." }, 1),
                good.replacen(version, "", 1),
                // A field missing, added, or not a number.
                good.replace(".9999999999999.0.", ".0.")
                    .replace(".9999999999998.0.", ".0."),
                format!("{fields}0.{tail}"),
                good.replacen(".1.", ".x.", 1),
                good.replacen(".1.", ".1.1.", 1),
                // A time no date can hold, or that overflows.
                good.replacen(".1.", ".99999999999999999.", 1),
                good.replacen(".1.", ".99999999999999999999.", 1),
                good.replacen(".1.", ".9223372036854775807.", 1),
                format!("{}2.{tail}", &fields[..fields.len() - 2]),
                // The JSON part: not an object, nor a pair of owner and object.
                format!("{fields}[null,[1]]"),
                format!("{fields}[1,{{}}]"),
                format!("{fields}[null,{{}},1]"),
                format!("{fields}[1]"),
                format!("{fields}{{"),
                fields.to_owned(),
                // Format 4's sign-in time: not a number, or past what a time holds.
                FORMAT_4.replace(".0.0.{}", ".x.0.{}"),
                FORMAT_4.replace(".0.0.{}", ".9223372036854775807.0.{}"),
                // Format 5's idle timeout: not a number, or negative.
                FORMAT_5.replace("..0.{}", ".x.0.{}"),
                FORMAT_5.replace("..0.{}", ".-1.0.{}"),
            ] {
                assert!(
                    s.open(&s.seal_raw(&bad)).is_none(),
                    "{mode:?}: {bad} opened"
                );
            }
        }
        // Format 2 always wrote the owner: a bare object is not a format-2 payload.
        let bare = FORMAT_2.replace("[null,{}]", "{}");
        for bad in [
            bare,
            // The legacy JSON format of version 1.
            r#"{"v":1,"n":"AAAAAAAAAAAAAAAAAAAAAA","c":1,"s":1,"i":9999999999999,"a":9999999999999}"#
                .into(),
            "null".into(),
            "{".into(),
            String::new(),
        ] {
            assert!(
                s.open(&s.seal_raw(&bad)).is_none(),
                "{mode:?}: {bad} opened"
            );
        }
    }
}

#[test]
fn signed_only_cookies_are_readable_and_private_ones_are_not() {
    let signed = sealer(Mode::Signed, "app", DEFAULT_COOKIE_NAME);
    let value = signed.seal(&record(), &Nonce::generate()).unwrap();
    let json = URL_SAFE_NO_PAD.decode(&value[44..]).unwrap();
    assert!(String::from_utf8(json).unwrap().contains("alice"));

    let private = sealer(Mode::Private, "app", DEFAULT_COOKIE_NAME);
    let value = private.seal(&record(), &Nonce::generate()).unwrap();
    let bytes = STANDARD.decode(&value).unwrap();
    assert!(!bytes.windows(5).any(|w| w == b"alice"));
}

#[test]
fn keys_never_show_in_debug_output() {
    let material = key(1);
    let ring = KeyRing::new([&material]).unwrap();
    let config = ClientSide::new(ring.clone()).with_purpose("app");
    let layer = SessionLayer::client_side(ring.clone());
    for text in [
        format!("{ring:?}"),
        format!("{config:?}"),
        format!("{layer:?}"),
        format!("{:?}", sealer(Mode::Private, "app", "n")),
    ] {
        assert!(text.contains("keys"), "{text}");
        assert!(!text.contains(&format!("{:?}", &material[..8])), "{text}");
        assert!(!text.contains(&STANDARD.encode(&material)[..12]), "{text}");
        assert!(!text.contains("[1, "), "{text}");
    }
}

#[test]
fn the_fuzz_entry_point_survives_junk() {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for len in 0..600 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        fuzz_unseal(&bytes);
        fuzz_unseal(STANDARD.encode(&bytes).as_bytes());
    }
    fuzz_unseal(br#"2..-99999999999999999.0.0.0.0.[null,{"a":[[[[]]]]}]"#);
}

/// Records every event as `level target fields`.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Fields<'a>(&'a mut String);
        impl tracing::field::Visit for Fields<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                let _ = write!(self.0, "{}={value:?} ", field.name());
            }
        }
        let meta = event.metadata();
        let mut line = format!("{} {} ", meta.level(), meta.target());
        event.record(&mut Fields(&mut line));
        self.0.lock().unwrap().push(line);
    }
}

async fn read(session: Session) -> Result<String, SessionError> {
    Ok(session.get::<u64>("visits").await?.unwrap_or(0).to_string())
}

async fn write(session: Session) -> Result<String, SessionError> {
    session.insert("visits", 7).await?;
    Ok(String::new())
}

fn app(config: ClientSide) -> Router {
    Router::new()
        .route("/read", get(read))
        .route("/write", get(write))
        .layer(SessionLayer::client_side(config))
}

async fn call(app: &Router, path: &str, cookie: Option<&str>) -> http::Response<Body> {
    let mut req = Request::get(path);
    if let Some(value) = cookie {
        req = req.header(COOKIE, format!("{DEFAULT_COOKIE_NAME}={value}"));
    }
    app.clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn sealed_by(config: ClientSide) -> String {
    let res = call(&app(config), "/write", None).await;
    let set = res.headers()[SET_COOKIE].to_str().unwrap();
    let value = set.split(';').next().unwrap();
    value[DEFAULT_COOKIE_NAME.len() + 1..].to_owned()
}

/// Every kind of bad value, at once: each must give the same response and the same log.
async fn bad_values(mode: Mode) -> Vec<(&'static str, String)> {
    let config = |c: ClientSide| {
        if mode == Mode::Signed {
            c.signed_only()
        } else {
            c
        }
    };
    let good = sealed_by(config(ring().into())).await;
    let s = &sealer(mode, super::DEFAULT_PURPOSE, DEFAULT_COOKIE_NAME);
    let (split, _) = good.split_at(good.len() / 2);
    let mut flipped = good.clone().into_bytes();
    flipped[good.len() / 3] ^= 0x01;
    let mut bad = vec![
        ("empty", String::new()),
        ("bad base64", "*".repeat(good.len())),
        ("bad base64 of the right length", format!("{}!", &good[1..])),
        ("flipped", String::from_utf8(flipped).unwrap()),
        ("truncated", split.to_owned()),
        ("extended", format!("{good}AAAA")),
        (
            "wrong key",
            sealed_by(config(KeyRing::new([key(9)]).unwrap().into())).await,
        ),
        (
            "wrong purpose",
            sealed_by(config(ClientSide::new(ring()).with_purpose("x"))).await,
        ),
        (
            "wrong version",
            s.seal_raw("1.AAAAAAAAAAAAAAAAAAAAAA.1.1.1.1.0.[null,{}]"),
        ),
        ("not a payload", s.seal_raw("hello")),
    ];
    let other_mode = if mode == Mode::Signed {
        ClientSide::new(ring())
    } else {
        ClientSide::new(ring()).signed_only()
    };
    bad.push(("other mode", sealed_by(other_mode).await));
    bad
}

#[tokio::test]
async fn every_bad_cookie_gets_the_same_response_and_the_same_log_line() {
    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    for mode in MODES {
        let config = |c: ClientSide| {
            if mode == Mode::Signed {
                c.signed_only()
            } else {
                c
            }
        };
        let app = app(config(ring().into()));
        let mut lines = Vec::new();
        for (kind, value) in bad_values(mode).await {
            capture.0.lock().unwrap().clear();
            let res = call(&app, "/read", Some(&value)).await;
            assert_eq!(res.status(), StatusCode::OK, "{mode:?} {kind}");
            let set = res.headers()[SET_COOKIE].to_str().unwrap().to_owned();
            assert!(
                set.starts_with(&format!("{DEFAULT_COOKIE_NAME}=;")),
                "{mode:?} {kind}: {set}"
            );
            assert!(set.contains("Max-Age=0"), "{mode:?} {kind}: {set}");
            assert_eq!(res.headers()[VARY], "Cookie");
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"0", "{mode:?} {kind}");
            let logged = capture.0.lock().unwrap().clone();
            assert_eq!(logged.len(), 1, "{mode:?} {kind}: {logged:?}");
            if !value.is_empty() {
                assert!(
                    !logged[0].contains(&value),
                    "{mode:?} {kind}: the value was logged"
                );
            }
            lines.push(logged[0].clone());
        }
        lines.dedup();
        assert_eq!(
            lines.len(),
            1,
            "{mode:?}: failure kinds logged differently: {lines:?}"
        );
        assert!(
            lines[0].starts_with("DEBUG session_layer ")
                && lines[0].contains("reason=\"malformed\""),
            "{}",
            lines[0]
        );
    }
}

/// Property tests of sealing: opening undoes sealing for any record, and no change to a
/// sealed value, however small, opens.
mod properties {
    use proptest::prelude::*;
    use serde_json::Value;
    use time::OffsetDateTime;

    use super::{sealer, MODES};
    use crate::client_side::seal::{Mode, Nonce};
    use crate::record::{Metadata, Record};
    use crate::DEFAULT_COOKIE_NAME;

    /// Any JSON value, floats included: they must come back bit for bit.
    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
                .prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn time() -> impl Strategy<Value = OffsetDateTime> {
        (0..4_102_444_800_000i64).prop_map(|ms| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap()
        })
    }

    fn record() -> impl Strategy<Value = Record> {
        (
            prop::collection::btree_map(".{0,10}", json(), 0..6),
            (time(), time(), time(), time()),
            any::<bool>(),
            prop::option::of(".{1,16}"),
            prop::option::of(0..4_102_444_800_000i64),
        )
            .prop_map(|(data, (c, s, i, a), persistent, user, idle)| {
                let meta = Metadata {
                    created: c,
                    last_seen: s,
                    idle_deadline: i,
                    absolute_deadline: a,
                    persistent,
                    user,
                    idle_timeout: idle.map(time::Duration::milliseconds),
                };
                Record::from_parts(data.into_iter().collect(), meta)
            })
    }

    fn mode() -> impl Strategy<Value = Mode> {
        prop::sample::select(MODES.to_vec())
    }

    /// A change to a text: which kind, where, and with which byte.
    #[derive(Debug, Clone)]
    enum Mutation {
        Flip(usize, u8),
        Replace(usize, u8),
        Insert(usize, u8),
        Delete(usize, usize),
        Truncate(usize),
        Swap(usize, usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        let b64 = prop::sample::select(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_".to_vec(),
        );
        prop_oneof![
            (any::<usize>(), 0..8u8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
            (any::<usize>(), b64.clone()).prop_map(|(i, b)| Mutation::Replace(i, b)),
            (any::<usize>(), b64).prop_map(|(i, b)| Mutation::Insert(i, b)),
            (any::<usize>(), 1..8usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
            any::<usize>().prop_map(Mutation::Truncate),
            (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        ]
    }

    fn apply(value: &str, mutations: &[Mutation]) -> Vec<u8> {
        let mut bytes = value.as_bytes().to_vec();
        for m in mutations {
            let len = bytes.len().max(1);
            match *m {
                Mutation::Flip(i, bit) if !bytes.is_empty() => bytes[i % len] ^= 1 << bit,
                Mutation::Replace(i, b) if !bytes.is_empty() => bytes[i % len] = b,
                Mutation::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
                Mutation::Delete(i, n) if !bytes.is_empty() => {
                    let at = i % len;
                    bytes.drain(at..(at + n).min(bytes.len()));
                }
                Mutation::Truncate(n) => bytes.truncate(n % len),
                Mutation::Swap(a, b) if !bytes.is_empty() => bytes.swap(a % len, b % len),
                _ => {}
            }
        }
        bytes
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn opening_undoes_sealing_for_any_record(record in record(), mode in mode()) {
            let s = sealer(mode, "props", DEFAULT_COOKIE_NAME);
            let nonce = Nonce::generate();
            // A record past the cookie budget is refused, never sealed: nothing to open.
            if let Ok(value) = s.seal(&record, &nonce) {
                prop_assert!(s.has_shape(value.as_bytes()));
                let opened = s.open(&value).expect("a value it sealed opens");
                prop_assert_eq!(opened.record, record);
                prop_assert_eq!(opened.nonce, nonce);
            }
        }

        #[test]
        fn no_mutation_of_a_sealed_value_opens(
            record in record(),
            mode in mode(),
            mutations in prop::collection::vec(mutation(), 1..4),
        ) {
            let s = sealer(mode, "props", DEFAULT_COOKIE_NAME);
            let Ok(value) = s.seal(&record, &Nonce::generate()) else {
                return Ok(());
            };
            let mutated = apply(&value, &mutations);
            prop_assume!(mutated != value.as_bytes());
            if let Ok(text) = std::str::from_utf8(&mutated) {
                prop_assert!(s.open(text).is_none(), "a mutated value opened");
            }
        }
    }
}

#[test]
fn a_cookie_name_is_kept_once_however_many_layers_use_it() {
    let name = "__Host-interned-for-a-test";
    let first = super::seal::interned(name.to_owned());
    for _ in 0..100 {
        assert!(std::ptr::eq(first, super::seal::interned(name.to_owned())));
    }
    assert_eq!(first, name);
    let other = super::seal::interned(format!("{name}-2"));
    assert_eq!(other, format!("{name}-2"));
    assert!(!std::ptr::eq(first, other));
}
