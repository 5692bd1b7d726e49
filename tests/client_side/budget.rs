//! The 4,096-byte budget: a write that would pass it is a typed error in the handler; a
//! cookie browsers would drop is never sent.

use axum::http::StatusCode;
use session_layer::testing::MockClock;

use super::{builder, ring, Browser, Mode, CLIENT_MODES, NAME};

fn browser(mode: Mode) -> Browser {
    Browser::new(
        builder(mode, ring(&[1]), &MockClock::new())
            .build()
            .unwrap(),
    )
}

#[tokio::test]
async fn a_write_past_4096_bytes_is_a_typed_error_that_names_the_fix() {
    for mode in CLIENT_MODES {
        let mut browser = browser(mode);
        browser.get("/count").await;
        let before = browser.cookie.clone();
        let reply = browser.get("/put?key=big&len=5000").await;
        assert_eq!(
            reply.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{mode:?}: {reply:?}"
        );
        assert!(reply.body.contains("4096"), "{}", reply.body);
        assert!(reply.body.contains("server-side store"), "{}", reply.body);
        assert!(reply.set_cookies.is_empty(), "{mode:?}: {reply:?}");
        assert_eq!(browser.cookie, before);
        assert_eq!(browser.get("/read").await.body, "1");
    }
}

#[tokio::test]
async fn a_growing_session_stops_at_the_budget_and_every_cookie_sent_fits() {
    for mode in CLIENT_MODES {
        let mut browser = browser(mode);
        let mut stored = 0;
        loop {
            let reply = browser.get(&format!("/put?key=k{stored}&len=100")).await;
            if reply.status == StatusCode::PAYLOAD_TOO_LARGE {
                break;
            }
            assert_eq!(reply.status, StatusCode::OK);
            let value = reply.cookie_value().unwrap();
            assert!(
                NAME.len() + value.len() <= 4096,
                "{mode:?}: sent {} bytes",
                value.len()
            );
            stored += 1;
            assert!(stored < 100, "{mode:?}: the budget never applied");
        }
        // Near the limit, and everything written before the refusal is still there.
        let last = browser.cookie.clone().unwrap();
        assert!(
            NAME.len() + last.len() > 3500,
            "{mode:?}: stopped early at {}",
            last.len()
        );
        let reply = browser.get("/whoami").await;
        assert_eq!(reply.status, StatusCode::OK);
        // A small write still fits, a little bigger does not.
        assert_eq!(
            browser.get("/put?key=k0&len=101").await.status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn metadata_that_overflows_at_the_end_is_a_server_error_without_a_cookie() {
    for mode in CLIENT_MODES {
        let mut browser = browser(mode);
        browser.get("/count").await;
        assert_eq!(
            browser.get("/put?key=fill&len=2800").await.status,
            StatusCode::OK
        );
        let kept = browser.cookie.clone();
        // A user name is not checked when it is set; it is when the cookie is sealed.
        let reply = browser
            .get(&format!("/user?name={}", "u".repeat(1500)))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{mode:?}: {reply:?}"
        );
        assert!(
            reply.set_cookies.is_empty(),
            "{mode:?}: an oversized cookie was sent"
        );
        assert_eq!(browser.cookie, kept);
        assert_eq!(browser.get("/read").await.body, "1", "{mode:?}");
    }
}

#[tokio::test]
async fn sealing_the_same_data_twice_gives_different_values() {
    for mode in CLIENT_MODES {
        let (mut a, mut b) = (browser(mode), browser(mode));
        a.get("/count").await;
        b.get("/count").await;
        assert_ne!(
            a.cookie, b.cookie,
            "{mode:?}: equal data sealed to equal values"
        );
    }
}
