//! 10,000 concurrent requests over 1,000 sessions on the memory store, with rotations and
//! sign-outs among them: no lost write, no session alive after its sign-out or rotation, no
//! data in another session, no deadlock. The same helper runs on every store crate.

use std::time::Duration;

use session_layer::MemoryStore;
use session_layer_test_support::concurrency::{run_mix, Mix};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_requests_with_rotations_and_sign_outs_lose_nothing() {
    let mix = Mix::default().with_deadline(Duration::from_secs(60));
    let report = run_mix(MemoryStore::default(), &mix).await;
    assert_eq!(report.requests, 10_000);
    assert_eq!(report.writes_verified, report.writes_acknowledged);
    assert!(report.writes_acknowledged > 3_000, "{report}");
    assert_eq!(report.rotations, 200);
    assert_eq!(report.sign_outs, 200);
    println!("hostile: memory store concurrency: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mix_holds_with_other_seeds_and_few_sessions_under_heavy_contention() {
    for seed in 1..=5 {
        let mix = Mix::default()
            .with_sessions(20)
            .with_requests(2_000)
            .with_seed(seed)
            .with_deadline(Duration::from_secs(60));
        let report = run_mix(MemoryStore::default(), &mix).await;
        assert_eq!(report.writes_verified, report.writes_acknowledged);
        println!("hostile: memory store contention (seed {seed}): {report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_requests_while_one_rotates_leave_one_new_id() {
    // Ten sessions of 100 concurrent requests each; in two of them one request rotates.
    let mix = Mix::default().with_sessions(10).with_requests(1_000);
    let report = run_mix(MemoryStore::default(), &mix).await;
    assert_eq!(report.rotations, 2);
    assert_eq!(report.writes_verified, report.writes_acknowledged);
    println!("hostile: memory store, 100 requests racing each rotation: {report}");
}
