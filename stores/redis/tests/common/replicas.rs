//! A master, a replica and three Sentinels on free loopback ports, for failover tests.
//!
//! The replica replicates through a small proxy the test controls, so the test can make it
//! lag at the moment the master dies, as a replica across a slow or congested link would:
//! whatever the master acknowledged during the lag never reaches the replica.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{free_port, scratch_dir, RedisServer};

/// The name the Sentinels know the master by.
pub(crate) const MASTER_NAME: &str = "sessions";

/// The servers; all stopped when dropped.
pub(crate) struct ReplicaSet {
    pub(crate) master: RedisServer,
    pub(crate) replica: RedisServer,
    sentinels: Vec<(u16, Child)>,
    hold: Arc<AtomicBool>,
    dir: std::path::PathBuf,
}

impl ReplicaSet {
    /// Starts everything and waits until every Sentinel knows the replica and the other
    /// Sentinels. Skips (outside CI) without `redis-server`.
    pub(crate) async fn start() -> Option<Self> {
        // Replicas sync at once (Redis waits 5 s by default for more replicas to share a
        // diskless sync).
        let fast_sync = || vec!["--repl-diskless-sync-delay".to_owned(), "0".to_owned()];
        let master = RedisServer::start_with(free_port(false), fast_sync())?;
        let hold = Arc::new(AtomicBool::new(false));
        let proxy = proxy(master.port, hold.clone()).await;
        let replica = RedisServer::start_with(
            free_port(false),
            [
                fast_sync(),
                vec!["--replicaof".into(), "127.0.0.1".into(), proxy.to_string()],
            ]
            .concat(),
        )?;
        let dir = scratch_dir("sentinels");
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = free_port(false);
            let conf = dir.join(format!("sentinel-{i}.conf"));
            // A short down-after so the test fails over in about a second. A long
            // failover-timeout, because Sentinel also "fixes" a replica that follows another
            // address than the master's (ours follows the proxy) once that much time has
            // passed, which would bypass the proxy.
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor {MASTER_NAME} 127.0.0.1 {} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} 400\n\
                     sentinel failover-timeout {MASTER_NAME} 30000\n",
                    dir.display(),
                    master.port
                ),
            )
            .expect("write a sentinel config");
            let child = Command::new("redis-server")
                .arg(&conf)
                .args(["--sentinel", "--logfile", ""])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start a sentinel");
            sentinels.push((port, child));
        }
        let set = Self {
            master,
            replica,
            sentinels,
            hold,
            dir,
        };
        set.wait_until(
            Duration::from_secs(30),
            "the sentinels to see everything",
            |s| {
                s.sentinels.iter().all(|(port, _)| {
                    let out = cli(*port, &["sentinel", "master", MASTER_NAME]);
                    field(&out, "num-slaves") == Some("1")
                        && field(&out, "num-other-sentinels") == Some("2")
                }) && s
                    .replica
                    .cli(&["info", "replication"])
                    .contains("master_link_status:up")
            },
        )
        .await;
        Some(set)
    }

    /// The Sentinels' URLs.
    pub(crate) fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|(port, _)| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    /// From now on, what the master sends the replica is held back (and lost if the master
    /// dies), until [`release`](Self::release).
    pub(crate) fn hold_replication(&self) {
        self.hold.store(true, Ordering::SeqCst);
    }

    /// Freezes the master (SIGSTOP): its connections stay open and nothing answers.
    pub(crate) fn freeze_master(&self) {
        self.master.pause();
    }

    /// Kills the master (SIGKILL: no chance to send anything more).
    pub(crate) fn kill_master(&mut self) {
        self.master.stop();
    }

    /// Starts the old master again, empty, on its port, as a replica of the new master (as
    /// its operator would; the Sentinels would convert it too, but only after seconds).
    pub(crate) fn bring_back_old_master(&mut self) {
        self.master.extra = vec![
            "--repl-diskless-sync-delay".into(),
            "0".into(),
            "--replicaof".into(),
            "127.0.0.1".into(),
            self.replica.port.to_string(),
        ];
        self.master.restart();
    }

    /// Whether the promoted replica has a replica of its own, in sync.
    pub(crate) fn new_master_has_a_replica(&self) -> bool {
        self.replica
            .cli(&["info", "replication"])
            .contains("state=online")
    }

    /// Whether every Sentinel now names the replica as the master.
    pub(crate) fn replica_promoted(&self) -> bool {
        let port = self.replica.port.to_string();
        self.sentinels.iter().all(|(p, _)| {
            cli(*p, &["sentinel", "get-master-addr-by-name", MASTER_NAME])
                .lines()
                .nth(1)
                == Some(port.as_str())
        }) && self.replica.cli(&["role"]).starts_with("master")
    }

    /// Waits (polling) until `done`, or panics after `limit`.
    pub(crate) async fn wait_until(
        &self,
        limit: Duration,
        what: &str,
        done: impl Fn(&Self) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ReplicaSet {
    fn drop(&mut self) {
        for (_, child) in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value after `name` in redis-cli's one-item-per-line output of a flat reply.
fn field<'a>(out: &'a str, name: &str) -> Option<&'a str> {
    let mut lines = out.lines();
    while let Some(line) = lines.next() {
        if line == name {
            return lines.next();
        }
    }
    None
}

/// A loopback proxy to the master for the replica's link. While `hold` is set, bytes from
/// the master are kept back; when the master's side closes, whatever was kept back is
/// dropped with it.
async fn proxy(master: u16, hold: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the proxy");
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((replica, _)) = listener.accept().await {
            let Ok(upstream) = TcpStream::connect(("127.0.0.1", master)).await else {
                continue;
            };
            let hold = hold.clone();
            tokio::spawn(async move {
                let (mut replica_read, mut replica_write) = replica.into_split();
                let (mut master_read, mut master_write) = upstream.into_split();
                let acks = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut replica_read, &mut master_write).await;
                });
                let mut buf = vec![0u8; 64 * 1024];
                let mut held = Vec::new();
                loop {
                    match master_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) if hold.load(Ordering::SeqCst) => held.extend_from_slice(&buf[..n]),
                        Ok(n) => {
                            if replica_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                acks.abort();
            });
        }
    });
    port
}
