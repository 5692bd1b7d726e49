//! Over loopback HTTP: each implementation is served by its own process (this binary's
//! `serve` mode) and loaded by `wrk`, one server at a time, rounds interleaved.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::apps::{self, Impl};
use crate::report::{Sink, Stat, Table};
use crate::Options;

/// Sessions each server makes at start, one per wrk connection.
const CONNECTIONS: usize = 64;

/// The `serve` mode: makes `CONNECTIONS` sessions, prints their cookies and the port, then
/// serves until killed.
pub(crate) fn serve(imp: Impl) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let app = imp.app().expect("that implementation is not built yet");
        // The baseline gets this crate's cookies: the requests a browser holding a session
        // sends, whether or not the app reads the session.
        let issuer = if imp == Impl::Baseline {
            Impl::SessionLayer.app().expect("this crate is built")
        } else {
            app.clone()
        };
        for _ in 0..CONNECTIONS {
            let cookie = apps::new_session(&issuer, "/setup").await;
            println!("cookie {}", cookie.to_str().expect("ASCII"));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        println!("port {}", listener.local_addr().expect("bound").port());
        println!("ready");
        std::io::stdout().flush().expect("stdout");
        axum::serve(listener, app).await.expect("serving");
    });
}

struct Server {
    imp: Impl,
    /// Whether wrk sends B2's requests (a session cookie, `/read`) or a bare `GET /`.
    b2_requests: bool,
    child: Child,
    port: u16,
    script: PathBuf,
    path: &'static str,
    rps: Vec<f64>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.script);
    }
}

fn start(imp: Impl, b2_requests: bool) -> Server {
    let exe = std::env::current_exe().expect("the bench binary's path");
    let mut child = Command::new(exe)
        .args(["serve", imp.key()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the server process starts");
    let mut cookies = Vec::new();
    let mut port = 0;
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("server output");
        if let Some(c) = line.strip_prefix("cookie ") {
            cookies.push(c.to_owned());
        } else if let Some(p) = line.strip_prefix("port ") {
            port = p.parse().expect("a port");
        } else if line == "ready" {
            break;
        }
    }
    assert!(port != 0, "the {} server did not start", imp.name());
    if !b2_requests {
        cookies.clear();
    }
    let path = if b2_requests { "/read" } else { "/" };
    // One request per connection, formatted once: wrk cycles through the sessions.
    let list: Vec<String> = if cookies.is_empty() {
        vec!["wrk.format(\"GET\", PATH, {})".into()]
    } else {
        cookies
            .iter()
            .map(|c| format!("wrk.format(\"GET\", PATH, {{[\"Cookie\"] = \"{c}\"}})"))
            .collect()
    };
    let script = std::env::temp_dir().join(format!(
        "session-layer-bench-{}-{}.lua",
        std::process::id(),
        imp.key()
    ));
    let lua = format!(
        "PATH = \"{path}\"\nlocal reqs = {{}}\nlocal i = 0\n\
         init = function(args)\n  reqs = {{ {} }}\nend\n\
         request = function()\n  i = i % #reqs + 1\n  return reqs[i]\nend\n",
        list.join(",\n    ")
    );
    std::fs::write(&script, lua).expect("the wrk script");
    if let Some(c) = cookies.first() {
        let body = get(port, path, Some(c));
        assert_eq!(
            body,
            "7",
            "the {} server does not read the session",
            imp.name()
        );
    }
    Server {
        imp,
        b2_requests,
        child,
        port,
        script,
        path,
        rps: Vec::new(),
    }
}

/// One plain HTTP/1.1 GET over a fresh connection; returns the body.
fn get(port: u16, path: &str, cookie: Option<&str>) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("the server accepts");
    let cookie = cookie.map_or_else(String::new, |c| format!("Cookie: {c}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{cookie}Connection: close\r\n\r\n"
    )
    .expect("request sent");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("a response");
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "unexpected response: {out}"
    );
    out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned()
}

fn wrk(server: &Server, secs: u64) -> f64 {
    let out = Command::new("wrk")
        .args(["-t1", "-c64", &format!("-d{secs}s"), "-s"])
        .arg(&server.script)
        .arg(format!("http://127.0.0.1:{}{}", server.port, server.path))
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("Non-2xx"),
        "{} answered errors under load:\n{text}",
        server.imp.name()
    );
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"))
}

/// Runs B2 over HTTP for the baseline, this crate and tower-sessions.
pub(crate) fn run(opts: &Options, sink: &mut Sink) -> Table {
    let mut table = Table::new(
        "Over loopback HTTP with wrk (B2: read a counter)",
        &[
            "implementation",
            "requests/s",
            "× baseline throughput",
            "µs/request",
        ],
    );
    if !crate::installed("wrk", "-v") {
        table.skipped_without("wrk");
        return table;
    }
    let (rounds, secs) = if opts.smoke {
        (1, 1)
    } else {
        (opts.http_rounds, opts.http_secs)
    };
    // The first server is the baseline every ratio is taken to: the same requests as the
    // session rows, served with no session layer. The second shows what the requests' own
    // cookie costs over HTTP: a bare `GET /`, as the in-process baseline (A).
    let mut servers: Vec<Server> = [
        (Impl::Baseline, true),
        (Impl::Baseline, false),
        (Impl::SessionLayer, true),
        (Impl::TowerSessions, true),
        (Impl::Floor, true),
    ]
    .into_iter()
    .filter(|(i, _)| *i == Impl::Baseline || opts.selects_impl(*i))
    .map(|(i, b2)| start(i, b2))
    .collect();
    if !opts.smoke {
        for s in &servers {
            wrk(s, 1);
        }
    }
    let n = servers.len();
    for round in 0..rounds {
        for k in 0..n {
            let s = &mut servers[(round + k) % n];
            let rps = wrk(s, secs);
            s.rps.push(rps);
        }
    }
    let base = servers[0].rps.clone();
    let mut against_bare = None;
    for s in &servers {
        let rps = Stat::of(&s.rps).expect("rounds ≥ 1");
        let ratio: Vec<f64> = s.rps.iter().zip(&base).map(|(r, b)| r / b).collect();
        let ratio = Stat::of(&ratio).expect("rounds ≥ 1");
        let us: Vec<f64> = s.rps.iter().map(|r| 1e6 / r).collect();
        let us = Stat::of(&us).expect("rounds ≥ 1");
        let key = if s.b2_requests {
            s.imp.key()
        } else {
            "baseline-no-cookie"
        };
        sink.csv.add("http", "B2", key, "throughput", "req/s", rps);
        sink.csv
            .add("http", "B2", key, "ratio", "x baseline", ratio);
        if s.imp == Impl::Floor {
            sink.bound(
                "HTTP: B2 throughput ÷ baseline's (the same requests, no session layer)",
                "≥ 0.92",
                ratio.show(3),
                ratio.median >= 0.92,
            );
        }
        if s.imp == Impl::SessionLayer {
            sink.target(
                "HTTP: B2 throughput ÷ baseline's (the same requests, no session layer)",
                "≥ 0.92",
                ratio.show(3),
                Some(ratio.median >= 0.92),
            );
            // The same figure against a baseline whose requests carry no cookie, as this
            // table measured before (the cookie's bytes then count against the layer).
            against_bare = servers.iter().find(|s| !s.b2_requests).map(|b| {
                let r: Vec<f64> = s.rps.iter().zip(&b.rps).map(|(r, b)| r / b).collect();
                Stat::of(&r).expect("rounds ≥ 1")
            });
        }
        table.row(vec![
            match (s.imp, s.b2_requests) {
                (Impl::Baseline, true) => "baseline: B2's requests, no layer".into(),
                (Impl::Baseline, false) => "baseline: `GET /`, no cookie".into(),
                _ => s.imp.name().into(),
            },
            rps.show(0),
            ratio.show(3),
            us.show(2),
        ]);
    }
    table.notes.push(format!(
        "Each server is its own process (2 tokio workers); `wrk -t1 -c64 -d{secs}s`, 64 \
         connections each with its own session, {rounds} rounds interleaved; median [min–max]. \
         Ratios are to the first baseline: the same requests as the session rows (a session \
         cookie of this crate, `GET /read`, answered \"7\"), served with no session layer. \
         The second baseline is a bare `GET /` with no cookie."
    ));
    if let Some(bare) = against_bare {
        table.notes.push(format!(
            "Against the second baseline, session-layer keeps {} of its throughput.",
            bare.show(3)
        ));
    }
    table
}
