//! The bodies of the fuzz targets in `fuzz/`, shared with the stable smoke tests that run
//! them on generated inputs where no fuzzer can run. Not part of the API.
//!
//! Each function takes the fuzzer's bytes, never panics on its own account, and asserts the
//! property its target guards, so a violation is a crash the fuzzer reports.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderValue, Request, Response, StatusCode};
use tower_layer::Layer as _;
use tower_service::Service;

use crate::config::DEFAULT_COOKIE_NAME;
use crate::id::{SessionId, ID_LEN};
use crate::layer::SessionLayer;
use crate::record::Record;
use crate::service::SessionService;
use crate::session::Session;
use crate::store::memory::MemoryStore;
use crate::store::SessionStore;

/// The one live session of the `cookie_header` target's store: these 32 bytes, base64url.
pub const KNOWN_ID: &str = "c2Vzc2lvbi1sYXllciBmdXp6OiBhIGtub3duIElEISE";
/// What the known session holds under `secret`.
pub const KNOWN_SECRET: &str = "only the known ID reads this";

/// A handler that reads the session and answers 200 with what it found under `secret`.
#[derive(Debug, Clone, Copy)]
struct Reader;

impl Service<Request<()>> for Reader {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        let session = req.extensions().get::<Session>().cloned();
        Box::pin(async move {
            let Some(session) = session else {
                return Ok(status(StatusCode::INTERNAL_SERVER_ERROR));
            };
            Ok(match session.get::<String>("secret").await {
                Ok(found) => Response::new(found.unwrap_or_default()),
                Err(_) => status(StatusCode::INTERNAL_SERVER_ERROR),
            })
        })
    }
}

fn status(status: StatusCode) -> Response<String> {
    let mut res = Response::new(String::new());
    *res.status_mut() = status;
    res
}

struct App {
    runtime: tokio::runtime::Runtime,
    service: SessionService<Reader>,
}

fn app() -> App {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime for the fuzz target");
    let store = MemoryStore::default();
    let now = crate::clock::to_millis(time::OffsetDateTime::now_utc());
    let far = now + time::Duration::days(3650);
    let mut record = Record::new(now, far, far);
    record
        .data_mut()
        .insert("secret".into(), KNOWN_SECRET.into());
    let known = SessionId::parse(KNOWN_ID.as_bytes()).expect("the known ID is well-formed");
    let created = runtime
        .block_on(store.create(&known.storage_key(), &record))
        .expect("the memory store takes the known session");
    assert!(created);
    let service = SessionLayer::new(store).layer(Reader);
    App { runtime, service }
}

thread_local! {
    static APP: RefCell<Option<App>> = const { RefCell::new(None) };
}

/// The `cookie_header` target: `data`, split at LF into `Cookie` headers (the way a raw
/// request would carry several), goes through a [`SessionLayer`] over a [`MemoryStore`]
/// that holds one session, [`KNOWN_ID`], to a handler that reads the session. Pieces a
/// header cannot carry (NUL, CR, other control bytes) are left out, as an HTTP server
/// would refuse them before any layer runs.
///
/// # Panics
///
/// If the response is not a 200, if it sets a session cookie other than a removal (a read
/// never issues a session), or if the handler read the known session's data although no
/// header carried [`KNOWN_ID`] (someone got in), or did not although a header was exactly
/// that cookie.
pub fn cookie_header(data: &[u8]) {
    let mut req = Request::new(());
    let mut carries_known = false;
    let mut exactly_known = false;
    let exact = format!("{}={KNOWN_ID}", DEFAULT_COOKIE_NAME);
    for piece in data.split(|b| *b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(piece) {
            carries_known |= contains(piece, KNOWN_ID.as_bytes());
            exactly_known |= piece == exact.as_bytes();
            req.headers_mut().append(COOKIE, value);
        }
    }
    let res = APP.with(|cell| {
        let mut cell = cell.borrow_mut();
        let app = cell.get_or_insert_with(app);
        let mut service = app.service.clone();
        app.runtime.block_on(async move {
            std::future::poll_fn(|cx| service.poll_ready(cx))
                .await
                .unwrap_or_else(|never| match never {});
            service
                .call(req)
                .await
                .unwrap_or_else(|never| match never {})
        })
    });
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "a hostile Cookie header was not a 200"
    );
    let cookies: Vec<&HeaderValue> = res.headers().get_all(SET_COOKIE).iter().collect();
    assert!(cookies.len() <= 1, "more than one Set-Cookie");
    if let Some(set) = cookies.first() {
        let set = set.to_str().expect("Set-Cookie is text");
        assert!(
            set.starts_with(&format!("{}=;", DEFAULT_COOKIE_NAME)) && set.contains("Max-Age=0"),
            "a request that only read its session was issued a session"
        );
    }
    let body = res.into_body();
    if !body.is_empty() {
        assert_eq!(body, KNOWN_SECRET);
        assert!(
            carries_known,
            "a request without the known ID read its session"
        );
    }
    if exactly_known && data.split(|b| *b == b'\n').count() == 1 {
        assert_eq!(
            body, KNOWN_SECRET,
            "the known ID alone did not open its session"
        );
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The `session_id` target: [`SessionId::parse`] on any bytes.
///
/// # Panics
///
/// If it accepts anything but the one canonical spelling of 32 bytes in base64url (43
/// characters of the alphabet, the last one's two spare bits zero), refuses such a
/// spelling, or accepts text that its own [`SessionId::expose`] does not give back.
pub fn session_id(data: &[u8]) {
    let parsed = SessionId::parse(data);
    let index = |b: u8| match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    };
    let canonical = data.len() == ID_LEN
        && data.iter().all(|b| index(*b).is_some())
        && index(data[ID_LEN - 1]).is_some_and(|i| i & 0b11 == 0);
    assert_eq!(
        parsed.is_some(),
        canonical,
        "SessionId::parse disagrees with the shape of an ID"
    );
    if let Some(id) = parsed {
        assert_eq!(id.expose().as_bytes(), data, "an ID has a second spelling");
        assert_eq!(id.storage_key(), id.clone().storage_key());
    }
}
