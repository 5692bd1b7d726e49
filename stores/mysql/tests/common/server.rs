//! A private MariaDB server in a temporary directory, on a free loopback port, that a test
//! may kill, restart, freeze and thaw without harming any other server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use session_layer::testing::in_ci;
use tempfile::TempDir;

/// The server binary; `MARIADB_BIN` overrides. `mariadb-install-db` and `mariadb-admin`
/// are looked up beside it, then on the `PATH`.
fn server_bin() -> PathBuf {
    PathBuf::from(std::env::var("MARIADB_BIN").unwrap_or_else(|_| "/usr/sbin/mariadbd".to_owned()))
}

fn tool(name: &str) -> PathBuf {
    let beside = server_bin().with_file_name(name);
    if beside.exists() {
        return beside;
    }
    let usr_bin = Path::new("/usr/bin").join(name);
    if usr_bin.exists() {
        usr_bin
    } else {
        PathBuf::from(name)
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A server this test owns. Dropping it kills the server and removes its files.
pub(crate) struct Server {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl Server {
    /// Initializes a data directory and starts a server on it, with a database `sessions`;
    /// `None` (after saying why) when the binaries are missing outside CI. In CI that is a
    /// failure.
    pub(crate) fn start() -> Option<Self> {
        if !server_bin().exists() || !tool("mariadb-install-db").exists() {
            let why = format!(
                "no MariaDB server binaries ({} and mariadb-install-db); install \
                 mariadb-server or set MARIADB_BIN",
                server_bin().display()
            );
            assert!(!in_ci(), "CI=true: {why}");
            eprintln!("skipped: {why}. With CI=true this is a failure.");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("session-layer-mariadb-")
            .tempdir()
            .expect("a temporary directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut install = Command::new(tool("mariadb-install-db"));
        install.args([
            "--no-defaults",
            &format!("--datadir={}", dir.path().join("data").display()),
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]);
        if running_as_root() {
            install.arg("--user=root");
        }
        run(&mut install);
        let mut server = Self {
            dir,
            port,
            child: None,
        };
        server.resume();
        run(server
            .admin("mariadb")
            .args(["-e", "CREATE DATABASE sessions"]));
        Some(server)
    }

    /// The URL of the server's `sessions` database.
    pub(crate) fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/sessions", self.port)
    }

    /// Starts the server (again) on the same port and data, and waits until it answers.
    pub(crate) fn resume(&mut self) {
        let data = self.dir.path().join("data");
        let mut command = Command::new(server_bin());
        command
            .args([
                "--no-defaults".to_owned(),
                format!("--datadir={}", data.display()),
                format!("--port={}", self.port),
                "--bind-address=127.0.0.1".to_owned(),
                format!("--socket={}", self.dir.path().join("sock").display()),
                format!("--pid-file={}", self.dir.path().join("pid").display()),
                format!(
                    "--log-error={}",
                    self.dir.path().join("error.log").display()
                ),
                "--skip-log-bin".to_owned(),
                "--innodb-buffer-pool-size=16M".to_owned(),
                // A killed server keeps every acknowledged commit (they are in the OS's
                // page cache); only a power cut could lose them, which no test makes.
                "--innodb-flush-log-at-trx-commit=2".to_owned(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if running_as_root() {
            command.arg("--user=root");
        }
        self.child = Some(command.spawn().expect("start mariadbd"));
        let started = Instant::now();
        loop {
            let ping = self.admin("mariadb-admin").arg("ping").output();
            if ping.is_ok_and(|o| o.status.success()) {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("mariadbd exited ({status}): {}", self.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "mariadbd did not answer within 60 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the server at once (`SIGKILL`): open connections break, new ones are refused.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (`SIGSTOP`): connections stay open, nothing answers, new ones
    /// are not accepted.
    pub(crate) fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a frozen server (`SIGCONT`).
    pub(crate) fn unpause(&self) {
        self.signal("-CONT");
    }

    /// Sends `signal` to this test's own server, by its PID.
    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
        }
    }

    /// A client tool pointed at this server.
    fn admin(&self, name: &str) -> Command {
        let mut command = Command::new(tool(name));
        command.args([
            "--no-defaults",
            "--protocol=tcp",
            "-h127.0.0.1",
            &format!("-P{}", self.port),
            "-uroot",
        ]);
        command
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.unpause();
        self.stop();
    }
}

fn run(command: &mut Command) {
    let out = command.output().expect("run a MariaDB tool");
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The server's controls for the shared fault tests; `stop` and `restart` block until the
/// server is down or answers again.
impl session_layer_test_support::faults::Server for Server {
    fn stop(&mut self) {
        Server::stop(self);
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
