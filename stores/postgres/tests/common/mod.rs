//! Shared by the PostgreSQL test binaries: connecting (or skipping), a fresh schema per run,
//! and a private PostgreSQL cluster. The app they serve, and the checks every SQL store runs
//! the same way, are in `session-layer-test-support`.
#![allow(dead_code)]

pub(crate) mod cluster;

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use session_layer::id::SessionId;
use session_layer::testing::in_ci;
use session_layer_postgres::sqlx;
use session_layer_postgres::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use session_layer_postgres::{PostgresStore, PostgresStoreBuilder};

/// The server the tests use: `DATABASE_URL`, or the local one CI starts.
pub(crate) fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
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

/// One schema per test process, so runs (and other engineers' runs) never share rows.
/// Named with its creation time so later runs can drop schemas that crashed runs left.
pub(crate) fn run_schema() -> &'static str {
    static SCHEMA: OnceLock<String> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("sl_test_{secs}_{}", random_suffix())
    })
}

/// A store on the shared server in this run's schema, migrated; `None` (after saying why)
/// when the server is unreachable outside CI. In CI an unreachable server fails the test.
pub(crate) async fn store() -> Option<PostgresStore> {
    store_with(PostgresStore::builder().with_max_connections(8)).await
}

/// Like [`store`], with builder settings; the schema is this run's.
pub(crate) async fn store_with(builder: PostgresStoreBuilder) -> Option<PostgresStore> {
    // Once the server proved unreachable, later cases skip (or fail) at once instead of
    // each waiting out the acquire timeout.
    static UNREACHABLE: OnceLock<String> = OnceLock::new();
    let url = database_url();
    if let Some(error) = UNREACHABLE.get() {
        return skip_or_fail(&url, error);
    }
    let builder = builder
        .with_schema(run_schema())
        .expect("valid schema name");
    match builder.connect(&url).await {
        Ok(store) => {
            drop_stale_schemas(&store).await;
            store.migrate().await.expect("migrate");
            Some(store)
        }
        Err(e) => skip_or_fail(&url, UNREACHABLE.get_or_init(|| e.to_string())),
    }
}

/// A store over a pool opened the way an application opens its own, in this run's schema,
/// migrated; `None` as [`store`] gives it.
pub(crate) async fn store_from_pool() -> Option<PostgresStore> {
    let url = database_url();
    let options: PgConnectOptions = url.parse().expect("a valid DATABASE_URL");
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(std::time::Duration::from_secs(3))
        .connect_with(options.options([("statement_timeout", "5s")]))
        .await;
    let pool = match pool {
        Ok(pool) => pool,
        Err(e) => return skip_or_fail(&url, &e),
    };
    let store = PostgresStore::builder()
        .with_schema(run_schema())
        .expect("valid schema name")
        .from_pool(pool);
    drop_stale_schemas(&store).await;
    store.migrate().await.expect("migrate");
    Some(store)
}

pub(crate) fn skip_or_fail<T>(url: &str, error: &dyn std::fmt::Display) -> Option<T> {
    let url = printable(url);
    if in_ci() {
        panic!(
            "CI=true and PostgreSQL at {url} is unreachable ({error}); start it (.ci/run does) \
             or point DATABASE_URL at a server"
        );
    }
    eprintln!(
        "skipped: PostgreSQL at {url} is unreachable ({error}); start it or set DATABASE_URL. \
         With CI=true this is a failure."
    );
    None
}

/// Drops `sl_test_*` schemas older than 15 minutes: leftovers of earlier runs (a run takes
/// well under a minute, and the conformance cases give no hook to drop at the end). Younger
/// ones may belong to a run in progress elsewhere.
async fn drop_stale_schemas(store: &PostgresStore) {
    static ONCE: OnceLock<()> = OnceLock::new();
    if ONCE.set(()).is_err() {
        return;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'sl\\_test\\_%'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap_or_default();
    for name in names {
        let born = name
            .split('_')
            .nth(2)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        let valid = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if valid && born.saturating_add(15 * 60) < now {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
            )))
            .execute(store.pool())
            .await;
        }
    }
}
