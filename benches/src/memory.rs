//! Memory per live session, and how a read's cost changes with the number of live sessions.
//!
//! Both run in child processes of this binary (`mem-child`, `scale-child`), one per
//! implementation, so each starts from a clean heap and its RSS is its own.

use std::process::Command;

use axum::Router;
use http::{HeaderValue, Uri};
use tower::ServiceExt;

use crate::alloc;
use crate::apps::{self, Impl, PAYLOAD};
use crate::inproc::{drive, CpuClock};
use crate::report::{Sink, Stat, Table};
use crate::Options;

const IMPLS: [Impl; 2] = [Impl::SessionLayer, Impl::TowerSessions];

/// The `mem-child` mode: makes `n` sessions each holding the 50-byte value, and prints the
/// growth of RSS and of live heap bytes.
pub(crate) fn mem_child(imp: Impl, n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let app = imp.app().expect("that implementation is not built yet");
        // The first session initializes what every later one shares (lazy statics, tables).
        apps::new_session(&app, "/payload").await;
        let uri = Uri::from_static("/payload");
        let rss0 = alloc::rss_bytes();
        alloc::start();
        for _ in 0..n {
            let res = app
                .clone()
                .oneshot(apps::request(&uri, None))
                .await
                .expect("infallible");
            assert!(
                res.headers().contains_key(http::header::SET_COOKIE),
                "no session was made"
            );
        }
        let heap = alloc::stop().live_bytes;
        let rss = alloc::rss_bytes() as i64 - rss0 as i64;
        println!("rss {rss} heap {heap}");
    });
}

/// Runs `mem-child` for each implementation and tabulates bytes per session.
pub(crate) fn memory(opts: &Options, sink: &mut Sink) -> Table {
    let n = opts.sessions;
    let rounds = if opts.smoke { 1 } else { 3 };
    let mut table = Table::new(
        format!(
            "Memory per live session ({n} sessions, each {} bytes of value)",
            PAYLOAD.len()
        ),
        &[
            "implementation",
            "RSS bytes/session",
            "RSS beyond the payload",
            "heap bytes/session",
            "heap beyond the payload",
        ],
    );
    let exe = std::env::current_exe().expect("the bench binary's path");
    for imp in IMPLS {
        if !opts.selects_impl(imp) {
            continue;
        }
        let (mut rss, mut heap) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let out = Command::new(&exe)
                .args(["mem-child", imp.key(), &n.to_string()])
                .output()
                .expect("the child runs");
            assert!(
                out.status.success(),
                "mem-child failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            let words: Vec<&str> = text.split_whitespace().collect();
            let num = |key: &str| -> f64 {
                let i = words.iter().position(|w| *w == key).expect("a figure");
                words[i + 1].parse().expect("a number")
            };
            rss.push(num("rss") / n as f64);
            heap.push(num("heap") / n as f64);
        }
        let p = PAYLOAD.len() as f64;
        let beyond = |v: &[f64]| Stat::of(&v.iter().map(|x| x - p).collect::<Vec<_>>());
        let (rss_s, heap_s) = (Stat::of(&rss).expect("≥1"), Stat::of(&heap).expect("≥1"));
        let (rss_b, heap_b) = (beyond(&rss).expect("≥1"), beyond(&heap).expect("≥1"));
        sink.csv
            .add("memory", "1M", imp.key(), "rss", "bytes/session", rss_s);
        sink.csv.add(
            "memory",
            "1M",
            imp.key(),
            "rss_beyond_payload",
            "bytes/session",
            rss_b,
        );
        sink.csv
            .add("memory", "1M", imp.key(), "heap", "bytes/session", heap_s);
        sink.csv.add(
            "memory",
            "1M",
            imp.key(),
            "heap_beyond_payload",
            "bytes/session",
            heap_b,
        );
        if imp == Impl::SessionLayer {
            sink.target(
                &format!("MemoryStore: RSS per session beyond the payload, at {n}"),
                "≤ 200 bytes",
                rss_b.show(0),
                Some(rss_b.median <= 200.0),
            );
        }
        table.row(vec![
            imp.name().into(),
            rss_s.show(0),
            rss_b.show(0),
            heap_s.show(0),
            heap_b.show(0),
        ]);
    }
    table.notes.push(format!(
        "Sessions made through each layer's own routes, in a fresh process per figure \
         ({rounds} processes per row; median [min–max]). RSS is the growth of VmRSS; heap is \
         the growth of live bytes requested from the allocator (without its overhead)."
    ));
    table
}

/// How many sessions the "hot" requests of the scale test cycle through.
const HOT: usize = 64;

/// Sessions made for the scale test, with their cookies kept.
async fn populate(imp: Impl, n: usize) -> (Router, Vec<String>) {
    let app = imp.app().expect("that implementation is not built yet");
    let mut cookies = Vec::with_capacity(n);
    for _ in 0..n {
        let c = apps::new_session(&app, "/setup").await;
        cookies.push(c.to_str().expect("ASCII").to_owned());
    }
    (app, cookies)
}

/// Requests that name sessions picked at random, laid out in the order they are sent so the
/// harness itself reads memory sequentially; only the store's accesses are random.
fn picks(cookies: &[String], m: usize, seed: &mut u64) -> Vec<HeaderValue> {
    (0..m)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            let c = &cookies[(*seed % cookies.len() as u64) as usize];
            HeaderValue::from_str(c).expect("a cookie")
        })
        .collect()
}

/// The `scale-child` mode: B2 over random sessions of a store holding each of `sizes`
/// sessions, interleaved with the baseline; prints one line per sample.
pub(crate) fn scale_child(imp: Impl, sizes: &[usize], rounds: usize, m: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let base = Impl::Baseline.app().expect("built");
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut stores = Vec::new();
        for &size in sizes {
            let (app, cookies) = populate(imp, size).await;
            let random = picks(&cookies, m, &mut seed);
            // The same 64 sessions over and over: what the store's size costs when the
            // sessions in use stay in the CPU's caches.
            let hot = picks(&cookies[..HOT.min(cookies.len())], m, &mut seed);
            drop(cookies);
            stores.push((size, app, random, hot));
        }
        let read = Uri::from_static("/read");
        let root = Uri::from_static("/");
        // Warm-up.
        drive(base.clone(), root.clone(), &[], m).await;
        for (_, app, random, hot) in &stores {
            drive(app.clone(), read.clone(), random, m).await;
            drive(app.clone(), read.clone(), hot, m).await;
        }
        for _ in 0..rounds {
            let t = CpuClock::start();
            drive(base.clone(), root.clone(), &[], m).await;
            println!("sample base 0 {}", t.elapsed().as_nanos() as f64 / m as f64);
            for (size, app, random, hot) in &stores {
                for (kind, list) in [("random", random), ("hot", hot)] {
                    let t = CpuClock::start();
                    drive(app.clone(), read.clone(), list, m).await;
                    let ns = t.elapsed().as_nanos() as f64 / m as f64;
                    println!("sample {kind} {size} {ns}");
                }
            }
        }
    });
}

/// Runs `scale-child` for each implementation and tabulates B2 at each store size.
pub(crate) fn scale(opts: &Options, sink: &mut Sink) -> Table {
    let (small, large) = (1_000usize, opts.sessions);
    let (rounds, m) = if opts.smoke {
        (1, 1_000)
    } else {
        (opts.rounds, 100_000)
    };
    let mut table = Table::new(
        format!("B2 with {small} and {large} live sessions"),
        &[
            "implementation",
            "requests name",
            "live sessions",
            "µs/request",
            "× baseline",
            "÷ same at 1,000",
        ],
    );
    let exe = std::env::current_exe().expect("the bench binary's path");
    // The floor's store is a sharded map of the stored JSON text alone: what a lookup
    // among this many sessions costs at least.
    for imp in [IMPLS[0], IMPLS[1], Impl::Floor] {
        if !opts.selects_impl(imp) {
            continue;
        }
        let out = Command::new(&exe)
            .args([
                "scale-child",
                imp.key(),
                &format!("{small},{large}"),
                &rounds.to_string(),
                &m.to_string(),
            ])
            .output()
            .expect("the child runs");
        assert!(
            out.status.success(),
            "scale-child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let series = |kind: &str, size: usize| -> Vec<f64> {
            text.lines()
                .filter_map(|l| {
                    let w: Vec<&str> = l.split_whitespace().collect();
                    (w.len() == 4 && w[0] == "sample" && w[1] == kind && w[2] == size.to_string())
                        .then(|| w[3].parse().ok())
                        .flatten()
                })
                .collect()
        };
        let base = series("base", 0);
        for (kind, what) in [
            ("random", "a random live session"),
            ("hot", "one of the same 64 sessions"),
        ] {
            let at_small = series(kind, small);
            for size in [small, large] {
                let ns = series(kind, size);
                let us = Stat::of(&ns.iter().map(|n| n / 1e3).collect::<Vec<_>>()).expect("≥1");
                let ratio = Stat::of(&ns.iter().zip(&base).map(|(n, b)| n / b).collect::<Vec<_>>())
                    .expect("≥1");
                let growth = Stat::of(
                    &ns.iter()
                        .zip(&at_small)
                        .map(|(n, s)| n / s)
                        .collect::<Vec<_>>(),
                )
                .expect("≥1");
                let case = format!("B2-{kind}@{size}");
                sink.csv
                    .add("scale", &case, imp.key(), "time", "us/req", us);
                sink.csv
                    .add("scale", &case, imp.key(), "ratio", "x baseline", ratio);
                sink.csv
                    .add("scale", &case, imp.key(), "growth", "x same at 1k", growth);
                let target = format!("B2 at {large} ÷ B2 at {small} live sessions, {what}");
                if imp == Impl::SessionLayer && size == large {
                    sink.target(
                        &target,
                        "≤ 1.20",
                        growth.show(2),
                        Some(growth.median <= 1.2),
                    );
                }
                if imp == Impl::Floor && size == large {
                    sink.bound(&target, "≤ 1.20", growth.show(2), growth.median <= 1.2);
                }
                table.row(vec![
                    imp.name().into(),
                    what.into(),
                    size.to_string(),
                    us.show(3),
                    ratio.show(2),
                    growth.show(2),
                ]);
            }
        }
    }
    table.notes.push(format!(
        "Single-threaded, in process, on-CPU time of the thread; each sample is {m} requests, \
         {rounds} rounds interleaved with the baseline (A) in the same process; median \
         [min–max]. \"A random live session\": each request names a session drawn at random \
         from all live ones, so at 1,000,000 the store's table and the session's bytes are \
         mostly not in the CPU caches (main-memory latency, which no in-memory layout \
         avoids entirely). \"One of the same 64 sessions\": requests cycle through 64 \
         sessions while the store holds the rest, which shows what the store's size itself \
         costs."
    ));
    table
}
