//! Shared by the SQLite test binaries: a store in a temporary directory. The app they serve,
//! and the checks every SQL store runs the same way, are in `session-layer-test-support`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use session_layer::id::StorageKey;
use session_layer::record::{Change, Record};
use session_layer::store::{Applied, Rotated, SessionInfo, StoreFuture, TouchRule, WriteRules};
use session_layer::SessionStore;
use session_layer_sqlite::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions,
};
use session_layer_sqlite::{SqliteStore, SqliteStoreBuilder};
use tempfile::TempDir;
use time::OffsetDateTime;

/// A migrated store whose database file lives in a temporary directory, removed with it.
#[derive(Debug)]
pub(crate) struct TempStore {
    pub(crate) store: SqliteStore,
    pub(crate) path: PathBuf,
    // Dropped after the store, so the files outlive every connection's use.
    _dir: TempDir,
}

impl TempStore {
    pub(crate) async fn new() -> Self {
        Self::with(SqliteStore::builder()).await
    }

    pub(crate) async fn with(builder: SqliteStoreBuilder) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("session-layer-sqlite-")
            .tempdir()
            .expect("a temporary directory");
        let path = dir.path().join("sessions.db");
        let store = builder.open(&path).await.expect("open the database file");
        store.migrate().await.expect("migrate");
        Self {
            store,
            path,
            _dir: dir,
        }
    }

    /// A store over a pool opened the way an application opens its own (sqlx's defaults
    /// and WAL mode), in a new file, migrated.
    pub(crate) async fn from_user_pool() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("session-layer-sqlite-")
            .tempdir()
            .expect("a temporary directory");
        let path = dir.path().join("app.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .expect("the application's pool");
        let store = SqliteStore::from_pool(pool);
        store.migrate().await.expect("migrate");
        Self {
            store,
            path,
            _dir: dir,
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        self._dir.path()
    }
}

impl SessionStore for TempStore {
    fn create<'a>(&'a self, key: &'a StorageKey, record: &'a Record) -> StoreFuture<'a, bool> {
        self.store.create(key, record)
    }
    fn load<'a>(
        &'a self,
        key: &'a StorageKey,
        touch: Option<&'a TouchRule>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<Record>> {
        self.store.load(key, touch, now)
    }
    fn apply<'a>(
        &'a self,
        key: &'a StorageKey,
        change: &'a Change,
        rules: &'a WriteRules,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Applied> {
        self.store.apply(key, change, rules, now)
    }
    fn rotate<'a>(
        &'a self,
        old: &'a StorageKey,
        new: &'a StorageKey,
        change: &'a Change,
        rules: &'a WriteRules,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Rotated> {
        self.store.rotate(old, new, change, rules, now)
    }
    fn delete<'a>(&'a self, key: &'a StorageKey) -> StoreFuture<'a, ()> {
        self.store.delete(key)
    }
    fn delete_owned<'a>(
        &'a self,
        key: &'a StorageKey,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        self.store.delete_owned(key, user, now)
    }
    fn list_by_user<'a>(
        &'a self,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<SessionInfo>> {
        self.store.list_by_user(user, now)
    }
    fn delete_by_user<'a>(
        &'a self,
        user: &'a str,
        except: Option<&'a StorageKey>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, u64> {
        self.store.delete_by_user(user, except, now)
    }
    fn delete_expired(&self, now: OffsetDateTime, batch: usize) -> StoreFuture<'_, u64> {
        self.store.delete_expired(now, batch)
    }
}
