//! Hostile input and load against real Redis: malformed IDs never reach it, 100,000
//! requests without a cookie cost it nothing, a sign-in and a sign-out leave nothing of the
//! old ID behind, and 10,000 concurrent requests with rotations and sign-outs lose nothing.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::Router;
use common::{routes, RedisServer};
use redis::AsyncCommands;
use session_layer::id::SessionId;
use session_layer::{SessionLayer, DEV_COOKIE_NAME};
use session_layer_redis::RedisStore;
use session_layer_test_support::hostile::{self, malformed, Pace};
use session_layer_test_support::inputs::HostileInputs;
use tower::ServiceExt as _;

fn app(store: RedisStore) -> Router {
    routes().layer(
        SessionLayer::builder(store)
            .with_plain_http_for_development()
            .build()
            .unwrap(),
    )
}

/// One request in process; the status, the body and the session cookie it set, if any.
async fn send(
    app: &Router,
    method: &str,
    path: &str,
    cookie: Option<&[u8]>,
) -> (StatusCode, String, Option<String>) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(value) = cookie {
        let mut raw = format!("{DEV_COOKIE_NAME}=").into_bytes();
        raw.extend_from_slice(value);
        req = req.header(header::COOKIE, HeaderValue::from_bytes(&raw).unwrap());
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let cookie = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{DEV_COOKIE_NAME}=")))
        .map(|rest| rest.split(';').next().unwrap_or_default().to_owned());
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned(), cookie)
}

/// Commands Redis ran since the last call, leaving out the test's own `INFO` and `CONFIG`.
async fn commands_since_last_call(redis: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(redis)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| line.strip_prefix("cmdstat_"))
        .filter(|line| !line.starts_with("info") && !line.starts_with("config"))
        .filter_map(|line| {
            line.split_once(":calls=")?
                .1
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_ids_are_anonymous_and_never_reach_redis() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let app = app(server.store().await);
    let (_, _, good) = send(&app, "POST", "/set/a/1", None).await;
    let good = good.expect("a session");
    let mut redis = server.inspector().await;
    commands_since_last_call(&mut redis).await;

    let junk = "j".repeat(10 * 1024);
    let mut values: Vec<Vec<u8>> = [
        "*",
        "../x",
        "%00",
        "' OR 1=1--",
        "a*",
        "",
        "\"\"",
        junk.as_str(),
        "*\r\nFLUSHALL",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    values.extend(HostileInputs::new(3, [good.as_bytes()]).take(2_000));
    let mut sent = 0;
    for value in values {
        if !malformed(&value) || HeaderValue::from_bytes(&value).is_err() {
            continue;
        }
        let (status, body, _) = send(&app, "GET", "/get/a", Some(&value)).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "none"));
        sent += 1;
    }
    assert!(sent > 1_000, "only {sent} malformed values sent");
    assert_eq!(
        commands_since_last_call(&mut redis).await,
        0,
        "a malformed cookie reached Redis"
    );
    // The real one still works.
    let (_, body, _) = send(&app, "GET", "/get/a", Some(good.as_bytes())).await;
    assert_eq!(body, "1");
    println!("hostile: {sent} malformed session IDs sent to the Redis store, none reached Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_requests_without_a_cookie_cost_redis_nothing() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let app = app(server.store().await);
    let mut redis = server.inspector().await;
    commands_since_last_call(&mut redis).await;
    const REQUESTS: usize = 100_000;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let app = app.clone();
        tasks.spawn(async move {
            for _ in (worker..REQUESTS).step_by(8) {
                let (status, body, cookie) = send(&app, "GET", "/get/a", None).await;
                assert_eq!((status, body.as_str()), (StatusCode::OK, "none"));
                assert!(cookie.is_none(), "a read issued a session");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(
        commands_since_last_call(&mut redis).await,
        0,
        "requests that wrote nothing reached Redis"
    );
    // The first request that writes is the first to reach Redis (one create script, which
    // the server may first have to load).
    let (_, _, cookie) = send(&app, "POST", "/set/a/1", None).await;
    assert!(cookie.is_some());
    assert!(commands_since_last_call(&mut redis).await > 0);
    let keys: Vec<String> = redis.keys("*").await.unwrap();
    assert_eq!(
        keys.len(),
        1,
        "Redis holds more than the one written session"
    );
    println!("hostile: {REQUESTS} requests without a cookie on Redis, 0 Redis commands");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_and_sign_out_leave_nothing_of_the_old_id_in_redis() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = server.store().await;
    let app = app(store.clone());
    let redis = server.inspector().await;
    let exists = |cookie: &str| {
        let name = store.redis_key(&SessionId::parse(cookie.as_bytes()).unwrap().storage_key());
        let mut redis = redis.clone();
        async move { redis.exists::<_, bool>(name).await.unwrap() }
    };

    let (_, _, before) = send(&app, "POST", "/set/cart/apple", None).await;
    let before = before.unwrap();
    assert!(exists(&before).await);
    let (status, _, after) = send(&app, "POST", "/login/alice", Some(before.as_bytes())).await;
    assert_eq!(status, StatusCode::OK);
    let after = after.unwrap();
    assert_ne!(after, before, "sign-in kept the ID");
    assert!(
        !exists(&before).await,
        "the pre-sign-in ID is still in Redis"
    );
    assert!(exists(&after).await);
    let (_, who, _) = send(&app, "GET", "/whoami", Some(before.as_bytes())).await;
    assert_eq!(who, "anonymous", "replaying the old ID worked");
    let (_, cart, _) = send(&app, "GET", "/get/cart", Some(after.as_bytes())).await;
    assert_eq!(cart, "apple", "sign-in lost the session's data");

    let req = Request::post("/logout")
        .header(header::COOKIE, format!("{DEV_COOKIE_NAME}={after}"))
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let removal: Vec<&str> = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(removal.len(), 1, "not exactly one Set-Cookie");
    let attributes: Vec<&str> = removal[0].split(';').map(str::trim).collect();
    assert_eq!(
        attributes[0],
        format!("{DEV_COOKIE_NAME}="),
        "not a removal"
    );
    for expected in ["Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=0"] {
        assert!(
            attributes.contains(&expected),
            "the removal cookie lacks {expected}"
        );
    }
    assert!(!exists(&after).await, "the record survived sign-out");
    let (_, who, _) = send(&app, "GET", "/whoami", Some(after.as_bytes())).await;
    assert_eq!(who, "anonymous");
}

/// The shared server, with a command timeout for correctness under concurrency rather
/// than latency: a debug build on a busy machine can take longer per command than a
/// production timeout allows.
async fn loaded_store() -> Option<RedisStore> {
    common::shared_store_with(|b| b.with_command_timeout(Duration::from_secs(20))).await
}

/// How hard the mixes press Redis: more in flight than the SQL stores, a shorter deadline.
const REDIS_PACE: Pace = Pace {
    in_flight: 512,
    deadline: Duration::from_secs(120),
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_requests_with_rotations_and_sign_outs_lose_nothing() {
    let Some(store) = loaded_store().await else {
        return;
    };
    hostile::ten_thousand_concurrent_requests_with_rotations_and_sign_outs_lose_nothing(
        store, "Redis", REDIS_PACE,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_requests_while_one_rotates_leave_one_new_id() {
    let Some(store) = loaded_store().await else {
        return;
    };
    hostile::a_hundred_concurrent_requests_while_one_rotates_leave_one_new_id(
        store, "Redis", REDIS_PACE,
    )
    .await;
}
