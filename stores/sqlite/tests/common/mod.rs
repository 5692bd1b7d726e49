//! Shared by the SQLite test binaries: a store in a temporary directory. The app they serve,
//! and the checks every SQL store runs the same way, are in `session-layer-test-support`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use session_layer::id::StorageKey;
use session_layer::record::{Change, Metadata, Record};
use session_layer::store::{Limits, Rotated, SessionInfo, TouchRule, WriteRules, Written};
use session_layer::{SessionStore, StoreError};
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

    pub(crate) fn dir(&self) -> &Path {
        self._dir.path()
    }
}

#[async_trait]
impl SessionStore for TempStore {
    async fn create(&self, key: &StorageKey, record: &Record) -> Result<bool, StoreError> {
        self.store.create(key, record).await
    }
    async fn load(
        &self,
        key: &StorageKey,
        now: OffsetDateTime,
    ) -> Result<Option<Record>, StoreError> {
        self.store.load(key, now).await
    }
    async fn update(
        &self,
        key: &StorageKey,
        change: &Change,
        now: OffsetDateTime,
    ) -> Result<Option<Metadata>, StoreError> {
        self.store.update(key, change, now).await
    }
    async fn touch(
        &self,
        key: &StorageKey,
        seen: OffsetDateTime,
        idle_deadline: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.store.touch(key, seen, idle_deadline).await
    }
    async fn rotate(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        change: &Change,
        now: OffsetDateTime,
    ) -> Result<Rotated, StoreError> {
        self.store.rotate(old, new, change, now).await
    }
    async fn delete(&self, key: &StorageKey) -> Result<(), StoreError> {
        self.store.delete(key).await
    }
    async fn list_by_user(
        &self,
        user: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        self.store.list_by_user(user, now).await
    }
    async fn delete_by_user(
        &self,
        user: &str,
        except: Option<&StorageKey>,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        self.store.delete_by_user(user, except, now).await
    }
    async fn delete_expired(&self, now: OffsetDateTime, batch: usize) -> Result<u64, StoreError> {
        self.store.delete_expired(now, batch).await
    }
    async fn load_touching(
        &self,
        key: &StorageKey,
        now: OffsetDateTime,
        rule: &TouchRule,
    ) -> Result<Option<Record>, StoreError> {
        self.store.load_touching(key, now, rule).await
    }
    async fn write(
        &self,
        key: &StorageKey,
        change: &Change,
        rules: &WriteRules,
        now: OffsetDateTime,
    ) -> Result<Written, StoreError> {
        self.store.write(key, change, rules, now).await
    }
    async fn rotate_within(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        change: &Change,
        limits: &Limits,
        now: OffsetDateTime,
    ) -> Result<Rotated, StoreError> {
        self.store
            .rotate_within(old, new, change, limits, now)
            .await
    }
}
