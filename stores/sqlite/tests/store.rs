//! The SQLite store's own promises: migrations, the table a DBA sees, WAL mode, locks held
//! by other processes, the cleanup task and the indexes its queries use.

mod common;

use session_layer_test_support::StoreExt as _;
use std::time::{Duration, Instant};

use common::TempStore;
use serde_json::json;
use session_layer::id::{SessionId, StorageKey};
use session_layer::record::{Change, Record};
use session_layer::{SessionStore, StoreErrorKind};
use session_layer_sqlite::sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use session_layer_sqlite::sqlx::{self, Connection};
use session_layer_sqlite::SqliteStore;
use time::OffsetDateTime;

fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_millisecond(t.millisecond())
        .expect("whole milliseconds")
}

fn key() -> StorageKey {
    SessionId::generate().storage_key()
}

fn live_record(now: OffsetDateTime) -> Record {
    Record::new(
        now,
        now + time::Duration::hours(1),
        now + time::Duration::hours(2),
    )
}

fn expired_record(now: OffsetDateTime) -> Record {
    Record::new(
        now - time::Duration::hours(2),
        now - time::Duration::hours(1),
        now + time::Duration::hours(1),
    )
}

/// Another connection to the same file, as another process would open it.
async fn other_process(t: &TempStore) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&t.path))
        .await
        .expect("a second connection")
}

async fn count_present(t: &TempStore, keys: &[StorageKey]) -> usize {
    let mut conn = other_process(t).await;
    let mut n = 0;
    for k in keys {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM sessions WHERE key = ?1")
            .bind(&k.as_bytes()[..])
            .fetch_optional(&mut conn)
            .await
            .expect("query");
        n += usize::from(found.is_some());
    }
    n
}

#[tokio::test]
async fn migrations_build_a_readable_strict_table_once_in_wal_mode() {
    let t = TempStore::new().await;
    // Another process starting on the same file, and this one again: nothing reapplied.
    let second = SqliteStore::open(&t.path).await.expect("open again");
    let (a, b) = tokio::join!(t.store.migrate(), second.migrate());
    a.expect("migrate again");
    b.expect("migrate from a second store");

    let mut conn = other_process(&t).await;
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM sessions_migrations")
        .fetch_all(&mut conn)
        .await
        .expect("the ledger");
    assert_eq!(versions, vec![1, 2]);
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .expect("journal mode");
    assert_eq!(mode, "wal");

    let columns: Vec<(String, String)> =
        sqlx::query_as("SELECT name, type FROM pragma_table_xinfo('sessions') ORDER BY cid")
            .fetch_all(&mut conn)
            .await
            .expect("columns");
    let columns: Vec<(&str, &str)> = columns
        .iter()
        .map(|(c, t)| (c.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        columns,
        [
            ("key", "BLOB"),
            ("user_id", "TEXT"),
            ("created", "TEXT"),
            ("last_seen", "TEXT"),
            ("idle_deadline", "TEXT"),
            ("absolute_deadline", "TEXT"),
            ("expires", "TEXT"),
            ("persistent", "INTEGER"),
            ("data", "TEXT"),
            ("format", "INTEGER"),
            ("idle_timeout_ms", "INTEGER"),
        ]
    );
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sessions' \
         AND name NOT LIKE 'sqlite_autoindex%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .expect("indexes");
    assert_eq!(indexes, ["sessions_expires_idx", "sessions_user_id_idx"]);
}

/// The schema of the first release, as its migration left it: what an upgrade starts from.
const SCHEMA_1: &str = r#"
CREATE TABLE "sessions_migrations" (version INTEGER PRIMARY KEY, description TEXT NOT NULL,
    applied_at TEXT NOT NULL) STRICT;
INSERT INTO "sessions_migrations" VALUES (1, 'create the sessions table and its expiry and per-user indexes', '2026-01-01 00:00:00.000');
CREATE TABLE "sessions" (
    key               BLOB    NOT NULL PRIMARY KEY CHECK (length(key) = 32),
    user_id           TEXT,
    created           TEXT    NOT NULL,
    last_seen         TEXT    NOT NULL,
    idle_deadline     TEXT    NOT NULL,
    absolute_deadline TEXT    NOT NULL,
    expires           TEXT    GENERATED ALWAYS AS (min(idle_deadline, absolute_deadline)) STORED,
    persistent        INTEGER NOT NULL DEFAULT 0 CHECK (persistent IN (0, 1)),
    data              TEXT    NOT NULL DEFAULT '{}' CHECK (json_type(data) = 'object'),
    format            INTEGER NOT NULL DEFAULT 1
) STRICT;
CREATE INDEX "sessions_expires_idx" ON "sessions" (expires);
CREATE INDEX "sessions_user_id_idx" ON "sessions" (user_id) WHERE user_id IS NOT NULL;
"#;

#[tokio::test]
async fn an_upgrade_from_the_first_schema_keeps_live_sessions_and_adds_the_idle_timeout() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("sessions.db");
    let (t, k) = (now(), key());
    {
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .expect("a new file");
        sqlx::raw_sql(SCHEMA_1)
            .execute(&mut conn)
            .await
            .expect("the first schema");
        let at = |d: time::Duration| {
            let t = (t + d).to_offset(time::UtcOffset::UTC);
            format!(
                "{} {:02}:{:02}:{:02}.{:03}",
                t.date(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            )
        };
        sqlx::query(
            "INSERT INTO sessions (key, user_id, created, last_seen, idle_deadline, \
             absolute_deadline, persistent, data) VALUES (?1, 'alice', ?2, ?2, ?3, ?4, 1, ?5)",
        )
        .bind(&k.as_bytes()[..])
        .bind(at(time::Duration::ZERO))
        .bind(at(time::Duration::hours(1)))
        .bind(at(time::Duration::hours(2)))
        .bind(r#"{"cart":["apple"]}"#)
        .execute(&mut conn)
        .await
        .expect("a session of the first schema");
    }
    let store = SqliteStore::open(&path).await.expect("open");
    store
        .migrate()
        .await
        .expect("migrate from the first schema");

    let loaded = store
        .load(&k, None, t)
        .await
        .expect("load")
        .expect("the live session survived the upgrade");
    assert_eq!(loaded.data()["cart"], json!(["apple"]));
    assert_eq!(loaded.meta.user.as_deref(), Some("alice"));
    assert!(loaded.meta.persistent);
    assert_eq!(loaded.meta.idle_timeout, None);
    assert_eq!(loaded.meta.absolute_deadline, t + time::Duration::hours(2));
    let mut change = Change::default();
    change.idle_timeout = Some(Some(time::Duration::minutes(5)));
    store
        .update(&k, &change, t)
        .await
        .expect("update")
        .expect("live");
    let meta = store
        .load(&k, None, t)
        .await
        .expect("load")
        .expect("live")
        .meta;
    assert_eq!(meta.idle_timeout, Some(time::Duration::minutes(5)));
    assert_eq!(meta.idle_deadline, t + time::Duration::minutes(5));
}

#[tokio::test]
async fn the_table_shows_readable_times_json_and_the_earliest_deadline() {
    let t = TempStore::new().await;
    let k = key();
    let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    let mut record = Record::new(
        at,
        at + time::Duration::minutes(30),
        at + time::Duration::hours(2),
    );
    record.meta.user = Some("alice".into());
    record.data_mut().insert("cart".into(), json!(["apple"]));
    assert!(t.store.create(&k, &record).await.expect("create"));
    let mut conn = other_process(&t).await;
    let row: (String, String, String, String, i64) = sqlx::query_as(
        "SELECT user_id, created, expires, data, format FROM sessions WHERE key = ?1",
    )
    .bind(&k.as_bytes()[..])
    .fetch_one(&mut conn)
    .await
    .expect("the row");
    assert_eq!(
        row,
        (
            "alice".to_owned(),
            "2023-11-14 22:13:20.000".to_owned(),
            "2023-11-14 22:43:20.000".to_owned(),
            r#"{"cart":["apple"]}"#.to_owned(),
            1
        )
    );
    // SQLite's own date functions read the times.
    let unix: i64 = sqlx::query_scalar("SELECT unixepoch(created) FROM sessions WHERE key = ?1")
        .bind(&k.as_bytes()[..])
        .fetch_one(&mut conn)
        .await
        .expect("unixepoch");
    assert_eq!(unix, 1_700_000_000);
}

#[test]
fn names_that_are_not_plain_identifiers_are_refused_before_any_sql() {
    for bad in [
        "sessions; DROP TABLE users",
        "Sessions",
        "main.sessions",
        "",
        "x\"y",
        "1x",
    ] {
        let err = SqliteStore::builder().with_table(bad).unwrap_err();
        assert!(err.to_string().contains("table name"), "{err}");
    }
    assert!(SqliteStore::builder().with_table("sqlite_master").is_err());
}

#[tokio::test]
async fn an_in_memory_database_is_refused_with_a_reason() {
    let err = SqliteStore::open(":memory:").await.expect_err("in-memory");
    assert!(err.to_string().contains("MemoryStore"), "{err}");
}

#[tokio::test]
async fn sessions_survive_closing_and_reopening_the_file() {
    let t = TempStore::new().await;
    let (at, k) = (now(), key());
    let mut record = live_record(at);
    record.data_mut().insert("n".into(), json!(1));
    assert!(t.store.create(&k, &record).await.expect("create"));
    t.store.close().await;
    let reopened = SqliteStore::open(&t.path).await.expect("reopen");
    reopened.migrate().await.expect("migrate");
    assert_eq!(
        reopened.load(&k, None, at).await.expect("load"),
        Some(record)
    );
}

#[tokio::test]
async fn keys_with_quotes_and_backslashes_and_exact_big_numbers_survive_per_key_writes() {
    let t = TempStore::new().await;
    let (at, k) = (now(), key());
    assert!(t.store.create(&k, &live_record(at)).await.expect("create"));
    let mut change = Change::default();
    let odd = "a \"quoted\" key with \\ backslash, $.path[0] and 'single'";
    change.set(odd, json!(u64::MAX));
    change.set("neg", json!(i64::MIN));
    t.store
        .update(&k, &change, at)
        .await
        .expect("update")
        .expect("live");
    let mut remove = Change::default();
    remove.remove("neg");
    t.store
        .update(&k, &remove, at)
        .await
        .expect("update")
        .expect("live");
    let loaded = t
        .store
        .load(&k, None, at)
        .await
        .expect("load")
        .expect("live");
    assert_eq!(loaded.data().get(odd), Some(&json!(u64::MAX)));
    assert_eq!(loaded.data().get("neg"), None);
}

#[tokio::test]
async fn two_processes_writing_one_file_keep_every_write() {
    let t = TempStore::new().await;
    let second = SqliteStore::open(&t.path).await.expect("a second process");
    let (at, k) = (now(), key());
    assert!(t.store.create(&k, &live_record(at)).await.expect("create"));
    let writes = (0..100).map(|i| {
        let store = if i % 2 == 0 { &t.store } else { &second };
        let mut change = Change::default();
        change.set(format!("k{i}"), json!(i));
        async move { store.update(&k, &change, at).await }
    });
    for result in futures_util::future::join_all(writes).await {
        assert!(result
            .expect("no write fails under the busy timeout")
            .is_some());
    }
    let loaded = t
        .store
        .load(&k, None, at)
        .await
        .expect("load")
        .expect("live");
    for i in 0..100 {
        assert_eq!(loaded.data().get(&format!("k{i}")), Some(&json!(i)));
    }
}

#[tokio::test]
async fn a_lock_held_past_the_busy_timeout_is_an_error_and_loses_nothing() {
    let builder = SqliteStore::builder().with_busy_timeout(Duration::from_millis(100));
    let t = TempStore::with(builder).await;
    let (at, k) = (now(), key());
    let mut record = live_record(at);
    record.data_mut().insert("n".into(), json!(1));
    assert!(t.store.create(&k, &record).await.expect("create"));

    // Another process holds the write lock.
    let mut other = other_process(&t).await;
    let tx = other.begin_with("BEGIN IMMEDIATE").await.expect("lock");
    let mut change = Change::default();
    change.set("n", json!(2));
    let started = Instant::now();
    let err = t
        .store
        .update(&k, &change, at)
        .await
        .expect_err("the file is locked");
    assert_eq!(err.kind(), StoreErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains("busy timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let err = t
        .store
        .rotate_to(&k, &key(), &change, at)
        .await
        .expect_err("locked");
    assert_eq!(err.kind(), StoreErrorKind::Timeout, "{err}");
    // Readers are not blocked by a writer in WAL mode.
    let loaded = t
        .store
        .load(&k, None, at)
        .await
        .expect("load while locked")
        .expect("live");
    assert_eq!(loaded.data()["n"], json!(1));
    tx.rollback().await.expect("unlock");

    let loaded = t
        .store
        .load(&k, None, at)
        .await
        .expect("load")
        .expect("the session survived");
    assert_eq!(loaded, record, "a failed write changed the session");
    assert!(t
        .store
        .update(&k, &change, at)
        .await
        .expect("update")
        .is_some());
    assert_eq!(
        t.store.load(&k, None, at).await.unwrap().unwrap().data()["n"],
        json!(2)
    );
}

#[tokio::test]
async fn cleanup_deletes_expired_rows_in_bounded_batches_and_spares_live_ones() {
    let t = TempStore::with(SqliteStore::builder().with_cleanup_batch_size(7)).await;
    let at = now();
    let expired: Vec<StorageKey> = (0..25).map(|_| key()).collect();
    for k in &expired {
        assert!(t
            .store
            .create(k, &expired_record(at))
            .await
            .expect("create"));
    }
    let live = key();
    assert!(t
        .store
        .create(&live, &live_record(at))
        .await
        .expect("create"));

    assert_eq!(t.store.delete_expired(at, 10).await.expect("one batch"), 10);
    assert_eq!(count_present(&t, &expired).await, 15);

    let cleanup = t.store.spawn_cleanup(Duration::from_millis(50));
    let started = Instant::now();
    while count_present(&t, &expired).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "cleanup left expired rows"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::timeout(Duration::from_secs(2), cleanup.shutdown())
        .await
        .expect("shutdown is prompt");
    assert_eq!(
        count_present(&t, &[live]).await,
        1,
        "a live row was deleted"
    );
}

#[tokio::test]
async fn a_failed_cleanup_pass_is_logged_and_the_task_goes_on() {
    let logs = session_layer_test_support::logs::LogCapture::global();
    let builder = SqliteStore::builder().with_busy_timeout(Duration::from_millis(20));
    let t = TempStore::with(builder).await;
    let at = now();
    let expired: Vec<StorageKey> = (0..5).map(|_| key()).collect();
    for k in &expired {
        assert!(t
            .store
            .create(k, &expired_record(at))
            .await
            .expect("create"));
    }
    let mut other = other_process(&t).await;
    let tx = other.begin_with("BEGIN IMMEDIATE").await.expect("lock");
    let cleanup = t.store.spawn_cleanup(Duration::from_millis(50));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        logs.contains("deleting expired sessions failed"),
        "the failed pass was not logged"
    );
    tx.rollback().await.expect("unlock");

    let started = Instant::now();
    while count_present(&t, &expired).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the task stopped after an error"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cleanup.shutdown().await;
}

async fn query_plan(conn: &mut SqliteConnection, sql: &str, binds: usize) -> String {
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(explain));
    for _ in 0..binds {
        query = query.bind("x");
    }
    query
        .fetch_all(&mut *conn)
        .await
        .expect("explain")
        .into_iter()
        .map(|(_, _, _, detail)| detail)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn expiry_cleanup_and_per_user_queries_use_their_indexes() {
    let t = TempStore::new().await;
    let mut conn = other_process(&t).await;
    let sql = t.store.statements();

    let cleanup = query_plan(&mut conn, &sql.delete_expired, 2).await;
    println!("EXPLAIN QUERY PLAN delete_expired:\n{cleanup}\n");
    assert!(
        cleanup.contains("USING INDEX sessions_expires_idx"),
        "{cleanup}"
    );

    let list = query_plan(&mut conn, &sql.list_by_user, 2).await;
    println!("EXPLAIN QUERY PLAN list_by_user:\n{list}\n");
    assert!(list.contains("USING INDEX sessions_user_id_idx"), "{list}");

    let revoke = query_plan(&mut conn, &sql.delete_by_user, 3).await;
    println!("EXPLAIN QUERY PLAN delete_by_user:\n{revoke}\n");
    assert!(
        revoke.contains("USING INDEX sessions_user_id_idx"),
        "{revoke}"
    );

    let load = query_plan(&mut conn, &sql.load, 2).await;
    println!("EXPLAIN QUERY PLAN load:\n{load}\n");
    assert!(
        load.contains("USING INDEX sqlite_autoindex_sessions_1"),
        "{load}"
    );
}
