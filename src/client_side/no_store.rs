//! The store a client-side layer holds in place of one: it has nothing, and says so.

use time::OffsetDateTime;

use crate::id::StorageKey;
use crate::record::{Change, Record};
use crate::store::{
    Applied, Rotated, SessionInfo, SessionStore, StoreError, StoreErrorKind, StoreFuture,
    TouchRule, WriteRules,
};

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

impl SessionStore for NoStore {
    fn create<'a>(&'a self, _: &'a StorageKey, _: &'a Record) -> StoreFuture<'a, bool> {
        StoreFuture::ready(Err(unsupported()))
    }

    fn load<'a>(
        &'a self,
        _: &'a StorageKey,
        _: Option<&'a TouchRule>,
        _: OffsetDateTime,
    ) -> StoreFuture<'a, Option<Record>> {
        StoreFuture::ready(Err(unsupported()))
    }

    fn apply<'a>(
        &'a self,
        _: &'a StorageKey,
        _: &'a Change,
        _: &'a WriteRules,
        _: OffsetDateTime,
    ) -> StoreFuture<'a, Applied> {
        StoreFuture::ready(Err(unsupported()))
    }

    fn rotate<'a>(
        &'a self,
        _: &'a StorageKey,
        _: &'a StorageKey,
        _: &'a Change,
        _: &'a WriteRules,
        _: OffsetDateTime,
    ) -> StoreFuture<'a, Rotated> {
        StoreFuture::ready(Err(unsupported()))
    }

    fn delete<'a>(&'a self, _: &'a StorageKey) -> StoreFuture<'a, ()> {
        StoreFuture::ready(Err(unsupported()))
    }

    fn delete_owned<'a>(
        &'a self,
        _: &'a StorageKey,
        _: &'a str,
        _: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        StoreFuture::ready(Err(unsupported()))
    }

    fn list_by_user<'a>(
        &'a self,
        _: &'a str,
        _: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<SessionInfo>> {
        StoreFuture::ready(Err(unsupported()))
    }

    fn delete_by_user<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a StorageKey>,
        _: OffsetDateTime,
    ) -> StoreFuture<'a, u64> {
        StoreFuture::ready(Err(unsupported()))
    }

    fn delete_expired(&self, _: OffsetDateTime, _: usize) -> StoreFuture<'_, u64> {
        StoreFuture::ready(Err(unsupported()))
    }
}
