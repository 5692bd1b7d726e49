//! Opening a database file: several instances starting at once on one new file all open and
//! migrate it, and a file the store creates is readable only by its owner.

use std::path::Path;

use session_layer::id::SessionId;
use session_layer::record::Record;
use session_layer::SessionStore;
use session_layer_sqlite::sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use session_layer_sqlite::sqlx::Connection;
use session_layer_sqlite::SqliteStore;
use time::OffsetDateTime;

/// Opens and migrates a store on `path`, then proves it works with one create.
async fn start(path: &Path) -> Result<(), String> {
    let store = SqliteStore::open(path)
        .await
        .map_err(|e| format!("open: {e}"))?;
    store.migrate().await.map_err(|e| format!("migrate: {e}"))?;
    let now = OffsetDateTime::now_utc();
    let record = Record::new(
        now,
        now + time::Duration::hours(1),
        now + time::Duration::hours(2),
    );
    let created = store
        .create(&SessionId::generate().storage_key(), &record)
        .await
        .map_err(|e| format!("create: {e}"))?;
    store.close().await;
    created
        .then_some(())
        .ok_or_else(|| "create refused".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_instances_starting_at_once_on_one_new_file_all_open_and_migrate() {
    const ROUNDS: usize = 20;
    const INSTANCES: usize = 4;
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("sessions.db");
        // Each instance has its own pools, as separate processes would; they start together.
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(INSTANCES));
        let starts = (0..INSTANCES).map(|_| {
            let (path, barrier) = (path.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                start(&path).await
            })
        });
        for (instance, result) in futures_util::future::join_all(starts)
            .await
            .into_iter()
            .enumerate()
        {
            if let Err(e) = result.expect("the task ran") {
                failures.push(format!("round {round}, instance {instance}: {e}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} starts failed:\n{}",
        failures.len(),
        ROUNDS * INSTANCES,
        failures.join("\n")
    );
}

/// The variable that tells [`one_process_opens_the_file_it_is_given`] which file to open.
const CHILD_PATH: &str = "SESSION_LAYER_SQLITE_TEST_OPEN";
/// The variable that tells it when to start (milliseconds since the Unix epoch), so that the
/// processes of one round start together rather than as each finishes loading.
const CHILD_START: &str = "SESSION_LAYER_SQLITE_TEST_START_AT";

fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis()
}

/// Run by [`four_processes_starting_at_once_on_one_new_file_all_open_and_migrate`] in child
/// processes of this test binary; ignored otherwise.
#[tokio::test]
#[ignore = "a child process of another test"]
async fn one_process_opens_the_file_it_is_given() {
    let path = std::env::var(CHILD_PATH).expect("run by the four-processes test");
    let start_at: u128 = std::env::var(CHILD_START)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let wait = start_at.saturating_sub(unix_millis());
    std::thread::sleep(std::time::Duration::from_millis(wait as u64));
    if let Err(e) = start(Path::new(&path)).await {
        panic!("CHILD-FAILED: {e}");
    }
}

#[test]
fn four_processes_starting_at_once_on_one_new_file_all_open_and_migrate() {
    const ROUNDS: usize = 20;
    const PROCESSES: usize = 4;
    let exe = std::env::current_exe().expect("this test binary");
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("sessions.db");
        // Long enough for every child to have loaded and be waiting.
        let start_at = unix_millis() + 400;
        let children: Vec<_> = (0..PROCESSES)
            .map(|_| {
                std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "one_process_opens_the_file_it_is_given",
                        "--ignored",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env(CHILD_PATH, &path)
                    .env(CHILD_START, start_at.to_string())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("start a child process")
            })
            .collect();
        for (process, child) in children.into_iter().enumerate() {
            let out = child.wait_with_output().expect("the child ran");
            if !out.status.success() {
                let text =
                    String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
                let why = text
                    .lines()
                    .find(|l| l.contains("CHILD-FAILED"))
                    .unwrap_or("no reason printed")
                    .to_owned();
                failures.push(format!("round {round}, process {process}: {why}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} starts failed:\n{}",
        failures.len(),
        ROUNDS * PROCESSES,
        failures.join("\n")
    );
}

/// Another process's connection to `path`, in SQLite's default (rollback journal) mode.
async fn other_process(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(
        &SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true),
    )
    .await
    .expect("a connection of another process")
}

#[tokio::test]
async fn migrating_waits_out_a_write_lock_held_past_the_busy_timeout() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("sessions.db");
    let store = SqliteStore::builder()
        .with_busy_timeout(std::time::Duration::from_millis(100))
        .open(&path)
        .await
        .expect("open");
    let mut other = other_process(&path).await;
    let writing = other
        .begin_with("BEGIN IMMEDIATE")
        .await
        .expect("take the write lock");
    let release = async {
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        writing.commit().await.expect("release the write lock");
    };
    let (migrated, ()) = tokio::join!(store.migrate(), release);
    migrated.expect("migrate waits for the lock within the start-up timeout");
}

#[tokio::test]
async fn a_file_locked_past_the_startup_timeout_fails_with_a_timeout_that_says_why() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("sessions.db");
    let store = SqliteStore::builder()
        .with_busy_timeout(std::time::Duration::from_millis(50))
        .with_startup_timeout(std::time::Duration::from_millis(400))
        .open(&path)
        .await
        .expect("open");
    let mut other = other_process(&path).await;
    let writing = other
        .begin_with("BEGIN IMMEDIATE")
        .await
        .expect("take the write lock");
    let started = std::time::Instant::now();
    let err = store
        .migrate()
        .await
        .expect_err("the lock is never released in time");
    assert_eq!(err.kind(), session_layer::StoreErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains("start-up timeout"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "gave up after {:?}",
        started.elapsed()
    );
    drop(writing);
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_database_file_and_its_wal_are_readable_only_by_their_owner() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("sessions.db");
    let store = SqliteStore::open(&path).await.expect("open");
    store.migrate().await.expect("migrate");
    let now = OffsetDateTime::now_utc();
    let record = Record::new(
        now,
        now + time::Duration::hours(1),
        now + time::Duration::hours(2),
    );
    assert!(store
        .create(&SessionId::generate().storage_key(), &record)
        .await
        .expect("create"));
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("the directory") {
        let entry = entry.expect("an entry");
        let mode = entry.metadata().expect("metadata").permissions().mode() & 0o777;
        seen.push((entry.file_name().to_string_lossy().into_owned(), mode));
    }
    seen.sort();
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["sessions.db", "sessions.db-shm", "sessions.db-wal"]);
    for (name, mode) in &seen {
        assert_eq!(*mode, 0o600, "{name} has mode {mode:o}");
    }
    store.close().await;
}

#[cfg(unix)]
#[tokio::test]
async fn an_existing_database_file_keeps_its_permissions() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("sessions.db");
    drop(other_process(&path).await);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    start(&path).await.expect("open an existing file");
    let mode = std::fs::metadata(&path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o640);
}
