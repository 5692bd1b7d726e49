//! The PostgreSQL store's own promises: migrations, the table a DBA sees, timeouts, the
//! cleanup task and the indexes its queries use.

mod common;

use session_layer_test_support::StoreExt as _;
use std::time::{Duration, Instant};

use serde_json::json;
use session_layer::id::{SessionId, StorageKey};
use session_layer::record::{Change, Record};
use session_layer::{SessionStore, StoreErrorKind};
use session_layer_postgres::sqlx::{self, Connection, PgConnection};
use session_layer_postgres::{PostgresStore, PostgresStoreBuilder};
use time::OffsetDateTime;

fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_millisecond(t.millisecond())
        .expect("whole milliseconds")
}

fn key() -> StorageKey {
    SessionId::generate().storage_key()
}

/// A store on a table of its own in this run's schema, migrated; with the table's
/// qualified name and its bare name.
async fn own_table(builder: PostgresStoreBuilder) -> Option<(PostgresStore, String, String)> {
    let name = format!("t_{}", common::random_suffix());
    let store = common::store_with(builder.with_table(&name).expect("valid name")).await?;
    let qualified = format!("\"{}\".\"{name}\"", common::run_schema());
    Some((store, qualified, name))
}

async fn connection() -> PgConnection {
    PgConnection::connect(&common::database_url())
        .await
        .expect("a second connection")
}

fn expired_record(now: OffsetDateTime) -> Record {
    Record::new(
        now - time::Duration::hours(2),
        now - time::Duration::hours(1),
        now + time::Duration::hours(1),
    )
}

fn live_record(now: OffsetDateTime) -> Record {
    Record::new(
        now,
        now + time::Duration::hours(1),
        now + time::Duration::hours(2),
    )
}

async fn count_present(store: &PostgresStore, table: &str, keys: &[StorageKey]) -> i64 {
    let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {table} WHERE key = ANY($1)"
    )))
    .bind(keys)
    .fetch_one(store.pool())
    .await
    .expect("count")
}

/// The schema of the first release, as its migration left it, in `{t}` (qualified) with
/// its ledger `{ledger}`: what an upgrade starts from.
fn schema_1(t: &str, ledger: &str, name: &str) -> String {
    format!(
        r#"
CREATE TABLE {ledger} (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
INSERT INTO {ledger} (version, description)
    VALUES (1, 'create the sessions table and its expiry and per-user indexes');
CREATE TABLE {t} (
    key               BYTEA       PRIMARY KEY CHECK (octet_length(key) = 32),
    user_id           TEXT,
    created           TIMESTAMPTZ NOT NULL,
    last_seen         TIMESTAMPTZ NOT NULL,
    idle_deadline     TIMESTAMPTZ NOT NULL,
    absolute_deadline TIMESTAMPTZ NOT NULL,
    expires           TIMESTAMPTZ NOT NULL
                      GENERATED ALWAYS AS (LEAST(idle_deadline, absolute_deadline)) STORED,
    persistent        BOOLEAN     NOT NULL DEFAULT FALSE,
    data              JSONB       NOT NULL DEFAULT '{{}}' CHECK (jsonb_typeof(data) = 'object'),
    format            SMALLINT    NOT NULL DEFAULT 1
);
CREATE INDEX "{name}_expires_idx" ON {t} (expires);
CREATE INDEX "{name}_user_id_idx" ON {t} (user_id) WHERE user_id IS NOT NULL;
"#
    )
}

#[tokio::test]
async fn an_upgrade_from_the_first_schema_keeps_live_sessions_and_adds_the_idle_timeout() {
    // The server's reachability (and CI's rule) is checked the usual way first.
    if common::store().await.is_none() {
        return;
    }
    let name = format!("t_{}", common::random_suffix());
    let schema = common::run_schema();
    let t = format!("\"{schema}\".\"{name}\"");
    let ledger = format!("\"{schema}\".\"{name}_migrations\"");
    let (now, k) = (now(), key());
    let mut conn = connection().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(schema_1(&t, &ledger, &name)))
        .execute(&mut conn)
        .await
        .expect("the first schema");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {t} (key, user_id, created, last_seen, idle_deadline, absolute_deadline, \
         persistent, data) VALUES ($1, 'alice', $2, $2, $3, $4, TRUE, $5)"
    )))
    .bind(&k.as_bytes()[..])
    .bind(now)
    .bind(now + time::Duration::hours(1))
    .bind(now + time::Duration::hours(2))
    .bind(sqlx::types::Json(json!({"cart": ["apple"]})))
    .execute(&mut conn)
    .await
    .expect("a session of the first schema");

    let builder = PostgresStore::builder()
        .with_table(&name)
        .expect("valid name");
    let store = common::store_with(builder)
        .await
        .expect("the server answered");
    let loaded = store
        .load(&k, None, now)
        .await
        .expect("load")
        .expect("the live session survived the upgrade");
    assert_eq!(loaded.data()["cart"], json!(["apple"]));
    assert_eq!(loaded.meta.user.as_deref(), Some("alice"));
    assert!(loaded.meta.persistent);
    assert_eq!(loaded.meta.idle_timeout, None);
    assert_eq!(
        loaded.meta.absolute_deadline,
        now + time::Duration::hours(2)
    );
    let mut change = Change::default();
    change.idle_timeout = Some(Some(time::Duration::minutes(5)));
    store
        .update(&k, &change, now)
        .await
        .expect("update")
        .expect("live");
    let meta = store
        .load(&k, None, now)
        .await
        .expect("load")
        .expect("live")
        .meta;
    assert_eq!(meta.idle_timeout, Some(time::Duration::minutes(5)));
    assert_eq!(meta.idle_deadline, now + time::Duration::minutes(5));
    let versions: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT version FROM {ledger} ORDER BY version"
    )))
    .fetch_all(store.pool())
    .await
    .expect("the ledger");
    assert_eq!(versions, vec![1, 2]);
}

#[tokio::test]
async fn migrations_build_a_readable_table_once_even_when_instances_race() {
    let Some((store, _, name)) = own_table(PostgresStore::builder()).await else {
        return;
    };
    // Four more instances start at once: each step still applies exactly once.
    let runs = (0..4).map(|_| store.migrate());
    for result in futures_util::future::join_all(runs).await {
        result.expect("a repeated migrate succeeds");
    }
    let ledger = format!("\"{}\".\"{name}_migrations\"", common::run_schema());
    let versions: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT version FROM {ledger} ORDER BY version"
    )))
    .fetch_all(store.pool())
    .await
    .expect("the ledger");
    assert_eq!(versions, vec![1, 2]);

    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
    )
    .bind(common::run_schema())
    .bind(&name)
    .fetch_all(store.pool())
    .await
    .expect("columns");
    let columns: Vec<(&str, &str)> = columns
        .iter()
        .map(|(c, t)| (c.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        columns,
        [
            ("key", "bytea"),
            ("user_id", "text"),
            ("created", "timestamp with time zone"),
            ("last_seen", "timestamp with time zone"),
            ("idle_deadline", "timestamp with time zone"),
            ("absolute_deadline", "timestamp with time zone"),
            ("expires", "timestamp with time zone"),
            ("persistent", "boolean"),
            ("data", "jsonb"),
            ("format", "smallint"),
            ("idle_timeout_ms", "bigint"),
        ]
    );
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 AND tablename = $2 ORDER BY 1",
    )
    .bind(common::run_schema())
    .bind(&name)
    .fetch_all(store.pool())
    .await
    .expect("indexes");
    assert_eq!(
        indexes,
        [
            format!("{name}_expires_idx"),
            format!("{name}_pkey"),
            format!("{name}_user_id_idx")
        ]
    );
}

#[test]
fn names_that_are_not_plain_identifiers_are_refused_before_any_sql() {
    for bad in [
        "sessions; DROP TABLE users",
        "Sessions",
        "a.b",
        "",
        "x\"y",
        "1x",
    ] {
        let err = PostgresStore::builder().with_table(bad).unwrap_err();
        assert!(err.to_string().contains("table name"), "{err}");
        assert!(PostgresStore::builder().with_schema(bad).is_err());
    }
    assert!(PostgresStore::builder().with_schema("pg_catalog").is_err());
}

#[tokio::test]
async fn the_table_shows_readable_columns_and_the_earliest_deadline() {
    let Some((store, table, _)) = own_table(PostgresStore::builder()).await else {
        return;
    };
    let (t, k) = (now(), key());
    let mut record = live_record(t);
    record.meta.user = Some("alice".into());
    record.data_mut().insert("cart".into(), json!(["apple"]));
    assert!(store.create(&k, &record).await.expect("create"));
    let (user, expires, data, format): (String, OffsetDateTime, serde_json::Value, i16) =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT user_id, expires, data, format FROM {table} WHERE key = $1"
        )))
        .bind(&k.as_bytes()[..])
        .fetch_one(store.pool())
        .await
        .expect("the row");
    assert_eq!(user, "alice");
    assert_eq!(expires, record.meta.expires());
    assert_eq!(data, json!({"cart": ["apple"]}));
    assert_eq!(format, 1);
}

#[tokio::test]
async fn a_statement_slower_than_the_query_timeout_fails_promptly_as_a_timeout() {
    // Long enough that opening a connection on a busy machine never trips it; the row
    // lock below outlasts it by far.
    let builder = PostgresStore::builder().with_query_timeout(Duration::from_secs(1));
    let Some((store, table, _)) = own_table(builder).await else {
        return;
    };
    let (t, k) = (now(), key());
    assert!(store.create(&k, &live_record(t)).await.expect("create"));

    // Another client holds the row (until it is released below, well after the timeout).
    let mut other = connection().await;
    let mut tx = other.begin().await.expect("begin");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT 1 FROM {table} WHERE key = $1 FOR UPDATE"
    )))
    .bind(&k.as_bytes()[..])
    .execute(&mut *tx)
    .await
    .expect("lock the row");

    let mut change = Change::default();
    change.set("x", json!(1));
    let started = Instant::now();
    let err = store
        .update(&k, &change, t)
        .await
        .expect_err("the row is locked");
    assert_eq!(err.kind(), StoreErrorKind::Timeout, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    // The server's `statement_timeout` (the same second) abandons the queued update on its
    // own clock; release the lock only once it has surely fired, or the update could still
    // commit, which the docs allow after a timeout (the outcome is unknown).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tx.rollback().await.expect("release");

    // Nothing was lost, and the store works again.
    let loaded = store
        .load(&k, None, t)
        .await
        .expect("load")
        .expect("still there");
    assert_eq!(loaded.data().get("x"), None);
    assert!(store
        .update(&k, &change, t)
        .await
        .expect("update")
        .is_some());
}

#[tokio::test]
async fn cleanup_deletes_expired_rows_in_bounded_batches_and_spares_live_ones() {
    let builder = PostgresStore::builder().with_cleanup_batch_size(7);
    let Some((store, table, _)) = own_table(builder).await else {
        return;
    };
    let t = now();
    let expired: Vec<StorageKey> = (0..25).map(|_| key()).collect();
    for k in &expired {
        assert!(store.create(k, &expired_record(t)).await.expect("create"));
    }
    let live = key();
    assert!(store.create(&live, &live_record(t)).await.expect("create"));

    assert_eq!(store.delete_expired(t, 10).await.expect("one batch"), 10);
    assert_eq!(count_present(&store, &table, &expired).await, 15);

    let cleanup = store.spawn_cleanup(Duration::from_millis(50));
    let started = Instant::now();
    while count_present(&store, &table, &expired).await > 0 {
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
        count_present(&store, &table, &[live]).await,
        1,
        "a live row was deleted"
    );
}

#[tokio::test]
async fn a_failed_cleanup_pass_is_logged_and_the_task_goes_on() {
    let logs = session_layer_test_support::logs::LogCapture::global();
    let builder = PostgresStore::builder().with_query_timeout(Duration::from_millis(200));
    let Some((store, table, _)) = own_table(builder).await else {
        return;
    };
    let t = now();
    let expired: Vec<StorageKey> = (0..5).map(|_| key()).collect();
    for k in &expired {
        assert!(store.create(k, &expired_record(t)).await.expect("create"));
    }
    // Another client locks the whole table: every pass times out meanwhile.
    let mut other = connection().await;
    let mut tx = other.begin().await.expect("begin");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
    )))
    .execute(&mut *tx)
    .await
    .expect("lock");
    let cleanup = store.spawn_cleanup(Duration::from_millis(50));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        logs.contains("deleting expired sessions failed"),
        "the failed pass was not logged"
    );
    tx.rollback().await.expect("unlock");

    let started = Instant::now();
    while count_present(&store, &table, &expired).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the task stopped after an error"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cleanup.shutdown().await;
}

/// Runs `EXPLAIN` of `sql` with `params` bound, with sequential scans discouraged (the
/// table is small, so the planner would rightly prefer them otherwise).
async fn explain(conn: &mut PgConnection, sql: &str, params: Vec<ParamValue>) -> String {
    let explain = format!("EXPLAIN {sql}");
    let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(explain));
    for p in params {
        query = match p {
            ParamValue::Time(t) => query.bind(t),
            ParamValue::Text(s) => query.bind(s),
            ParamValue::Int(i) => query.bind(i),
            ParamValue::Bytes(b) => query.bind(b),
        };
    }
    query
        .fetch_all(&mut *conn)
        .await
        .expect("explain")
        .join("\n")
}

enum ParamValue {
    Time(OffsetDateTime),
    Text(String),
    Int(i64),
    Bytes(Option<Vec<u8>>),
}

#[tokio::test]
async fn expiry_cleanup_and_per_user_queries_use_their_indexes() {
    let Some((store, table, name)) = own_table(PostgresStore::builder()).await else {
        return;
    };
    let t = now();
    for i in 0..200 {
        let mut r = live_record(t);
        r.meta.user = Some(format!("user-{}", i % 20));
        assert!(store.create(&key(), &r).await.expect("create"));
    }
    let mut conn = connection().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ANALYZE {table}; SET enable_seqscan = off"
    )))
    .execute(&mut conn)
    .await
    .expect("set");
    let sql = store.statements();
    let cleanup = explain(
        &mut conn,
        &sql.delete_expired,
        vec![ParamValue::Time(t), ParamValue::Int(100)],
    )
    .await;
    println!("EXPLAIN delete_expired:\n{cleanup}\n");
    assert!(
        cleanup.contains(&format!("{name}_expires_idx")),
        "{cleanup}"
    );

    let list = explain(
        &mut conn,
        &sql.list_by_user,
        vec![ParamValue::Text("user-3".into()), ParamValue::Time(t)],
    )
    .await;
    println!("EXPLAIN list_by_user:\n{list}\n");
    assert!(list.contains(&format!("{name}_user_id_idx")), "{list}");

    let revoke = explain(
        &mut conn,
        &sql.delete_by_user,
        vec![
            ParamValue::Text("user-3".into()),
            ParamValue::Bytes(None),
            ParamValue::Time(t),
        ],
    )
    .await;
    println!("EXPLAIN delete_by_user:\n{revoke}\n");
    assert!(revoke.contains(&format!("{name}_user_id_idx")), "{revoke}");

    let load = explain(
        &mut conn,
        &sql.load,
        vec![
            ParamValue::Bytes(Some(key().as_bytes().to_vec())),
            ParamValue::Time(t),
        ],
    )
    .await;
    println!("EXPLAIN load:\n{load}\n");
    assert!(load.contains(&format!("{name}_pkey")), "{load}");
}

#[tokio::test]
async fn a_nul_character_is_refused_with_an_error_that_says_why() {
    let Some(store) = common::store().await else {
        return;
    };
    let (t, k) = (now(), key());
    assert!(store.create(&k, &live_record(t)).await.expect("create"));
    let mut change = Change::default();
    change.set("note", json!("a\u{0}b"));
    let err = store
        .update(&k, &change, t)
        .await
        .expect_err("JSONB refuses U+0000");
    assert!(err.to_string().contains("U+0000"), "{err}");
    assert!(store.load(&k, None, t).await.expect("load").is_some());
}
