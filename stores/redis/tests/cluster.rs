//! The store contract on a three-master Redis Cluster this test starts on free loopback
//! ports and stops at the end. Rotation moves records between slots owned by different
//! masters, and user indexes live in slots of their own. Also what each request costs in
//! round trips there.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use session_layer::testing::{conformance, MockClock};
use session_layer::SessionLayer;
use session_layer_redis::RedisStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_contract_holds_on_a_three_master_cluster() {
    let Some(cluster) = common::RedisCluster::start() else {
        return;
    };
    let store = RedisStore::cluster_builder(cluster.urls())
        .connect()
        .await
        .expect("connect to the cluster");
    // Every case of the contract, from the one list the core keeps.
    conformance::run_all(&store).await;
    // Every master holds some of what the suite wrote: the cases really crossed slots.
    for node in &cluster.nodes {
        let keys: usize = node.cli(&["dbsize"]).trim().parse().unwrap_or(0);
        assert!(keys > 0, "a master holds no keys: the run did not spread");
    }
    drop(store);
    drop(cluster);
}

/// Commands the app sent to the cluster's nodes since the last call, in no particular
/// order (one round trip each): from `MONITOR` on every master, leaving out the commands
/// scripts ran inside Redis, the client's own housekeeping and the test's marks.
struct ClusterMeter {
    inspectors: Vec<redis::aio::MultiplexedConnection>,
    lines: Vec<Arc<Mutex<Vec<String>>>>,
    marks: usize,
}

impl ClusterMeter {
    async fn start(cluster: &common::RedisCluster) -> Self {
        let mut meter = Self {
            inspectors: Vec::new(),
            lines: Vec::new(),
            marks: 0,
        };
        for node in &cluster.nodes {
            let client = redis::Client::open(node.url()).unwrap();
            let monitor = client.get_async_monitor().await.expect("MONITOR");
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = lines.clone();
            tokio::spawn(async move {
                let mut feed = monitor.into_on_message::<String>();
                while let Some(line) = feed.next().await {
                    sink.lock().unwrap().push(line);
                }
            });
            meter.lines.push(lines);
            meter.inspectors.push(node.inspector().await);
        }
        meter.sent().await;
        meter
    }

    async fn sent(&mut self) -> Vec<String> {
        self.marks += 1;
        let mark = format!("end-of-step-{}", self.marks);
        let mut sent = Vec::new();
        for (inspector, lines) in self.inspectors.iter_mut().zip(&self.lines) {
            let _: String = redis::cmd("ECHO")
                .arg(&mark)
                .query_async(inspector)
                .await
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            let taken = loop {
                {
                    let mut lines = lines.lock().unwrap();
                    if let Some(at) = lines.iter().position(|l| l.contains(&mark)) {
                        break lines.drain(..=at).collect::<Vec<_>>();
                    }
                }
                assert!(Instant::now() < deadline, "MONITOR fell silent");
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            sent.extend(
                taken
                    .iter()
                    .filter(|l| !l.contains(" lua]"))
                    .filter_map(|l| l.split_once("] \"").map(|(_, rest)| rest))
                    .filter_map(|rest| rest.split('"').next())
                    .map(str::to_ascii_lowercase)
                    .filter(|name| {
                        !matches!(
                            name.as_str(),
                            "echo" | "cluster" | "ping" | "client" | "readonly" | "info" | "hello"
                        )
                    }),
            );
        }
        sent.sort();
        sent
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_each_request_costs_what_it_costs_on_one_server_but_a_sign_in() {
    let Some(cluster) = common::RedisCluster::start() else {
        return;
    };
    let store = RedisStore::cluster_builder(cluster.urls())
        .connect()
        .await
        .expect("connect to the cluster");
    let clock = MockClock::new();
    let layer = SessionLayer::builder(store)
        .with_plain_http_for_development()
        .with_clock(clock.clone())
        .build()
        .unwrap();
    let client = common::Client::new(common::serve(common::routes().layer(layer)).await);

    // Warm up: every script the steps below use gets loaded on every node it runs on.
    for _ in 0..8 {
        let warm = client.get("/count", None).await.cookie.unwrap();
        client.get("/count", Some(&warm)).await;
        client.post("/set/b/1", Some(&warm)).await;
        let signed_in = client.post("/login/warm", Some(&warm)).await.cookie;
        client.post("/logout", signed_in.as_deref()).await;
    }
    let cookie = client.get("/count", None).await.cookie.unwrap();

    let mut meter = ClusterMeter::start(&cluster).await;
    client.get("/peek", Some(&cookie)).await;
    let read = meter.sent().await;
    client.get("/count", Some(&cookie)).await;
    let read_write = meter.sent().await;
    client.post("/set/b/2", Some(&cookie)).await;
    let blind_write = meter.sent().await;
    clock.advance(std::time::Duration::from_secs(120));
    client.get("/peek", Some(&cookie)).await;
    let read_touch = meter.sent().await;
    client.get("/count", None).await;
    let created = meter.sent().await;
    let signed_in = client.post("/login/alice", Some(&cookie)).await.cookie;
    let sign_in = meter.sent().await;
    let logout = client.post("/logout", signed_in.as_deref()).await;
    let sign_out = meter.sent().await;
    assert_eq!(
        logout.cookie.as_deref(),
        Some(""),
        "logout removes the cookie"
    );

    for (what, sent) in [
        ("read only", &read),
        ("read, then write", &read_write),
        ("write without reading", &blind_write),
        ("read with a touch due", &read_touch),
        ("new session", &created),
        ("sign-in (rotate + set user)", &sign_in),
        ("sign-out", &sign_out),
    ] {
        eprintln!("cluster: {what:30} sent {sent:?}");
    }
    assert_eq!(read, ["evalsha"]);
    assert_eq!(read_write, ["evalsha", "evalsha"]);
    assert_eq!(blind_write, ["evalsha"]);
    assert_eq!(read_touch, ["evalsha"]);
    assert_eq!(created, ["set"]);
    // Take the record out of the old key, index the new key, store it there.
    assert_eq!(sign_in, ["evalsha", "evalsha", "set"]);
    assert_eq!(sign_out, ["del"]);
    drop(cluster);
}
