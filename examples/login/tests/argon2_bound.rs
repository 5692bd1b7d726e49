//! Password checks are bounded: a burst of sign-in attempts cannot make the process hash
//! hundreds of passwords at once (Argon2 takes 19 MiB each). Its own test binary, so that the
//! memory it measures is this test's alone.

mod login_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use login_support::app::config::Config;
use login_support::app::users::{default_concurrent_hashes, Users};
use login_support::serve_with;
use reqwest::StatusCode;

/// The stated bound: the whole test process (server, 600 client connections, the hashes in
/// flight) stays under 128 MiB plus 20 MiB per hashing thread (one Argon2 working memory
/// each, 19 MiB) in peak resident size. With the default of one hashing thread per CPU, a
/// 2-CPU machine's bound is 168 MiB.
fn peak_rss_bound_kib() -> u64 {
    let threads = u64::try_from(default_concurrent_hashes()).unwrap();
    (128 + 20 * threads) * 1024
}

/// Past this the test stops the process at once, instead of letting an unbounded burst take
/// the machine's memory (600 hashes at once would be about 11 GiB).
const ABORT_RSS_KIB: u64 = 1024 * 1024;

/// A field of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_hundred_concurrent_wrong_passwords_all_get_an_answer_within_the_memory_bound() {
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let rss = status_kib("VmRSS:");
                if rss > ABORT_RSS_KIB {
                    eprintln!(
                        "resident size {} MiB: password checks are not bounded; stopping",
                        rss / 1024
                    );
                    std::process::abort();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };

    let store = login_support::app::open_store("memory").await.unwrap();
    // The sign-in rate limit would refuse most of these before any hash: turned off, so that
    // the hashing bound alone is what is tested.
    let config = Config {
        sign_in_per_minute: 0,
        ..Config::default()
    };
    let app = serve_with(config, store, Users::demo()).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let before = status_kib("VmHWM:");
    let posts = (0..600).map(|i| {
        let client = client.clone();
        let url = format!("{}/login", app.base);
        tokio::spawn(async move {
            let res = client
                .post(url)
                .form(&[("username", "alice"), ("password", &format!("wrong-{i}"))])
                .send()
                .await
                .expect("an answer");
            res.status()
        })
    });
    let mut statuses = Vec::new();
    for post in posts.collect::<Vec<_>>() {
        statuses.push(post.await.unwrap());
    }
    done.store(true, Ordering::Relaxed);
    watchdog.join().unwrap();
    let peak = status_kib("VmHWM:");

    assert_eq!(statuses.len(), 600);
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let busy = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert_eq!(
        refused + busy,
        600,
        "every attempt is refused or told to come back: {statuses:?}"
    );
    assert!(refused > 0, "no password was checked at all");
    eprintln!(
        "600 wrong passwords: {refused} checked and refused, {busy} answered 503; peak RSS {} MiB (before the burst {} MiB)",
        peak / 1024,
        before / 1024
    );
    let bound = peak_rss_bound_kib();
    assert!(
        peak < bound,
        "peak resident size {} MiB, over the bound of {} MiB",
        peak / 1024,
        bound / 1024
    );
}
