//! In-process runs through `tower::Service`: single-threaded, and 2 worker threads driving
//! 64 concurrent tasks.
//!
//! Rows are interleaved: each round takes one sample of every row (in a shuffled order), so
//! the noise of a shared machine hits the baseline and the rows alike, and each row's ratio
//! is taken to the baseline sample of its own round.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use http::{HeaderValue, Request, Uri};
use http_body_util::BodyExt as _;
use tower::{Service, ServiceExt};

use crate::alloc;
use crate::apps::{self, Case, Impl, Need, ROWS};
use crate::report::{Sink, Stat, Table};
use crate::Options;

/// How requests are driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One thread, one request at a time.
    Single,
    /// Two worker threads, 64 tasks each sending requests back to back.
    Concurrent,
}

impl Mode {
    fn tasks(self) -> usize {
        match self {
            Mode::Single => 1,
            Mode::Concurrent => 64,
        }
    }

    pub(crate) fn title(self) -> &'static str {
        match self {
            Mode::Single => "In process, single-threaded",
            Mode::Concurrent => "In process, 2 worker threads × 64 tasks",
        }
    }

    pub(crate) fn key(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Concurrent => "2x64",
        }
    }

    fn runtime(self) -> tokio::runtime::Runtime {
        match self {
            Mode::Single => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            Mode::Concurrent => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build(),
        }
        .expect("a runtime")
    }
}

/// The results of one row, for the target checks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowResult {
    pub(crate) ns: Stat,
    pub(crate) ratio: Stat,
    /// This row's overhead over the baseline divided by tower-sessions' (same case, round by
    /// round). Only on session-layer rows.
    pub(crate) vs_peer: Option<Stat>,
    /// This row's time divided by `PrivateCookieJar`'s (same case, round by round). Only on
    /// client-side rows.
    pub(crate) vs_jar: Option<Stat>,
}

pub(crate) type Results = HashMap<(Case, Impl), RowResult>;

struct Entry {
    case: Case,
    imp: Impl,
    app: Router,
    /// One session per task, for the cases that reuse a session.
    sessions: Vec<HeaderValue>,
    iters: usize,
    ns: Vec<f64>,
    allocs: Option<f64>,
}

/// Runs every selected row in `mode`; returns the table and the per-row results.
pub(crate) fn run(mode: Mode, opts: &Options, sink: &mut Sink) -> (Table, Results) {
    let rt = mode.runtime();
    rt.block_on(run_rows(mode, opts, sink))
}

async fn run_rows(mode: Mode, opts: &Options, sink: &mut Sink) -> (Table, Results) {
    let tasks = mode.tasks();
    let mut entries = Vec::new();
    let mut missing = Vec::new();
    for &(case, imp) in ROWS {
        if !opts.selects(case, imp) {
            continue;
        }
        let Some(app) = imp.app() else {
            missing.push((case, imp));
            continue;
        };
        let mut sessions = Vec::new();
        if case.need() == Need::Session {
            for _ in 0..tasks {
                sessions.push(apps::new_session(&app, "/setup").await);
            }
        }
        check(case, imp, &app, sessions.first()).await;
        let allocs = if mode == Mode::Single {
            Some(count_allocs(case, &app, &sessions).await)
        } else {
            None
        };
        entries.push(Entry {
            case,
            imp,
            app,
            sessions,
            iters: 0,
            ns: Vec::new(),
            allocs,
        });
    }

    // Calibrate each row to about `sample_ms` per sample, warming it up on the way.
    for e in &mut entries {
        if opts.smoke {
            e.iters = 320;
            continue;
        }
        let (d, n) = batch(e, 2_048, tasks).await;
        let per = d.as_secs_f64() / n as f64;
        let want = (opts.sample_ms as f64 / 1e3 / per) as usize;
        e.iters = want.clamp(2_048, 4_000_000).next_multiple_of(tasks);
        batch(e, e.iters, tasks).await;
    }

    let mut order: Vec<usize> = (0..entries.len()).collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..opts.rounds {
        shuffle(&mut order, &mut seed);
        for &i in &order {
            let e = &mut entries[i];
            let (d, n) = batch(e, e.iters, tasks).await;
            e.ns.push(d.as_nanos() as f64 / n as f64);
            if e.case.need() == Need::Fresh {
                // Login and logout rows leave a session per request in their store; start
                // each sample from an empty one, so no row's leftovers (hundreds of
                // thousands of sessions on the heap) slow the rows measured after it.
                e.app = e.imp.app().expect("built once already");
            }
        }
    }

    let base = entries
        .iter()
        .find(|e| e.imp == Impl::Baseline)
        .map(|e| e.ns.clone())
        .expect("the baseline row always runs");
    // Each round's sample of a peer, by case, to pair with this crate's rows.
    let samples_of = |imp: Impl| -> HashMap<Case, Vec<f64>> {
        entries
            .iter()
            .filter(|e| e.imp == imp)
            .map(|e| (e.case, e.ns.clone()))
            .collect()
    };
    let (peer, jar) = (
        samples_of(Impl::TowerSessions),
        samples_of(Impl::PrivateJar),
    );

    let mut table = Table::new(
        mode.title(),
        &[
            "case",
            "implementation",
            "µs/request",
            "× baseline",
            "overhead µs",
            "overhead ÷ tower-sessions'",
            "allocs/req",
        ],
    );
    let mut results = Results::new();
    for &(case, imp) in ROWS {
        if !opts.selects(case, imp) {
            continue;
        }
        let Some(e) = entries.iter().find(|e| e.case == case && e.imp == imp) else {
            if missing.contains(&(case, imp)) {
                table.row(vec![
                    case.label().into(),
                    imp.name().into(),
                    "not built yet".into(),
                ]);
            }
            continue;
        };
        let us: Vec<f64> = e.ns.iter().map(|n| n / 1e3).collect();
        let ratio: Vec<f64> = e.ns.iter().zip(&base).map(|(n, b)| n / b).collect();
        let over: Vec<f64> = e.ns.iter().zip(&base).map(|(n, b)| (n - b) / 1e3).collect();
        let vs_peer = matches!(
            imp,
            Impl::SessionLayer | Impl::SessionLayerArc | Impl::SessionLayerWrapped | Impl::Floor
        )
        .then(|| peer.get(&case))
        .flatten()
        .and_then(|p| {
            let v: Vec<f64> =
                e.ns.iter()
                    .zip(p)
                    .zip(&base)
                    .map(|((n, p), b)| (n - b) / (p - b))
                    .collect();
            Stat::of(&v)
        });
        let vs_jar = (imp == Impl::ClientSide)
            .then(|| jar.get(&case))
            .flatten()
            .and_then(|j| {
                let v: Vec<f64> = e.ns.iter().zip(j).map(|(n, j)| n / j).collect();
                Stat::of(&v)
            });
        let (us_s, ratio_s, over_s) = (
            Stat::of(&us).expect("rounds ≥ 1"),
            Stat::of(&ratio).expect("rounds ≥ 1"),
            Stat::of(&over).expect("rounds ≥ 1"),
        );
        let section = format!("inproc-{}", mode.key());
        sink.csv
            .add(&section, case.label(), imp.key(), "time", "us/req", us_s);
        sink.csv.add(
            &section,
            case.label(),
            imp.key(),
            "ratio",
            "x baseline",
            ratio_s,
        );
        if let Some(v) = vs_peer {
            sink.csv.add(
                &section,
                case.label(),
                imp.key(),
                "overhead_vs_ts",
                "fraction",
                v,
            );
        }
        table.row(vec![
            case.label().into(),
            imp.name().into(),
            us_s.show(3),
            ratio_s.show(2),
            if imp == Impl::Baseline {
                "—".into()
            } else {
                over_s.show(3)
            },
            vs_peer.map_or_else(String::new, |v| v.show(2)),
            e.allocs.map_or_else(String::new, |a| format!("{a:.1}")),
        ]);
        results.insert(
            (case, imp),
            RowResult {
                ns: Stat::of(&e.ns).expect("rounds ≥ 1"),
                ratio: ratio_s,
                vs_peer,
                vs_jar,
            },
        );
    }
    table.notes.push(format!(
        "{} rounds; each cell is median [min–max] over rounds; ratios and overheads are taken \
         to the baseline sample of the same round. {} Cases: {}.",
        opts.rounds,
        match mode {
            Mode::Single =>
                "Time is the thread's time on a CPU (CLOCK_THREAD_CPUTIME_ID), so \
                             preemption by other work on the shared machine is left out.",
            Mode::Concurrent => "Time is wall-clock time divided by requests (throughput).",
        },
        [
            Case::A,
            Case::B1,
            Case::B1c,
            Case::B2,
            Case::B3,
            Case::B4,
            Case::Login,
            Case::Logout
        ]
        .iter()
        .map(|c| format!("{} = {}", c.label(), c.what()))
        .collect::<Vec<_>>()
        .join("; ")
    ));
    (table, results)
}

/// Fisher–Yates with a xorshift generator: a different row order every round, the same on
/// every run.
fn shuffle(v: &mut [usize], seed: &mut u64) {
    for i in (1..v.len()).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let j = (*seed % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// The cookies one batch's requests carry: per task, the list each task cycles through.
async fn cookies_for(e: &Entry, iters: usize, tasks: usize) -> Vec<Vec<HeaderValue>> {
    match e.case.need() {
        Need::Nothing => vec![Vec::new(); tasks],
        Need::Session => e.sessions.iter().map(|c| vec![c.clone()]).collect(),
        Need::Fresh => {
            let per = iters / tasks;
            let mut out = Vec::with_capacity(tasks);
            for _ in 0..tasks {
                let mut list = Vec::with_capacity(per);
                for _ in 0..per {
                    list.push(apps::new_session(&e.app, "/setup").await);
                }
                out.push(list);
            }
            out
        }
    }
}

/// Sends `iters` requests of the row's case, split over `tasks` tasks; returns the wall time
/// and the number of requests sent. Fresh sessions are made before the clock starts.
///
/// Single-threaded, the time is the thread's time on the CPU rather than the wall clock, so
/// other work on a shared machine that preempts the thread does not count.
async fn batch(e: &Entry, iters: usize, tasks: usize) -> (Duration, usize) {
    let per = iters / tasks;
    let cookies = cookies_for(e, iters, tasks).await;
    let uri = Uri::from_static(e.case.path());
    if tasks == 1 {
        let cookies = cookies.into_iter().next().unwrap_or_default();
        let clock = CpuClock::start();
        let cookies = drive(e.app.clone(), uri, cookies, per).await;
        let elapsed = clock.elapsed();
        drop(cookies);
        return (elapsed, per);
    }
    let start = Instant::now();
    let handles: Vec<_> = cookies
        .into_iter()
        .map(|c| tokio::spawn(drive(e.app.clone(), uri.clone(), c, per)))
        .collect();
    let mut done = Vec::with_capacity(tasks);
    for h in handles {
        done.push(h.await.expect("a bench task panicked"));
    }
    let elapsed = start.elapsed();
    drop(done);
    (elapsed, per * tasks)
}

/// Time this thread spends on a CPU (`CLOCK_THREAD_CPUTIME_ID`), falling back to the wall
/// clock where that clock is missing.
pub(crate) struct CpuClock {
    wall: Instant,
    cpu: Option<Duration>,
}

impl CpuClock {
    pub(crate) fn start() -> CpuClock {
        CpuClock {
            cpu: crate::cputime::thread(),
            wall: Instant::now(),
        }
    }

    pub(crate) fn elapsed(&self) -> Duration {
        match (self.cpu, crate::cputime::thread()) {
            (Some(a), Some(b)) => b - a,
            _ => self.wall.elapsed(),
        }
    }
}

/// One task's loop: `n` requests back to back, cycling through `cookies`. Gives the
/// cookies back, so freeing them happens after the clock stops.
pub(crate) async fn drive<C: AsRef<[HeaderValue]>>(
    mut app: Router,
    uri: Uri,
    cookies: C,
    n: usize,
) -> C {
    let list = cookies.as_ref();
    for i in 0..n {
        let cookie = (!list.is_empty()).then(|| &list[i % list.len()]);
        let req = apps::request(&uri, cookie);
        let svc = ServiceExt::<Request<Body>>::ready(&mut app)
            .await
            .expect("infallible");
        let res = svc.call(req).await.expect("infallible");
        std::hint::black_box(res);
    }
    cookies
}

/// Allocator calls per request, over 256 requests after a warm-up.
async fn count_allocs(case: Case, app: &Router, sessions: &[HeaderValue]) -> f64 {
    const N: usize = 256;
    let e = Entry {
        case,
        imp: Impl::Baseline,
        app: app.clone(),
        sessions: sessions.iter().take(1).cloned().collect(),
        iters: N,
        ns: Vec::new(),
        allocs: None,
    };
    batch(&e, N, 1).await;
    let cookies = cookies_for(&e, N, 1).await.pop().unwrap_or_default();
    let uri = Uri::from_static(case.path());
    alloc::start();
    drive(app.clone(), uri, cookies, N).await;
    alloc::stop().calls as f64 / N as f64
}

/// Makes sure the row does what its case says before timing it: a wrong handler or a
/// broken store must not produce a fast, meaningless number.
async fn check(case: Case, imp: Impl, app: &Router, session: Option<&HeaderValue>) {
    for round in 1..=3u64 {
        let fresh;
        let cookie = match case.need() {
            Need::Nothing => None,
            Need::Session => session,
            Need::Fresh => {
                fresh = apps::new_session(app, "/setup").await;
                Some(&fresh)
            }
        };
        let res = app
            .clone()
            .oneshot(apps::request(&Uri::from_static(case.path()), cookie))
            .await
            .expect("infallible");
        let status = res.status();
        let sets_cookie = res.headers().contains_key(http::header::SET_COOKIE);
        let body = res.into_body().collect().await.expect("a body").to_bytes();
        let what = format!("{} on {}", case.label(), imp.name());
        assert!(status.is_success(), "{what}: status {status}");
        match case {
            Case::A | Case::B1 | Case::B1c => {
                assert!(
                    !sets_cookie,
                    "{what}: a handler that ignores the session set a cookie"
                );
            }
            Case::B2 => {
                assert_eq!(&body[..], b"7", "{what}: wrong counter");
                assert!(!sets_cookie, "{what}: a read set a cookie");
            }
            Case::B3 => {
                // A cookie-held counter comes back with the request: the client sends the
                // same cookie every time, so every request sees 7.
                let want = if imp.keeps_state_in_cookie() {
                    8
                } else {
                    7 + round
                }
                .to_string();
                assert_eq!(&body[..], want.as_bytes(), "{what}: wrong counter");
            }
            Case::B4 => {}
            Case::Login | Case::Logout => {
                assert!(sets_cookie, "{what}: no Set-Cookie");
            }
        }
    }
}

/// Runs one row for `iters` requests, for profilers (`valgrind --tool=callgrind`, `perf`).
pub(crate) fn profile(imp: Impl, case: Case, iters: usize, mode: Mode) {
    let rt = mode.runtime();
    rt.block_on(async {
        let app = imp.app().expect("that implementation is not built yet");
        let mut sessions = Vec::new();
        if case.need() == Need::Session {
            for _ in 0..mode.tasks() {
                sessions.push(apps::new_session(&app, "/setup").await);
            }
        }
        let e = Entry {
            case,
            imp,
            app,
            sessions,
            iters,
            ns: Vec::new(),
            allocs: None,
        };
        let (d, n) = batch(&e, iters, mode.tasks()).await;
        eprintln!(
            "{} on {}: {n} requests, {:.3} µs each",
            case.label(),
            imp.name(),
            d.as_secs_f64() * 1e6 / n as f64
        );
    });
}
