//! A private PostgreSQL cluster in a temporary directory, on a free port, that a test may
//! stop and start without harming any other server.

use std::path::{Path, PathBuf};
use std::process::Command;

use session_layer::testing::in_ci;
use tempfile::TempDir;

/// Where the server binaries are; `PG_BIN` overrides.
fn bin(name: &str) -> PathBuf {
    let dir = std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".to_owned());
    Path::new(&dir).join(name)
}

/// A cluster this test owns. Dropping it stops the server and removes its files.
pub(crate) struct Cluster {
    dir: TempDir,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    /// Initializes and starts a cluster; `None` (after saying why) when the binaries are
    /// missing outside CI. In CI that is a failure.
    pub(crate) fn start() -> Option<Self> {
        if !bin("initdb").exists() {
            let why = format!(
                "no PostgreSQL server binaries at {}; set PG_BIN",
                bin("initdb").display()
            );
            assert!(!in_ci(), "CI=true: {why}");
            eprintln!("skipped: {why}. With CI=true this is a failure.");
            return None;
        }
        // initdb refuses to run as root: run the server as the `postgres` user then.
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let dir = tempfile::Builder::new()
            .prefix("session-layer-pg-")
            .tempdir()
            .expect("a temporary directory");
        if as_postgres {
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path()));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Self {
            dir,
            port,
            as_postgres,
        };
        run(cluster.command("initdb").args([
            "-D",
            &cluster.data(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]));
        cluster.resume();
        Some(cluster)
    }

    /// The URL of the cluster's `postgres` database.
    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub(crate) fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        run(self.command("pg_ctl").args([
            "-D",
            &self.data(),
            "-l",
            &log.display().to_string(),
            "-o",
            &options,
            "-w",
            "start",
        ]));
    }

    /// Stops the server at once: open connections break, new ones are refused.
    pub(crate) fn stop(&self) {
        run(self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"]));
    }

    /// Freezes the whole server (`SIGSTOP` to the postmaster and every backend it
    /// started): connections stay open, nothing answers, new ones are not accepted.
    pub(crate) fn pause(&self) {
        for pid in self.processes() {
            signal("-STOP", pid);
        }
    }

    /// Thaws a frozen server (`SIGCONT`), children first.
    pub(crate) fn unpause(&self) {
        for pid in self.processes().into_iter().rev() {
            signal("-CONT", pid);
        }
    }

    /// The postmaster's PID (from `postmaster.pid`), then those of its children.
    fn processes(&self) -> Vec<u32> {
        let file = self.dir.path().join("data").join("postmaster.pid");
        let text = std::fs::read_to_string(&file).expect("postmaster.pid of a running server");
        let postmaster: u32 = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("a PID in postmaster.pid");
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(postmaster) {
                pids.push(pid);
            }
        }
        pids
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn command(&self, name: &str) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin(name));
            c
        } else {
            Command::new(bin(name))
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

/// Sends `signal` to one process of this test's own cluster, by its PID.
fn signal(signal: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status();
}

fn run(command: &mut Command) {
    let out = command.output().expect("run a PostgreSQL tool");
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The cluster's controls for the shared fault tests; `stop` and `restart` block until the
/// server is down or answers again.
impl session_layer_test_support::faults::Server for Cluster {
    fn stop(&mut self) {
        Cluster::stop(self);
    }

    fn restart(&mut self) {
        self.resume();
    }

    fn freeze(&mut self) {
        self.pause();
    }

    fn thaw(&mut self) {
        self.unpause();
    }
}
