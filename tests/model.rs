//! Property test: any sequence of session operations, sent as requests through the layer to a
//! `MemoryStore` by a client that keeps its cookie like a browser, behaves like a small model
//! of the rules (per-key data, rotation, logout, idle and absolute expiry, touch step).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{body, set_cookies, TestApp};
use proptest::prelude::*;

const IDLE: i64 = 100;
const ABSOLUTE: i64 = 300;
const STEP: i64 = 10;

#[derive(Debug, Clone)]
enum Op {
    Set(u8, u8),
    Remove(u8),
    Clear,
    Get(u8),
    Rotate,
    Logout,
    Wait(i64),
}

fn op() -> impl Strategy<Value = Op> {
    // Time jumps cluster around the idle timeout and the touch step, where rules differ.
    prop_oneof![
        3 => (0..3u8, 0..9u8).prop_map(|(k, v)| Op::Set(k, v)),
        1 => (0..3u8).prop_map(Op::Remove),
        1 => Just(Op::Clear),
        4 => (0..3u8).prop_map(Op::Get),
        1 => Just(Op::Rotate),
        1 => Just(Op::Logout),
        6 => prop_oneof![
            Just(1), Just(5), Just(9), Just(11), Just(45), Just(89), Just(91), Just(95),
            Just(99), Just(101), Just(400)
        ]
        .prop_map(Op::Wait),
    ]
}

/// The server-side session as the rules say it should be.
#[derive(Debug, Default)]
struct Model {
    now: i64,
    session: Option<Stored>,
}

#[derive(Debug)]
struct Stored {
    data: BTreeMap<u8, u8>,
    created: i64,
    idle_deadline: i64,
}

impl Model {
    fn live(&mut self) -> Option<&mut Stored> {
        let now = self.now;
        if let Some(s) = &self.session {
            if now >= s.idle_deadline.min(s.created + ABSOLUTE) {
                self.session = None;
            }
        }
        self.session.as_mut()
    }

    /// Activity on a live session moves its idle deadline when the move passes the step.
    fn touch(&mut self) {
        let now = self.now;
        if let Some(s) = self.live() {
            let next = (now + IDLE).min(s.created + ABSOLUTE);
            if next - s.idle_deadline > STEP {
                s.idle_deadline = next;
            }
        }
    }
}

fn key(k: u8) -> String {
    format!("k{k}")
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let app = TestApp::with(|b| {
        b.with_idle_timeout(Duration::from_secs(IDLE as u64))
            .with_absolute_timeout(Duration::from_secs(ABSOLUTE as u64))
            .with_touch_step(Duration::from_secs(STEP as u64))
    });
    let mut model = Model::default();
    let mut cookie: Option<String> = None;
    for op in ops {
        let (method, uri) = match op {
            Op::Wait(secs) => {
                app.advance(secs as u64);
                model.now += secs;
                continue;
            }
            Op::Set(k, v) => ("POST", format!("/set/{}/{v}", key(k))),
            Op::Remove(k) => ("POST", format!("/remove/{}", key(k))),
            Op::Clear => ("POST", "/clear".to_owned()),
            Op::Get(k) => ("GET", format!("/get/{}", key(k))),
            Op::Rotate => ("POST", "/rotate".to_owned()),
            Op::Logout => ("POST", "/logout".to_owned()),
        };
        let res = app.send(method, &uri, cookie.as_deref()).await;
        prop_assert_eq!(res.status(), 200);
        let cookies = set_cookies(&res);
        prop_assert!(cookies.len() <= 1);
        let before = cookie.clone();
        if let Some(raw) = cookies.first() {
            let c = cookie::Cookie::parse(raw.clone()).unwrap();
            cookie = (!c.value().is_empty()).then(|| c.value().to_owned());
        }
        let text = body(res).await;

        let now = model.now;
        match op {
            Op::Get(k) => {
                let expected = model
                    .live()
                    .and_then(|s| s.data.get(&k).copied())
                    .map(|v| format!("\"{v}\""))
                    .unwrap_or_default();
                prop_assert_eq!(text, expected, "get {}", k);
                model.touch();
            }
            Op::Set(k, v) => match model.live() {
                Some(s) => {
                    s.data.insert(k, v);
                    model.touch();
                }
                None => {
                    model.session = Some(Stored {
                        data: BTreeMap::from([(k, v)]),
                        created: now,
                        idle_deadline: now + IDLE,
                    });
                    prop_assert!(cookie.is_some() && cookie != before, "no new session");
                }
            },
            Op::Remove(k) => {
                if let Some(s) = model.live() {
                    s.data.remove(&k);
                }
                model.touch();
            }
            Op::Clear => {
                if let Some(s) = model.live() {
                    s.data.clear();
                }
                model.touch();
            }
            Op::Rotate => {
                if model.live().is_some() {
                    prop_assert!(cookie.is_some() && cookie != before, "rotation kept the ID");
                    model.touch();
                }
            }
            Op::Logout => {
                model.session = None;
                prop_assert!(cookie.is_none(), "logout left a cookie");
            }
            Op::Wait(_) => unreachable!(),
        }
        if model.live().is_none() {
            // Whatever the client holds no longer opens a session.
            if let Some(c) = &cookie {
                let res = app.send("GET", "/get/k0", Some(c)).await;
                let cookies = set_cookies(&res);
                prop_assert_eq!(body(res).await, "");
                prop_assert!(cookies.iter().all(|c| c.contains("Max-Age=0")));
                cookie = None;
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_sequence_of_operations_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(run(ops))?;
    }
}
