//! Shared by the MySQL test binaries: connecting (or skipping), tables of this run's own, and
//! a private MariaDB server. The app they serve, and the checks every SQL store runs the same
//! way, are in `session-layer-test-support`.
#![allow(dead_code)]

pub(crate) mod server;

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use session_layer::id::SessionId;
use session_layer::testing::in_ci;
use session_layer_mysql::sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use session_layer_mysql::sqlx::{self, AssertSqlSafe};
use session_layer_mysql::{MySqlStore, MySqlStoreBuilder};

/// The server the tests use: `MYSQL_URL`, or the local MariaDB CI starts.
pub(crate) fn database_url() -> String {
    std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

/// The URL without its password, for messages.
pub(crate) fn printable(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A random lowercase suffix for names that must not collide between runs.
pub(crate) fn random_suffix() -> String {
    SessionId::generate().storage_key().to_hex()[..12].to_owned()
}

/// The prefix of every table this test process makes, so runs (and other engineers' runs)
/// never share rows. Named with its creation time so later runs can drop tables that
/// crashed runs left.
pub(crate) fn run_prefix() -> &'static str {
    static PREFIX: OnceLock<String> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("slmy_{secs}_{}", &random_suffix()[..8])
    })
}

/// A table name of this run's own, unique within it.
pub(crate) fn own_table_name(what: &str) -> String {
    format!("{}_{what}_{}", run_prefix(), &random_suffix()[..6])
}

/// A store on the shared server in this run's table, migrated; `None` (after saying why)
/// when the server is unreachable outside CI. In CI an unreachable server fails the test.
pub(crate) async fn store() -> Option<MySqlStore> {
    store_with(builder().with_max_connections(8)).await
}

/// Like [`store`], with builder settings (start from [`builder`], or name a table of this
/// run's own with [`own_table_name`]).
pub(crate) async fn store_with(builder: MySqlStoreBuilder) -> Option<MySqlStore> {
    // Once the server proved unreachable, later cases skip (or fail) at once instead of
    // each waiting out the acquire timeout.
    static UNREACHABLE: OnceLock<String> = OnceLock::new();
    let url = database_url();
    if let Some(error) = UNREACHABLE.get() {
        return skip_or_fail(&url, error);
    }
    match builder.connect(&url).await {
        Ok(store) => {
            drop_stale_tables(&store).await;
            store.migrate().await.expect("migrate");
            Some(store)
        }
        Err(e) => skip_or_fail(&url, UNREACHABLE.get_or_init(|| e.to_string())),
    }
}

/// The builder every shared-server test starts from: this run's table.
pub(crate) fn builder() -> MySqlStoreBuilder {
    MySqlStore::builder()
        .with_table(run_prefix())
        .expect("a valid table name")
}

/// A store over a pool opened the way an application opens its own, in a table of this
/// run's own, migrated; `None` as [`store`] gives it.
pub(crate) async fn store_from_pool() -> Option<MySqlStore> {
    pool_store(MySqlPoolOptions::new(), "pool").await
}

/// Like [`store_from_pool`], with every transaction of the pool at `READ COMMITTED`, the
/// isolation level many MySQL deployments choose: InnoDB then takes no gap locks, so a
/// statement's scan no longer keeps rows from moving into the range it already passed.
pub(crate) async fn store_read_committed() -> Option<MySqlStore> {
    let options = MySqlPoolOptions::new().after_connect(|conn, _| {
        Box::pin(async move {
            sqlx::Executor::execute(
                conn,
                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            )
            .await?;
            Ok(())
        })
    });
    pool_store(options, "rc").await
}

async fn pool_store(options: MySqlPoolOptions, what: &str) -> Option<MySqlStore> {
    let url = database_url();
    let connect: MySqlConnectOptions = url.parse().expect("a valid MYSQL_URL");
    let pool = options
        .max_connections(8)
        .acquire_timeout(std::time::Duration::from_secs(3))
        .connect_with(connect)
        .await;
    let pool = match pool {
        Ok(pool) => pool,
        Err(e) => return skip_or_fail(&url, &e),
    };
    let store = MySqlStore::builder()
        .with_table(format!("{}_{what}", run_prefix()))
        .expect("a valid table name")
        .from_pool(pool);
    drop_stale_tables(&store).await;
    store.migrate().await.expect("migrate");
    Some(store)
}

pub(crate) fn skip_or_fail<T>(url: &str, error: &dyn std::fmt::Display) -> Option<T> {
    let url = printable(url);
    if in_ci() {
        panic!(
            "CI=true and MySQL at {url} is unreachable ({error}); start it (.ci/run starts \
             MariaDB) or point MYSQL_URL at a server"
        );
    }
    eprintln!(
        "skipped: MySQL at {url} is unreachable ({error}); start it or set MYSQL_URL. With \
         CI=true this is a failure."
    );
    None
}

/// Drops `slmy_*` tables older than 15 minutes: leftovers of earlier runs (a run takes well
/// under a minute, and the conformance cases give no hook to drop at the end). Younger ones
/// may belong to a run in progress elsewhere.
async fn drop_stale_tables(store: &MySqlStore) {
    static ONCE: OnceLock<()> = OnceLock::new();
    if ONCE.set(()).is_err() {
        return;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_name LIKE 'slmy\\_%'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap_or_default();
    for name in names {
        let born = name
            .split('_')
            .nth(1)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        let valid = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if valid && born.saturating_add(15 * 60) < now {
            let _ = sqlx::raw_sql(AssertSqlSafe(format!("DROP TABLE IF EXISTS `{name}`")))
                .execute(store.pool())
                .await;
        }
    }
}
