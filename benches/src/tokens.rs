//! Minting and verifying one session token, beside a session read (B2 on `MemoryStore`), in
//! one run (`tokens` command).
//!
//! Rows, single-threaded, the thread's CPU time per operation:
//!
//! - baseline: a request with no session layer (case A), the floor of a request;
//! - B2: a request whose handler reads a counter from its session (`MemoryStore`), the same
//!   row as the in-process table;
//! - mint: a request whose handler mints a token from its signed-in session
//!   (`TokenIssuer::mint`: the session's load, the store's answer that it still lives, an
//!   Ed25519 signature);
//! - verify, call: `Verifier::verify` of one token, key set cached from the issuer's JWKS
//!   URL (an Ed25519 check and the claims);
//! - verify, request: a request through `VerifyLayer` to a handler taking `Verified`.
//!
//! Rows are interleaved, a shuffled order each round, and each ratio is taken to the B2 (or
//! baseline) sample of its own round, so the noise of a shared machine hits all alike.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use http::{HeaderValue, Request, Uri};
use http_body_util::BodyExt as _;
use session_layer::{MemoryStore, Session, SessionLayer};
use session_layer_tokens::{jwks_router, SigningKey, TokenIssuer};
use session_layer_verify::{Verified, Verifier, VerifyLayer};
use tower::{Service, ServiceExt};

use crate::apps::{self, Impl};
use crate::inproc::{drive, CpuClock};
use crate::report::{Stat, Table};
use crate::Options;

const ISSUER: &str = "https://app.bench";
const AUDIENCE: &str = "api";

/// What one row does per iteration.
enum Op {
    /// A request to `app` with `cookie` (or the header `auth` as `Authorization`).
    Request {
        app: Router,
        uri: Uri,
        cookie: Option<HeaderValue>,
        auth: Option<HeaderValue>,
    },
    /// `Verifier::verify` of `token`.
    Verify { verifier: Verifier, token: String },
}

struct Row {
    name: &'static str,
    op: Op,
    iters: usize,
    ns: Vec<f64>,
}

/// Runs the rows and returns their table.
pub(crate) fn run(opts: &Options) -> Table {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(run_rows(opts))
}

async fn token(State(issuer): State<TokenIssuer>, session: Session) -> Result<String, StatusCode> {
    issuer
        .mint(&session)
        .await
        .map(|t| t.into_string())
        .map_err(|_| StatusCode::UNAUTHORIZED)
}

async fn login(session: Session) -> &'static str {
    session.rotate().await;
    session.set_user(Some("alice")).await;
    "ok"
}

async fn whoami(Verified(claims): Verified) -> String {
    claims.sub
}

async fn body_of(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("a body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

async fn rows() -> Vec<Row> {
    let issuer = TokenIssuer::builder(ISSUER, SigningKey::generate().expect("a key"))
        .with_audience(AUDIENCE)
        .with_sid_secret([7u8; 32])
        .build()
        .expect("an issuer");
    let minting = Router::new()
        .route("/login", get(login))
        .route("/token", get(token))
        .with_state(issuer.clone())
        .layer(SessionLayer::new(MemoryStore::default()))
        .with_state(());
    let signed_in = apps::new_session(&minting, "/login").await;
    let token_uri = Uri::from_static("/token");
    let (status, token) = body_of(&minting, apps::request(&token_uri, Some(&signed_in))).await;
    assert_eq!(status, StatusCode::OK, "the mint row must mint");

    let jwks = serve(jwks_router(issuer)).await;
    let verifier = Verifier::builder(ISSUER)
        .with_audience(AUDIENCE)
        .jwks_url(format!("{jwks}{}", session_layer_tokens::JWKS_PATH))
        .build()
        .await
        .expect("the verifier fetches the key set");
    let claims = verifier.verify(&token).await.expect("the token verifies");
    assert_eq!(claims.sub, "alice");
    let verifying = Router::new()
        .route("/whoami", get(whoami))
        .layer(VerifyLayer::new(verifier.clone()))
        .with_state(());
    let auth = HeaderValue::try_from(format!("Bearer {token}")).expect("ASCII");
    let whoami_uri = Uri::from_static("/whoami");
    let mut req = apps::request(&whoami_uri, None);
    req.headers_mut()
        .insert(http::header::AUTHORIZATION, auth.clone());
    assert_eq!(
        body_of(&verifying, req).await,
        (StatusCode::OK, "alice".into())
    );

    let baseline = Impl::Baseline.app().expect("always built");
    let sessions = Impl::SessionLayer.app().expect("built");
    let counter = apps::new_session(&sessions, "/setup").await;
    let read_uri = Uri::from_static("/read");
    assert_eq!(
        body_of(&sessions, apps::request(&read_uri, Some(&counter))).await,
        (StatusCode::OK, "7".into()),
        "B2 must read its counter"
    );

    let request = |app: Router, uri: Uri, cookie: Option<HeaderValue>, auth| Op::Request {
        app,
        uri,
        cookie,
        auth,
    };
    [
        (
            "baseline: request, no session (A)",
            request(baseline, Uri::from_static("/"), None, None),
        ),
        (
            "session read: request (B2, MemoryStore)",
            request(sessions, read_uri, Some(counter), None),
        ),
        (
            "mint: request minting one token",
            request(minting, token_uri, Some(signed_in), None),
        ),
        (
            "verify: Verifier::verify of one token",
            Op::Verify { verifier, token },
        ),
        (
            "verify: request through VerifyLayer",
            request(verifying, whoami_uri, None, Some(auth)),
        ),
    ]
    .into_iter()
    .map(|(name, op)| Row {
        name,
        op,
        iters: 0,
        ns: Vec::new(),
    })
    .collect()
}

/// `n` iterations of the row; the thread's CPU time they took.
async fn batch(row: &Row, n: usize) -> Duration {
    match &row.op {
        Op::Request {
            app,
            uri,
            cookie,
            auth: None,
        } => {
            let cookies: Vec<HeaderValue> = cookie.iter().cloned().collect();
            let clock = CpuClock::start();
            drive(app.clone(), uri.clone(), cookies, n).await;
            clock.elapsed()
        }
        Op::Request {
            app,
            uri,
            auth: Some(auth),
            ..
        } => {
            let mut app = app.clone();
            let clock = CpuClock::start();
            for _ in 0..n {
                let mut req = apps::request(uri, None);
                req.headers_mut()
                    .insert(http::header::AUTHORIZATION, auth.clone());
                let svc = ServiceExt::<Request<Body>>::ready(&mut app)
                    .await
                    .expect("infallible");
                std::hint::black_box(svc.call(req).await.expect("infallible"));
            }
            clock.elapsed()
        }
        Op::Verify { verifier, token } => {
            let clock = CpuClock::start();
            for _ in 0..n {
                std::hint::black_box(verifier.verify(token).await.expect("verifies"));
            }
            clock.elapsed()
        }
    }
}

async fn run_rows(opts: &Options) -> Table {
    let mut rows = rows().await;
    for row in &mut rows {
        if opts.smoke {
            row.iters = 64;
            continue;
        }
        let probe = 256;
        let per = batch(row, probe).await.as_secs_f64() / probe as f64;
        row.iters = ((opts.sample_ms as f64 / 1e3 / per) as usize).clamp(256, 2_000_000);
        batch(row, row.iters).await;
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..opts.rounds {
        for i in (1..order.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        for &i in &order {
            let row = &mut rows[i];
            let d = batch(row, row.iters).await;
            row.ns.push(d.as_nanos() as f64 / row.iters as f64);
        }
    }

    let (base, read) = (rows[0].ns.clone(), rows[1].ns.clone());
    let mut table = Table::new(
        "Tokens: mint and verify beside a session read (in process, single-threaded)",
        &[
            "operation",
            "µs/op",
            "÷ session read (B2)",
            "× baseline request",
        ],
    );
    for row in &rows {
        let per_round =
            |of: &[f64]| -> Vec<f64> { row.ns.iter().zip(of).map(|(n, o)| n / o).collect() };
        let us: Vec<f64> = row.ns.iter().map(|n| n / 1e3).collect();
        table.row(vec![
            row.name.into(),
            Stat::of(&us).expect("rounds ≥ 1").show(3),
            Stat::of(&per_round(&read)).expect("rounds ≥ 1").show(2),
            Stat::of(&per_round(&base)).expect("rounds ≥ 1").show(2),
        ]);
    }
    table.notes.push(format!(
        "{} rounds; each cell is median [min–max] over rounds; each ratio is taken to the \
         B2 (or baseline) sample of the same round. Time is the thread's time on a CPU. A \
         mint request includes the session's load and the store's check that it still \
         lives; a verify call is the signature check and the claims, with the key set \
         already cached.",
        opts.rounds
    ));
    table
}
