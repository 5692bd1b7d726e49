//! The store a client-side layer holds in place of one: it has nothing, and says so.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::id::StorageKey;
use crate::record::{Change, Metadata, Record};
use crate::store::{Rotated, SessionInfo, SessionStore, StoreError, StoreErrorKind};

/// Answers every operation with an error that names the limitation. In client-side mode
/// the layer never loads or saves through it; only the per-user calls
/// ([`Session::user_sessions`](crate::Session::user_sessions),
/// [`Session::revoke`](crate::Session::revoke),
/// [`Session::revoke_others`](crate::Session::revoke_others)) reach it.
#[derive(Debug, Clone, Copy)]
pub(super) struct NoStore;

fn unsupported() -> StoreError {
    StoreError::new(
        StoreErrorKind::Other,
        "client-side sessions keep no server-side records, so a user's sessions cannot be \
         listed or revoked; use a server-side store, or ClientSide::with_not_before to void a \
         user's older sessions",
    )
}

#[async_trait]
impl SessionStore for NoStore {
    async fn create(&self, _: &StorageKey, _: &Record) -> Result<bool, StoreError> {
        Err(unsupported())
    }

    async fn load(&self, _: &StorageKey, _: OffsetDateTime) -> Result<Option<Record>, StoreError> {
        Err(unsupported())
    }

    async fn update(
        &self,
        _: &StorageKey,
        _: &Change,
        _: OffsetDateTime,
    ) -> Result<Option<Metadata>, StoreError> {
        Err(unsupported())
    }

    async fn touch(
        &self,
        _: &StorageKey,
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        Err(unsupported())
    }

    async fn rotate(
        &self,
        _: &StorageKey,
        _: &StorageKey,
        _: &Change,
        _: OffsetDateTime,
    ) -> Result<Rotated, StoreError> {
        Err(unsupported())
    }

    async fn delete(&self, _: &StorageKey) -> Result<(), StoreError> {
        Err(unsupported())
    }

    async fn list_by_user(
        &self,
        _: &str,
        _: OffsetDateTime,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        Err(unsupported())
    }

    async fn delete_by_user(
        &self,
        _: &str,
        _: Option<&StorageKey>,
        _: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        Err(unsupported())
    }
}
