//! Timeouts the layer cannot represent, or that contradict each other, are refused when the
//! layer is built, with the value to use instead; the largest accepted ones work.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use session_layer::{MemoryStore, Session, SessionLayer, SessionLayerBuilder};
use tower::ServiceExt as _;

const DAY: u64 = 24 * 60 * 60;
/// The largest timeout the layer accepts, as its error message spells it.
const LARGEST: &str = "36500 days";

/// A change to a builder, named by the setting it makes.
type Setting = (
    &'static str,
    Box<dyn FnOnce(SessionLayerBuilder) -> SessionLayerBuilder>,
);

fn refusal(configure: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder) -> String {
    match configure(SessionLayer::builder(MemoryStore::default())).build() {
        Ok(_) => panic!("the configuration was accepted"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn unrepresentable_durations_are_refused_with_the_largest_accepted_value() {
    let beyond = Duration::from_secs(36_500 * DAY + 1);
    let cases: [Setting; 5] = [
        (
            "absolute timeout",
            Box::new(|b| b.with_absolute_timeout(Duration::MAX)),
        ),
        (
            "absolute timeout",
            Box::new(move |b| b.with_absolute_timeout(beyond)),
        ),
        (
            "idle timeout",
            Box::new(|b| {
                b.with_idle_timeout(Duration::MAX)
                    .with_absolute_timeout(Duration::MAX)
            }),
        ),
        (
            "persistent idle timeout",
            Box::new(|b| b.with_persistent_idle_timeout(Duration::MAX)),
        ),
        (
            "persistent idle timeout",
            Box::new(move |b| b.with_persistent_idle_timeout(beyond)),
        ),
    ];
    for (setting, configure) in cases {
        let message = refusal(configure);
        assert!(
            message.contains(setting) && message.contains(LARGEST),
            "{setting}: {message}"
        );
    }
}

#[test]
fn a_persistent_idle_timeout_not_longer_than_the_touch_step_is_refused() {
    for persistent_idle in [30, 60] {
        let message = refusal(|b| {
            b.with_touch_step(Duration::from_secs(60))
                .with_persistent_idle_timeout(Duration::from_secs(persistent_idle))
        });
        assert!(
            message.contains("touch step") && message.contains("persistent idle timeout"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn the_largest_accepted_timeouts_serve_sessions() {
    let largest = Duration::from_secs(36_500 * DAY);
    let layer = SessionLayer::builder(MemoryStore::default())
        .with_idle_timeout(largest)
        .with_persistent_idle_timeout(largest)
        .with_absolute_timeout(largest)
        .build()
        .expect("the largest accepted timeouts are accepted");
    let app = Router::new()
        .route(
            "/remember",
            get(|session: Session| async move {
                session.set_persistent(true).await;
                session.insert("n", 1).await.unwrap();
            }),
        )
        .route(
            "/read",
            get(|session: Session| async move {
                session
                    .get::<u64>("n")
                    .await
                    .unwrap()
                    .unwrap_or(0)
                    .to_string()
            }),
        )
        .layer(layer);
    let res = app
        .clone()
        .oneshot(Request::get("/remember").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let set = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    // Browsers keep a cookie 400 days at most; the header says no more.
    assert!(set.contains(&format!("Max-Age={}", 400 * DAY)), "{set}");
    let res = app
        .oneshot(
            Request::get("/read")
                .header(header::COOKIE, set.split(';').next().unwrap())
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"1");
}
