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

#[test]
fn a_longest_session_lifetime_below_the_absolute_timeout_or_past_the_largest_is_refused() {
    let message = refusal(|b| {
        b.with_absolute_timeout(Duration::from_secs(30 * DAY))
            .with_max_session_lifetime(Duration::from_secs(DAY))
    });
    assert!(message.contains("longest session lifetime"), "{message}");
    let message = refusal(|b| b.with_max_session_lifetime(Duration::MAX));
    assert!(message.contains(LARGEST), "{message}");
    SessionLayer::builder(MemoryStore::default())
        .with_max_session_lifetime(Duration::from_secs(36_500 * DAY))
        .build()
        .expect("the largest longest lifetime is accepted");
}

/// A session's own idle timeout is held to what the builder holds the layer's to, and its
/// own end time to what a deadline can be; a refused one changes nothing.
#[tokio::test]
async fn a_sessions_own_expiry_is_refused_where_the_layers_would_be() {
    let layer = SessionLayer::new(MemoryStore::default());
    let session = session_layer::testing::session(&layer);
    for refused in [
        Duration::MAX,
        Duration::from_secs(36_500 * DAY + 1),
        Duration::from_millis(500),
        // Not longer than the default touch step (a minute).
        Duration::from_secs(60),
    ] {
        let err = session
            .set_idle_timeout(Some(refused))
            .await
            .expect_err("refused");
        assert!(
            matches!(err, session_layer::SessionError::Expiry { .. }),
            "{err}"
        );
    }
    let far = time::OffsetDateTime::now_utc() + time::Duration::days(36_501);
    assert!(session.set_expires_at(Some(far)).await.is_err());
    let meta = session.metadata().await.expect("metadata");
    assert_eq!(meta.idle_timeout, None, "a refused idle timeout was kept");
    session
        .set_idle_timeout(Some(Duration::from_secs(36_500 * DAY)))
        .await
        .expect("the largest idle timeout is accepted");
    session
        .set_idle_timeout(Some(Duration::from_secs(61)))
        .await
        .expect("an idle timeout just over the touch step is accepted");
}
