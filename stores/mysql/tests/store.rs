//! The MySQL store's own promises: migrations, the table a DBA sees, owners compared byte
//! for byte, timeouts the server keeps too, the cleanup task and the indexes its queries use.

mod common;

use session_layer_test_support::StoreExt as _;
use std::time::{Duration, Instant};

use serde_json::json;
use session_layer::id::{SessionId, StorageKey};
use session_layer::record::{Change, Record};
use session_layer::{SessionStore, StoreErrorKind};
use session_layer_mysql::sqlx::{self, AssertSqlSafe, Connection, MySqlConnection};
use session_layer_mysql::{MySqlStore, MySqlStoreBuilder};
use time::OffsetDateTime;

fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_millisecond(t.millisecond())
        .expect("whole milliseconds")
}

fn key() -> StorageKey {
    SessionId::generate().storage_key()
}

/// A store on a table of its own, migrated; with the table's name.
async fn own_table(builder: MySqlStoreBuilder) -> Option<(MySqlStore, String)> {
    let name = common::own_table_name("t");
    let store = common::store_with(builder.with_table(&name).expect("valid name")).await?;
    Some((store, name))
}

async fn connection() -> MySqlConnection {
    MySqlConnection::connect(&common::database_url())
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

async fn count_present(store: &MySqlStore, table: &str, keys: &[StorageKey]) -> usize {
    let mut n = 0;
    for k in keys {
        let found: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT 1 FROM `{table}` WHERE `key` = ?"
        )))
        .bind(&k.as_bytes()[..])
        .fetch_optional(store.pool())
        .await
        .expect("count");
        n += usize::from(found.is_some());
    }
    n
}

/// The schema of the first release, as its migration left it, for the table `{t}`: what
/// an upgrade starts from. One statement each, as MySQL runs them.
fn schema_1(t: &str) -> [String; 3] {
    [
        format!(
            "CREATE TABLE `{t}_migrations` (version BIGINT NOT NULL PRIMARY KEY, \
             description VARCHAR(255) NOT NULL, \
             applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) \
             ENGINE = InnoDB DEFAULT CHARSET = utf8mb4"
        ),
        format!(
            "INSERT INTO `{t}_migrations` (version, description) \
             VALUES (1, 'create the sessions table and its expiry and per-user indexes')"
        ),
        format!(
            r#"
CREATE TABLE `{t}` (
    `key`             BINARY(32)     NOT NULL,
    user_id           VARBINARY(1020) NULL,
    created           DATETIME(3)    NOT NULL,
    last_seen         DATETIME(3)    NOT NULL,
    idle_deadline     DATETIME(3)    NOT NULL,
    absolute_deadline DATETIME(3)    NOT NULL,
    expires           DATETIME(3)    AS (LEAST(idle_deadline, absolute_deadline)) STORED,
    persistent        BOOLEAN        NOT NULL DEFAULT FALSE,
    data              JSON           NOT NULL,
    format            SMALLINT       NOT NULL DEFAULT 1,
    PRIMARY KEY (`key`),
    KEY `{t}_expires_idx` (expires),
    KEY `{t}_user_id_idx` (user_id),
    CONSTRAINT `{t}_data_chk` CHECK (JSON_TYPE(data) = 'OBJECT')
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
"#
        ),
    ]
}

#[tokio::test]
async fn an_upgrade_from_the_first_schema_keeps_live_sessions_and_adds_the_idle_timeout() {
    // The server's reachability (and CI's rule) is checked the usual way first.
    if common::store().await.is_none() {
        return;
    }
    let name = common::own_table_name("up");
    let (now, k) = (now(), key());
    let mut conn = connection().await;
    for statement in schema_1(&name) {
        sqlx::raw_sql(AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .expect("the first schema");
    }
    let utc = |t: OffsetDateTime| time::PrimitiveDateTime::new(t.date(), t.time());
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO `{name}` (`key`, user_id, created, last_seen, idle_deadline, \
         absolute_deadline, persistent, data) VALUES (?, 'alice', ?, ?, ?, ?, TRUE, ?)"
    )))
    .bind(&k.as_bytes()[..])
    .bind(utc(now))
    .bind(utc(now))
    .bind(utc(now + time::Duration::hours(1)))
    .bind(utc(now + time::Duration::hours(2)))
    .bind(r#"{"cart":["apple"]}"#)
    .execute(&mut conn)
    .await
    .expect("a session of the first schema");

    let builder = MySqlStore::builder().with_table(&name).expect("valid name");
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

    // A run that added the column but stopped before its ledger line: the next run takes
    // the step for done.
    sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM `{name}_migrations` WHERE version = 2"
    )))
    .execute(&mut conn)
    .await
    .expect("forget the second step");
    store
        .migrate()
        .await
        .expect("migrate again over the added column");
    let versions: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT version FROM `{name}_migrations` ORDER BY version"
    )))
    .fetch_all(store.pool())
    .await
    .expect("the ledger");
    assert_eq!(versions, vec![1, 2]);
}

#[tokio::test]
async fn migrations_build_a_readable_table_once_even_when_instances_race() {
    let Some((store, name)) = own_table(MySqlStore::builder()).await else {
        return;
    };
    // Four more instances, each with a pool of its own, start at once: each step still
    // applies exactly once.
    let mut others = Vec::new();
    for _ in 0..4 {
        let builder = MySqlStore::builder().with_table(&name).expect("valid name");
        others.push(
            builder
                .connect(&common::database_url())
                .await
                .expect("connect"),
        );
    }
    let runs = others.iter().map(MySqlStore::migrate);
    for result in futures_util::future::join_all(runs).await {
        result.expect("a repeated migrate succeeds");
    }
    let versions: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT version FROM `{name}_migrations` ORDER BY version"
    )))
    .fetch_all(store.pool())
    .await
    .expect("the ledger");
    assert_eq!(versions, vec![1, 2]);

    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(column_name AS CHAR), CAST(column_type AS CHAR) \
         FROM information_schema.columns \
         WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
    )
    .bind(&name)
    .fetch_all(store.pool())
    .await
    .expect("columns");
    let columns: Vec<(&str, &str)> = columns
        .iter()
        .map(|(c, t)| (c.as_str(), t.as_str()))
        .collect();
    // MariaDB spells JSON as LONGTEXT (with a JSON_VALID check); MySQL as json.
    let data_type = columns.iter().find(|(c, _)| *c == "data").map(|(_, t)| *t);
    assert!(
        matches!(data_type, Some("json" | "longtext")),
        "{data_type:?}"
    );
    let without_data: Vec<_> = columns.iter().filter(|(c, _)| *c != "data").collect();
    assert_eq!(
        without_data,
        [
            &("key", "binary(32)"),
            &("user_id", "varbinary(1020)"),
            &("created", "datetime(3)"),
            &("last_seen", "datetime(3)"),
            &("idle_deadline", "datetime(3)"),
            &("absolute_deadline", "datetime(3)"),
            &("expires", "datetime(3)"),
            &("persistent", "tinyint(1)"),
            &("format", "smallint(6)"),
            &("idle_timeout_ms", "bigint(20)"),
        ]
    );
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT CAST(index_name AS CHAR) FROM information_schema.statistics \
         WHERE table_schema = DATABASE() AND table_name = ? ORDER BY 1",
    )
    .bind(&name)
    .fetch_all(store.pool())
    .await
    .expect("indexes");
    assert_eq!(
        indexes,
        [
            "PRIMARY".to_owned(),
            format!("{name}_expires_idx"),
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
        "x`y",
        "1x",
    ] {
        let err = MySqlStore::builder().with_table(bad).unwrap_err();
        assert!(err.to_string().contains("table name"), "{err}");
    }
}

#[tokio::test]
async fn the_table_shows_readable_columns_and_the_earliest_deadline() {
    let Some((store, table)) = own_table(MySqlStore::builder()).await else {
        return;
    };
    let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    let k = key();
    let mut record = Record::new(
        at,
        at + time::Duration::minutes(30),
        at + time::Duration::hours(2),
    );
    record.meta.user = Some("alice".into());
    record.data_mut().insert("cart".into(), json!(["apple"]));
    assert!(store.create(&k, &record).await.expect("create"));
    let row: (String, String, String, String, i16) = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT CAST(user_id AS CHAR), CAST(created AS CHAR), CAST(expires AS CHAR), \
         CAST(data AS CHAR), format FROM `{table}` WHERE `key` = ?"
    )))
    .bind(&k.as_bytes()[..])
    .fetch_one(store.pool())
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
}

#[tokio::test]
async fn owners_compare_byte_for_byte_so_no_user_reaches_another_users_sessions() {
    let Some(store) = common::store().await else {
        return;
    };
    let t = now();
    let user = format!("alice-{}", common::random_suffix());
    let k = key();
    let mut record = live_record(t);
    record.meta.user = Some(user.clone());
    assert!(store.create(&k, &record).await.expect("create"));
    // A text column would take these for the same user: trailing spaces are ignored by
    // PAD SPACE collations, and case by most.
    for other in [format!("{user} "), user.to_uppercase(), format!("{user}\t")] {
        assert!(
            store
                .list_by_user(&other, t)
                .await
                .expect("list")
                .is_empty(),
            "{other:?} sees {user:?}'s sessions"
        );
        assert_eq!(
            store.delete_by_user(&other, None, t).await.expect("revoke"),
            0
        );
        assert!(!store.delete_owned(&k, &other, t).await.expect("revoke one"));
    }
    assert_eq!(store.list_by_user(&user, t).await.expect("list").len(), 1);
    assert!(store.load(&k, None, t).await.expect("load").is_some());
}

#[tokio::test]
async fn a_user_id_longer_than_the_column_is_refused_not_cut_short() {
    let Some(store) = common::store().await else {
        return;
    };
    let t = now();
    let long = "u".repeat(1_021);
    let mut record = live_record(t);
    record.meta.user = Some(long.clone());
    let err = store.create(&key(), &record).await.expect_err("too long");
    assert!(err.to_string().contains("1020 bytes"), "{err}");

    let k = key();
    assert!(store.create(&k, &live_record(t)).await.expect("create"));
    let mut change = Change::default();
    change.user = Some(Some(long));
    let err = store.update(&k, &change, t).await.expect_err("too long");
    assert!(err.to_string().contains("1020 bytes"), "{err}");
    let stored = store.load(&k, None, t).await.expect("load").expect("live");
    assert_eq!(stored.meta.user, None, "nothing was written");

    let mut change = Change::default();
    change.user = Some(Some("é".repeat(510)));
    assert!(
        store
            .update(&k, &change, t)
            .await
            .expect("1020 bytes fit")
            .is_some(),
        "the longest ID that fits is kept"
    );
}

#[tokio::test]
async fn a_statement_slower_than_the_query_timeout_fails_promptly_and_the_server_abandons_it() {
    // One connection, so that the next call needs the very connection the timed-out one
    // used. A second is long enough that opening a connection on a busy machine never
    // trips it; the row lock below outlasts it by far.
    let builder = MySqlStore::builder()
        .with_max_connections(1)
        .with_query_timeout(Duration::from_secs(1));
    let Some((store, table)) = own_table(builder).await else {
        return;
    };
    let (t, locked, free) = (now(), key(), key());
    assert!(store
        .create(&locked, &live_record(t))
        .await
        .expect("create"));
    assert!(store.create(&free, &live_record(t)).await.expect("create"));

    // Another client holds one row (until it is released below, well after the timeout).
    let mut other = connection().await;
    let mut tx = other.begin().await.expect("begin");
    sqlx::query(AssertSqlSafe(format!(
        "SELECT 1 FROM `{table}` WHERE `key` = ? FOR UPDATE"
    )))
    .bind(&locked.as_bytes()[..])
    .execute(&mut *tx)
    .await
    .expect("lock the row");

    let mut change = Change::default();
    change.set("x", json!(1));
    let started = Instant::now();
    let err = store
        .update(&locked, &change, t)
        .await
        .expect_err("the row is locked");
    assert_eq!(err.kind(), StoreErrorKind::Timeout, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );

    // The server's lock wait timeout (the same second, rounded up) abandons the waiting
    // statement on its own clock, so the connection serves again while the lock is still
    // held. Left waiting (50 s by default), it would keep the pool's one connection busy.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let other_row = store.load(&free, None, t).await;
    assert!(
        matches!(other_row, Ok(Some(_))),
        "the connection is still stuck behind the abandoned statement: {other_row:?}"
    );
    tx.rollback().await.expect("release");

    let loaded = store
        .load(&locked, None, t)
        .await
        .expect("load")
        .expect("still there");
    assert_eq!(loaded.data().get("x"), None, "the timed-out write landed");
    assert!(store
        .update(&locked, &change, t)
        .await
        .expect("update")
        .is_some());
}

#[tokio::test]
async fn cleanup_deletes_expired_rows_in_bounded_batches_and_spares_live_ones() {
    let builder = MySqlStore::builder().with_cleanup_batch_size(7);
    let Some((store, table)) = own_table(builder).await else {
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
    let builder = MySqlStore::builder().with_query_timeout(Duration::from_millis(200));
    let Some((store, table)) = own_table(builder).await else {
        return;
    };
    let t = now();
    let expired: Vec<StorageKey> = (0..5).map(|_| key()).collect();
    for k in &expired {
        assert!(store.create(k, &expired_record(t)).await.expect("create"));
    }
    // Another client locks every row: each pass times out meanwhile.
    let mut other = connection().await;
    let mut tx = other.begin().await.expect("begin");
    sqlx::query(AssertSqlSafe(format!("SELECT * FROM `{table}` FOR UPDATE")))
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

/// The index `EXPLAIN` names for `sql` with these values bound: MySQL's `key` column of
/// the plan.
async fn index_used(
    store: &MySqlStore,
    sql: &str,
    bind: impl Fn(Explain<'_>) -> Explain<'_>,
) -> String {
    let explain = format!("EXPLAIN {sql}");
    let query = bind(sqlx::query(AssertSqlSafe(explain)));
    let rows = query.fetch_all(store.pool()).await.expect("explain");
    let keys: Vec<String> = rows
        .iter()
        .map(|row| {
            use sqlx::Row as _;
            row.try_get::<Option<String>, _>("key")
                .expect("a key column")
                .unwrap_or_default()
        })
        .collect();
    keys.join(",")
}

type Explain<'q> = sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments>;

#[tokio::test]
async fn expiry_cleanup_and_per_user_queries_use_their_indexes() {
    let Some((store, table)) = own_table(MySqlStore::builder()).await else {
        return;
    };
    let t = now();
    let keys: Vec<StorageKey> = (0..200).map(|_| key()).collect();
    for (i, k) in keys.iter().enumerate() {
        let mut r = if i % 2 == 0 {
            live_record(t)
        } else {
            expired_record(t)
        };
        r.meta.user = Some(format!("user-{}", i % 40));
        assert!(store.create(k, &r).await.expect("create"));
    }
    sqlx::raw_sql(AssertSqlSafe(format!("ANALYZE TABLE `{table}`")))
        .execute(store.pool())
        .await
        .expect("analyze");
    let sql = store.statements();
    let at = time::PrimitiveDateTime::new(t.date(), t.time());

    let cleanup = index_used(&store, &sql.delete_expired, |q| q.bind(at).bind(100_u64)).await;
    assert_eq!(cleanup, format!("{table}_expires_idx"));
    let list = index_used(&store, &sql.list_by_user, |q| {
        q.bind(&b"user-3"[..]).bind(at)
    })
    .await;
    assert_eq!(list, format!("{table}_user_id_idx"));
    let revoke = index_used(&store, &sql.delete_by_user, |q| {
        q.bind(&b"user-3"[..])
            .bind(None::<&[u8]>)
            .bind(None::<&[u8]>)
            .bind(at)
    })
    .await;
    assert_eq!(revoke, format!("{table}_user_id_idx"));
    let k = keys[0];
    let load = index_used(&store, &sql.load, |q| q.bind(&k.as_bytes()[..]).bind(at)).await;
    assert_eq!(load, "PRIMARY");
}
