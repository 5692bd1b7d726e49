//! Benchmarks `session-layer` against a no-session baseline and the crates its users would
//! pick instead, in one run, and checks the project's targets.
//!
//! ```text
//! cargo run --release -p session-layer-bench -- all           # everything: table + target/bench.csv
//! cargo run --release -p session-layer-bench -- all --smoke   # each case a few hundred times (CI)
//! cargo run --release -p session-layer-bench -- inproc --cases B2,B3 --only sl,ts
//! cargo run -p session-layer-bench -- stores --smoke   # the store rows, a few requests each (CI)
//! ```
//!
//! Commands: `all`, `inproc` (single-threaded and 2×64), `single`, `concurrent`, `http`
//! (wrk, B2), `memory` (bytes per session), `scale` (B2 at 1,000 and 1,000,000 sessions),
//! `stores [redis|postgres|sqlite|mysql ...]` (each store beside tower-sessions' store on
//! the same backend and a floor of one raw query: time in process and over HTTP, round trips,
//! commands, statements; part of `all`), `redis` (this crate's Redis store alone: round trips
//! and cost ÷ a raw GET on a private redis-server),
//! `instructions` (per request, by callgrind, for the closest comparisons; part of `all`),
//! `tokens` (minting and verifying one session token beside a session read),
//! `profile <impl> <case> <iters> [single|2x64]` (one row, for callgrind or perf). Internal: `serve`,
//! `mem-child`, `scale-child`, `serve-store`.
//!
//! Options: `--smoke`, `--rounds N` (11), `--sample-ms N` (100), `--http-rounds N` (5),
//! `--http-secs N` (5), `--sessions N` (1,000,000), `--only a,b` (implementations: sl, ts,
//! private-jar, signed-jar, sl-client), `--cases A,B2,...`, `--csv PATH`.

mod alloc;
mod apps;
mod cputime;
mod floor;
mod http_bench;
mod inproc;
mod instructions;
mod memory;
mod redis_bench;
mod report;
mod stores;
mod tokens;

use std::path::PathBuf;

use apps::{Case, Impl};
use inproc::Mode;
use report::{Sink, Table};

/// Command-line options shared by every run.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) smoke: bool,
    pub(crate) rounds: usize,
    pub(crate) sample_ms: u64,
    pub(crate) http_rounds: usize,
    pub(crate) http_secs: u64,
    pub(crate) sessions: usize,
    pub(crate) only: Option<Vec<Impl>>,
    pub(crate) cases: Option<Vec<Case>>,
    pub(crate) csv: PathBuf,
}

impl Options {
    /// Whether the row runs; the baseline always does, since every ratio needs it.
    pub(crate) fn selects(&self, case: Case, imp: Impl) -> bool {
        imp == Impl::Baseline
            || (self.selects_impl(imp) && self.cases.as_ref().is_none_or(|c| c.contains(&case)))
    }

    pub(crate) fn selects_impl(&self, imp: Impl) -> bool {
        self.only.as_ref().is_none_or(|o| o.contains(&imp))
    }
}

fn case_from(label: &str) -> Option<Case> {
    [
        Case::A,
        Case::B1,
        Case::B1c,
        Case::B2,
        Case::B3,
        Case::B4,
        Case::Login,
        Case::Logout,
    ]
    .into_iter()
    .find(|c| c.label().eq_ignore_ascii_case(label))
}

/// Whether `program` can be started (asked `arg`, its version flag); the rows that need it
/// are skipped, with a note, where it cannot.
pub(crate) fn installed(program: &str, arg: &str) -> bool {
    std::process::Command::new(program)
        .arg(arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

fn usage() -> ! {
    eprintln!(
        "{}",
        include_str!("main.rs")
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n")
    );
    std::process::exit(2)
}

fn parse(args: &[String]) -> (String, Vec<String>, Options) {
    let mut opts = Options {
        smoke: false,
        rounds: 11,
        sample_ms: 100,
        http_rounds: 5,
        http_secs: 5,
        sessions: 1_000_000,
        only: None,
        cases: None,
        csv: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench.csv"),
    };
    let mut positional = Vec::new();
    let mut it = args.iter();
    let mut sessions_set = false;
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_else(|| usage());
        let number = |v: String| {
            v.replace('_', "")
                .parse::<usize>()
                .unwrap_or_else(|_| usage())
        };
        match a.as_str() {
            "--smoke" => opts.smoke = true,
            "--rounds" => opts.rounds = number(value()).max(1),
            "--sample-ms" => opts.sample_ms = number(value()) as u64,
            "--http-rounds" => opts.http_rounds = number(value()).max(1),
            "--http-secs" => opts.http_secs = number(value()).max(1) as u64,
            "--sessions" => {
                opts.sessions = number(value()).max(1_000);
                sessions_set = true;
            }
            "--csv" => opts.csv = PathBuf::from(value()),
            "--only" => {
                opts.only = Some(
                    value()
                        .split(',')
                        .map(|k| Impl::from_key(k).unwrap_or_else(|| usage()))
                        .collect(),
                );
            }
            "--cases" => {
                opts.cases = Some(
                    value()
                        .split(',')
                        .map(|k| case_from(k).unwrap_or_else(|| usage()))
                        .collect(),
                );
            }
            "-h" | "--help" => usage(),
            _ if a.starts_with("--") => usage(),
            _ => positional.push(a.clone()),
        }
    }
    if opts.smoke {
        opts.rounds = 1;
        if !sessions_set {
            opts.sessions = 10_000;
        }
    }
    let command = if positional.is_empty() {
        "all".to_owned()
    } else {
        positional.remove(0)
    };
    (command, positional, opts)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest, opts) = parse(&args);
    let imp_arg = |i: usize| {
        rest.get(i)
            .and_then(|k| Impl::from_key(k))
            .unwrap_or_else(|| usage())
    };
    let num_arg = |i: usize| {
        rest.get(i)
            .and_then(|n| n.replace('_', "").parse::<usize>().ok())
            .unwrap_or_else(|| usage())
    };
    match command.as_str() {
        "serve" => return http_bench::serve(imp_arg(0)),
        "serve-store" => return stores::serve(&rest),
        "stores" => {
            println!("{}", machine());
            let mut sink = Sink::default();
            let only = (!rest.is_empty()).then_some(rest.as_slice());
            // Each backend's table is printed as it finishes.
            let _ = stores::run(&opts, only, &mut sink);
            println!("{}", sink.targets_table().render());
            write_csv(&opts, &sink);
            return;
        }
        "mem-child" => return memory::mem_child(imp_arg(0), num_arg(1)),
        "scale-child" => {
            let sizes: Vec<usize> = rest
                .get(1)
                .unwrap_or_else(|| usage())
                .split(',')
                .map(|s| s.parse().unwrap_or_else(|_| usage()))
                .collect();
            return memory::scale_child(imp_arg(0), &sizes, num_arg(2), num_arg(3));
        }
        "profile" => {
            let case = rest
                .get(1)
                .and_then(|c| case_from(c))
                .unwrap_or_else(|| usage());
            let mode = match rest.get(3).map(String::as_str) {
                None | Some("single") => Mode::Single,
                Some("2x64") => Mode::Concurrent,
                Some(_) => usage(),
            };
            return inproc::profile(imp_arg(0), case, num_arg(2), mode);
        }
        "tokens" => {
            println!("{}", machine());
            println!("{}", tokens::run(&opts).render());
            return;
        }
        "redis" => {
            println!("{}", machine());
            let mut sink = Sink::default();
            if let Some(table) = redis_bench::run(&opts) {
                redis_targets(&table, &mut sink);
                println!("{}", table.render());
            }
            println!("{}", sink.targets_table().render());
            return;
        }
        _ => {}
    }

    let (single, concurrent, http, mem, scale) = match command.as_str() {
        "all" => (true, true, true, true, true),
        "inproc" => (true, true, false, false, false),
        "single" => (true, false, false, false, false),
        "concurrent" => (false, true, false, false, false),
        "http" => (false, false, true, false, false),
        "memory" => (false, false, false, true, false),
        "scale" => (false, false, false, false, true),
        "instructions" => (false, false, false, false, false),
        _ => usage(),
    };
    let stores = command == "all";
    // Minutes under valgrind: not part of a smoke run.
    let instructions = command == "instructions" || (command == "all" && !opts.smoke);

    let mut sink = Sink::default();
    let mut tables: Vec<Table> = Vec::new();
    let show = |t: Table, tables: &mut Vec<Table>| {
        println!("{}", t.render());
        tables.push(t);
    };
    println!("{}", machine());
    if single {
        let (t, r) = inproc::run(Mode::Single, &opts, &mut sink);
        single_targets(&r, &mut sink);
        lead_targets(Mode::Single, &r, &mut sink);
        client_side_targets(&r, &mut sink);
        show(t, &mut tables);
    }
    if concurrent {
        let (t, r) = inproc::run(Mode::Concurrent, &opts, &mut sink);
        if let Some(b2) = r.get(&(Case::B2, Impl::SessionLayer)) {
            sink.target(
                "2×64: B2 ÷ baseline",
                "≤ 2.0",
                b2.ratio.show(2),
                Some(b2.ratio.median <= 2.0),
            );
        }
        if let Some(b2) = r.get(&(Case::B2, Impl::Floor)) {
            sink.bound(
                "2×64: B2 ÷ baseline",
                "≤ 2.0",
                b2.ratio.show(2),
                b2.ratio.median <= 2.0,
            );
        }
        lead_targets(Mode::Concurrent, &r, &mut sink);
        show(t, &mut tables);
    }
    if http {
        show(http_bench::run(&opts, &mut sink), &mut tables);
    }
    if mem {
        show(memory::memory(&opts, &mut sink), &mut tables);
    }
    if scale {
        show(memory::scale(&opts, &mut sink), &mut tables);
    }
    if instructions {
        show(instructions::run(&opts, &mut sink), &mut tables);
    }
    if stores {
        // Printed as each backend finishes.
        tables.extend(stores::run(&opts, None, &mut sink));
    }
    show(sink.targets_table(), &mut tables);
    write_csv(&opts, &sink);
}

fn write_csv(opts: &Options, sink: &Sink) {
    if let Some(dir) = opts.csv.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&opts.csv, sink.csv.render()).expect("the CSV is written");
    println!("CSV: {}", opts.csv.display());
}

fn single_targets(r: &inproc::Results, sink: &mut Sink) {
    for (case, goal, limit) in [(Case::B2, "≤ 0.333", 1.0 / 3.0), (Case::B3, "≤ 0.5", 0.5)] {
        let what = format!(
            "single-threaded: {} overhead ÷ tower-sessions' overhead",
            case.label()
        );
        if let Some(v) = r.get(&(case, Impl::SessionLayer)).and_then(|x| x.vs_peer) {
            sink.target(&what, goal, v.show(3), Some(v.median <= limit));
        }
        if let Some(v) = r.get(&(case, Impl::Floor)).and_then(|x| x.vs_peer) {
            sink.bound(&what, goal, v.show(3), v.median <= limit);
        }
    }
}

/// Client-side mode against `PrivateCookieJar` doing the same: reading the counter (B2),
/// incrementing it (B3) and writing a key unread (B4). The ratio is taken round by round, as
/// the rows of one round ran side by side.
fn client_side_targets(r: &inproc::Results, sink: &mut Sink) {
    for (case, what) in [
        (Case::B2, "read (B2)"),
        (Case::B3, "read and write (B3)"),
        (Case::B4, "write unread (B4)"),
    ] {
        let target = format!("single-threaded: client-side {what} time ÷ PrivateCookieJar's");
        if let Some(v) = r.get(&(case, Impl::ClientSide)).and_then(|x| x.vs_jar) {
            sink.target(&target, "< 1.0", v.show(3), Some(v.median < 1.0));
        }
        // A session kept in one cookie that writes unread must still open the cookie (its
        // other keys and deadlines) and reseal it: what the jar does for B3, not for B4.
        if let (Case::B4, Some(b3), Some(b4)) = (
            case,
            r.get(&(Case::B3, Impl::PrivateJar)),
            r.get(&(Case::B4, Impl::PrivateJar)),
        ) {
            let least = b3.ns.median / b4.ns.median;
            sink.bound(
                &target,
                "< 1.0",
                format!("{least:.3} (the jar's own B3 ÷ its B4, medians)"),
                least < 1.0,
            );
        }
    }
}

/// "Lead every row": session-layer faster than tower-sessions in each case.
fn lead_targets(mode: Mode, r: &inproc::Results, sink: &mut Sink) {
    let mut lost = Vec::new();
    let mut won = 0;
    for &(case, imp) in apps::ROWS {
        if imp != Impl::SessionLayer {
            continue;
        }
        if let (Some(a), Some(b)) = (r.get(&(case, imp)), r.get(&(case, Impl::TowerSessions))) {
            if a.ns.median < b.ns.median {
                won += 1;
            } else {
                lost.push(case.label());
            }
        }
    }
    if won + lost.len() > 0 {
        sink.target(
            &format!("{}: faster than tower-sessions in every case", mode.key()),
            "every case",
            if lost.is_empty() {
                format!("{won} of {won}")
            } else {
                format!(
                    "{won} of {}; behind in {}",
                    won + lost.len(),
                    lost.join(", ")
                )
            },
            Some(lost.is_empty()),
        );
    }
}

/// The Redis targets, from the `redis` table's round-trip column.
fn redis_targets(table: &Table, sink: &mut Sink) {
    let trips = |label: &str| {
        table
            .rows
            .iter()
            .find(|r| r[0] == label)
            .and_then(|r| r[2].parse::<f64>().ok())
    };
    for (what, label, goal) in [
        ("Redis: B4 (blind write) round trips", "B4", 1.0),
        (
            "Redis: read whose touch is due, round trips",
            "B2 touch due",
            1.0,
        ),
        ("Redis: read-modify-write (B3) round trips", "B3", 2.0),
        ("Redis: read inside the touch step, round trips", "B2", 1.0),
    ] {
        if let Some(n) = trips(label) {
            sink.target(
                what,
                &format!("= {goal}"),
                format!("{n:.2}"),
                Some((n - goal).abs() < 1e-9),
            );
        }
    }
}

/// The machine and versions, printed above the tables.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "## session-layer benchmarks\n\nMachine: {cpu}, {cores} cores available (shared).\n\
         Build: {} profile.\n",
        if cfg!(debug_assertions) {
            "debug (figures are not comparable to release)"
        } else {
            "release"
        }
    )
}
