//! What a failing session call tells the app: enough to act on (the kind of failure, the
//! key, where serde stopped), never a stored value, so an app that logs errors with `{:?}`
//! writes no session data to its logs.

use std::error::Error as _;

use axum::body::Body;
use axum::http::{header, Request};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt as _;
use serde::Deserialize;
use session_layer::{MemoryStore, Session, SessionError, SessionLayer};
use tower::ServiceExt as _;

const SECRET: &str = "s3cr3t-pin-8842";

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
enum Role {
    Admin,
    Member,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Profile {
    name: String,
    age: u32,
}

/// Everything an app could print of `err`: `Display`, `Debug`, and both for every error in
/// its `source()` chain.
fn everything_printed(err: &SessionError) -> String {
    let mut out = format!("{err}\n{err:?}\n");
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(&format!("{e}\n{e:?}\n"));
        source = e.source();
    }
    out
}

/// Reads the secret written under `key` as the wrong type and reports what the error says.
async fn misread(session: Session, which: &str) -> String {
    let err = match which {
        "u64" => session.get::<u64>("pin").await.unwrap_err(),
        "enum" => session.get::<Role>("pin").await.unwrap_err(),
        _ => session.get::<Profile>("profile").await.unwrap_err(),
    };
    let SessionError::Serde { key, source } = &err else {
        panic!("not a serde error: {err}");
    };
    format!(
        "key={key} category={:?} line={} column={}\n{}",
        source.classify(),
        source.line(),
        source.column(),
        everything_printed(&err)
    )
}

#[tokio::test]
async fn a_stored_value_read_as_the_wrong_type_never_appears_in_the_error() {
    let app = Router::new()
        .route(
            "/write",
            get(|session: Session| async move {
                session.insert("pin", SECRET).await.unwrap();
                session
                    .insert("profile", serde_json::json!({ "name": SECRET, "age": SECRET }))
                    .await
                    .unwrap();
            }),
        )
        .route(
            "/read/{which}",
            get(
                |session: Session, axum::extract::Path(which): axum::extract::Path<String>| async move {
                    misread(session, &which).await
                },
            ),
        )
        .layer(SessionLayer::new(MemoryStore::default()));
    let res = app
        .clone()
        .oneshot(Request::get("/write").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let set = res.headers()[header::SET_COOKIE].to_str().unwrap();
    let cookie = set.split(';').next().unwrap().to_owned();

    for (which, key) in [("u64", "pin"), ("enum", "pin"), ("struct", "profile")] {
        // What serde itself reports for this misreading, for the category and position.
        let direct = match which {
            "u64" => serde_json::from_value::<u64>(SECRET.into()).unwrap_err(),
            "enum" => serde_json::from_value::<Role>(SECRET.into()).unwrap_err(),
            _ => serde_json::from_value::<Profile>(
                serde_json::json!({ "name": SECRET, "age": SECRET }),
            )
            .unwrap_err(),
        };
        assert!(
            direct.to_string().contains(SECRET),
            "serde quotes the value, so this test can fail: {direct}"
        );
        let res = app
            .clone()
            .oneshot(
                Request::get(format!("/read/{which}"))
                    .header(header::COOKIE, &cookie)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let printed =
            String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().into()).unwrap();
        assert!(
            !printed.contains(SECRET) && !printed.contains("8842"),
            "{which}: the error quotes the stored value:\n{printed}"
        );
        let first = printed.lines().next().unwrap();
        assert_eq!(
            first,
            format!(
                "key={key} category={:?} line={} column={}",
                direct.classify(),
                direct.line(),
                direct.column()
            ),
            "{which}: the key, category and position are kept"
        );
        assert!(
            printed.contains(&format!("{key:?}")),
            "{which}: the message names the key:\n{printed}"
        );
    }
}

#[tokio::test]
async fn a_value_that_cannot_become_json_is_refused_without_quoting_it() {
    /// Fails to serialize, quoting what it holds, as a careless `Serialize` impl might.
    struct Leaky(&'static str);
    impl serde::Serialize for Leaky {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom(format!(
                "cannot store {}",
                self.0
            )))
        }
    }
    let session = session_layer::testing::session(&SessionLayer::new(MemoryStore::default()));
    let err = session.insert("pin", Leaky(SECRET)).await.unwrap_err();
    let printed = everything_printed(&err);
    assert!(matches!(&err, SessionError::Serde { key, .. } if key == "pin"));
    assert!(!printed.contains(SECRET), "{printed}");
}
