//! Instructions per request, counted by callgrind: a cost the shared machine's noise does not
//! move, for comparisons too close for the timed rows to settle.
//!
//! Each row runs this binary's `profile` mode under `valgrind --tool=callgrind` twice, with
//! two request counts; the difference divided by the difference in requests is the cost of
//! one request, with the setup (runtime, app, sessions) cancelled out. Valgrind runs SHA-256
//! without the CPU's SHA instructions (about 3,500 instructions where the CPU takes about
//! 50 ns), which weighs on the store-backed rows, whose session IDs are hashed; AES-GCM runs
//! with the CPU's AES instructions on both the client-side and the cookie-jar rows.

use std::process::{Command, Stdio};

use crate::apps::{Case, Impl};
use crate::report::{Sink, Stat, Table};
use crate::Options;

/// Requests of the two runs of each row.
const FEW: usize = 2_000;
const MANY: usize = 12_000;
/// Counts of each row: random keys, nonces and hash seeds move a count from run to run, by
/// up to about 3% on the cookie-jar rows and by less than 0.1% on this crate's.
const REPEATS: usize = 3;

/// The rows counted, in pairs: this crate, then the peer it is compared with.
const PAIRS: &[(Case, Impl, Impl)] = &[
    (Case::B2, Impl::ClientSide, Impl::PrivateJar),
    (Case::B3, Impl::ClientSide, Impl::PrivateJar),
    (Case::B4, Impl::ClientSide, Impl::PrivateJar),
    (Case::B2, Impl::SessionLayer, Impl::TowerSessions),
    (Case::B2, Impl::Floor, Impl::TowerSessions),
    (Case::B3, Impl::SessionLayer, Impl::TowerSessions),
    (Case::B4, Impl::SessionLayer, Impl::TowerSessions),
];

/// Instructions callgrind counted for `requests` requests of one row, setup included.
fn collected(imp: Impl, case: Case, requests: usize) -> u64 {
    let exe = std::env::current_exe().expect("the bench binary's path");
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(exe)
        .args(["profile", imp.key(), case.label(), &requests.to_string()])
        .stdout(Stdio::null())
        .output()
        .expect("valgrind runs");
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines()
        .find_map(|l| l.split("Collected : ").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no instruction count from callgrind:\n{err}"))
}

/// Instructions of one request of a row.
fn per_request(imp: Impl, case: Case) -> f64 {
    let (few, many) = std::thread::scope(|s| {
        let few = s.spawn(|| collected(imp, case, FEW));
        let many = s.spawn(|| collected(imp, case, MANY));
        (
            few.join().expect("callgrind run"),
            many.join().expect("callgrind run"),
        )
    });
    (many as f64 - few as f64) / (MANY - FEW) as f64
}

/// Counts every pair's rows and checks the client-side targets by instructions.
pub(crate) fn run(opts: &Options, sink: &mut Sink) -> Table {
    let mut table = Table::new(
        "Instructions per request (callgrind), single-threaded",
        &[
            "case",
            "implementation",
            "instructions/request",
            "÷ the peer's",
        ],
    );
    if !crate::installed("valgrind", "--version") {
        table.skipped_without("valgrind");
        return table;
    }
    let mut jar = std::collections::HashMap::new();
    for &(case, ours, peer) in PAIRS {
        if !(opts.selects(case, ours) && opts.selects(case, peer)) {
            continue;
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..REPEATS {
            a.push(per_request(ours, case));
            b.push(per_request(peer, case));
        }
        let ratios: Vec<f64> = a.iter().zip(&b).map(|(a, b)| a / b).collect();
        let ratio = Stat::of(&ratios).expect("repeats ≥ 1");
        let (a, b) = (
            Stat::of(&a).expect("repeats ≥ 1"),
            Stat::of(&b).expect("repeats ≥ 1"),
        );
        for (imp, n, r) in [(ours, a, Some(ratio)), (peer, b, None)] {
            sink.csv.add(
                "instructions",
                case.label(),
                imp.key(),
                "instructions",
                "per request",
                n,
            );
            table.row(vec![
                case.label().into(),
                imp.name().into(),
                n.show(0),
                r.map_or_else(String::new, |r| r.show(3)),
            ]);
        }
        if peer == Impl::PrivateJar {
            jar.insert(case, b.median);
        }
        if ours == Impl::ClientSide {
            sink.target(
                &format!(
                    "single-threaded: client-side {} instructions ÷ PrivateCookieJar's",
                    case.label()
                ),
                "< 1.0",
                format!("{} ({:.0} vs {:.0})", ratio.show(3), a.median, b.median),
                Some(ratio.median < 1.0),
            );
        }
        // A one-cookie session that writes unread opens and reseals its cookie, as the jar
        // does for B3 (and not for B4).
        if let (Case::B4, Impl::ClientSide, Some(b3)) = (case, ours, jar.get(&Case::B3)) {
            sink.bound(
                "single-threaded: client-side B4 instructions ÷ PrivateCookieJar's",
                "< 1.0",
                format!(
                    "{:.3} (the jar's own B3 ÷ its B4: {b3:.0} vs {:.0})",
                    b3 / b.median,
                    b.median
                ),
                b3 / b.median < 1.0,
            );
        }
    }
    table.notes.push(format!(
        "Each row's `profile` run under `valgrind --tool=callgrind`, at {FEW} and {MANY} \
         requests; the difference over {} requests is one request's cost, setup excluded. \
         {REPEATS} counts per row, median [min–max]; ratios pair the counts of one repeat. \
         Other work on the machine does not move a count; random keys, nonces and hash \
         seeds move it, by up to about 3% on the cookie-jar rows and by less than 0.1% on \
         this crate's. Valgrind \
         runs SHA-256 without the CPU's SHA instructions (about 3,500 instructions, about \
         50 ns on the CPU), which weighs on the store-backed rows: they hash the session \
         ID, tower-sessions does not. Both client-side and cookie-jar rows run AES-GCM with \
         the CPU's AES instructions.",
        MANY - FEW
    ));
    table
}
