//! The optional server-side revocation list of client-side sessions
//! ([`ClientSide::with_revocation_list`](super::ClientSide::with_revocation_list)), kept in
//! any [`SessionStore`] as records of its own:
//!
//! - **A signed-out session**: under a key derived from the session's nonce (never from the
//!   cookie value), kept as long as any copy of its cookie could live: until its absolute
//!   deadline, or the longer idle timeout from the sign-out if that comes first (a request
//!   in flight at the sign-out can move a copy's idle deadline that far, no further).
//! - **A user's cut-off** ("sign out everywhere else"): under a key derived from the user,
//!   the time before which the user's sessions were signed in, and the one session that
//!   asked (by its nonce's key), kept for the layer's absolute timeout: every session signed
//!   in before the cut-off has ended by then.
//!
//! Keys are SHA-256 of the kind, the layer's purpose and cookie name (so layers sharing one
//! store keep apart lists) and the nonce or user, which no session ID hashes to. The
//! records have no owner, so a store's per-user index never lists them.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::seal::Nonce;
use crate::clock::millis;
use crate::id::StorageKey;
use crate::record::{Change, Metadata, Record, Touch};
use crate::rules::{Applied, Limits, WriteRules};
use crate::settings::Settings;
use crate::store::{SessionStore, StoreError, StoreErrorKind};

/// The data key of a user's cut-off, in milliseconds since the epoch.
const NOT_BEFORE: &str = "not_before";
/// The data key naming the session a cut-off spares: its nonce's revocation key, in hex.
const SPARED: &str = "spared";
/// How many times a cut-off is written before giving up, when its record keeps expiring
/// between the create that found it and the update.
const ATTEMPTS: usize = 3;

/// Where a layer records sign-outs of client-side sessions, and checks them.
pub(crate) struct Revocations {
    store: Arc<dyn SessionStore>,
    /// The layer's purpose and cookie name, length-prefixed: every key is bound to them.
    scope: Vec<u8>,
    /// How long a session lives at most, its own end time included: a cut-off is kept that
    /// long.
    absolute: time::Duration,
    /// The longer of the two idle timeouts.
    longest_idle: time::Duration,
    /// For updating a cut-off: the change carries its own touch, and the record is far
    /// within the default limits, whatever the layer's own are.
    rules: WriteRules,
}

impl fmt::Debug for Revocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocations")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// A user's cut-off as the list holds it.
pub(crate) struct CutOff {
    /// Sessions signed in before this, in milliseconds since the epoch, are void...
    not_before: i64,
    /// ...but the one whose nonce has this key.
    spared: Option<String>,
}

impl CutOff {
    /// Whether it voids the session with `nonce`, signed in at `signed_in`.
    pub(crate) fn voids(
        &self,
        list: &Revocations,
        nonce: &Nonce,
        signed_in: OffsetDateTime,
    ) -> bool {
        millis::of(signed_in) < self.not_before
            && self.spared.as_deref() != Some(&list.session_key(nonce).to_hex())
    }
}

impl Revocations {
    pub(crate) fn new(
        store: Arc<dyn SessionStore>,
        purpose: &str,
        cookie_name: &str,
        settings: &Settings,
    ) -> Self {
        let mut scope = Vec::new();
        for part in [purpose, cookie_name] {
            scope.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            scope.extend_from_slice(part.as_bytes());
        }
        let touch = settings.rules.touch;
        Self {
            store,
            scope,
            absolute: settings.rules.max_lifetime,
            longest_idle: touch.idle_for(true).max(touch.idle_for(false)),
            rules: WriteRules::new(Limits::default(), touch),
        }
    }

    fn key(&self, kind: &[u8], item: &[u8]) -> StorageKey {
        let mut hash = Sha256::new();
        hash.update(b"session-layer client-side revocation v1\0");
        hash.update(kind);
        hash.update(b"\0");
        hash.update(&self.scope);
        hash.update(item);
        StorageKey::from_bytes(hash.finalize().into())
    }

    fn session_key(&self, nonce: &Nonce) -> StorageKey {
        self.key(b"session", nonce.as_bytes())
    }

    fn user_key(&self, user: &str) -> StorageKey {
        self.key(b"user", user.as_bytes())
    }

    /// Records that the session with `nonce` and metadata `meta` was signed out at `now`.
    pub(crate) async fn revoke_session(
        &self,
        nonce: &Nonce,
        meta: &Metadata,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let idle = self.longest_idle.max(meta.idle_timeout.unwrap_or_default());
        let until = meta.absolute_deadline.min(now.saturating_add(idle));
        if until <= now {
            // Every copy of its cookie has expired already.
            return Ok(());
        }
        let mut record = Record::new(now, until, until);
        record
            .data_mut()
            .insert("revoked".into(), Value::Bool(true));
        // A record already there means the session was signed out already: nothing to add.
        self.store
            .create(&self.session_key(nonce), &record)
            .await
            .map(drop)
            .map_err(failed)
    }

    /// Whether the session with `nonce` was signed out.
    pub(crate) async fn is_revoked(
        &self,
        nonce: &Nonce,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let key = self.session_key(nonce);
        Ok(self
            .store
            .load(&key, None, now)
            .await
            .map_err(failed)?
            .is_some())
    }

    /// Voids every session of `user` signed in before `now`, except the one with `spare`.
    pub(crate) async fn revoke_user(
        &self,
        user: &str,
        spare: Option<&Nonce>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let key = self.user_key(user);
        let until = now.saturating_add(self.absolute);
        let mut change = Change::default();
        change.set(NOT_BEFORE, millis::of(now).into());
        match spare {
            Some(nonce) => change.set(SPARED, self.session_key(nonce).to_hex().into()),
            None => change.remove(SPARED),
        }
        // The record lives as long as its idle deadline, which each cut-off moves on; its
        // absolute deadline is as far as any store keeps.
        let far = now.saturating_add(
            time::Duration::try_from(crate::config::MAX_TIMEOUT).unwrap_or(time::Duration::MAX),
        );
        let mut record = Record::new(now, until, far);
        change.apply_data(record.data_mut());
        change.touch = Some(Touch {
            seen: now,
            idle_deadline: until,
        });
        for _ in 0..ATTEMPTS {
            if self.store.create(&key, &record).await.map_err(failed)? {
                return Ok(());
            }
            // Concurrent cut-offs of one user: the last written wins, and each is the time
            // its request began, so they differ by the length of a request at most.
            match self
                .store
                .apply(&key, &change, &self.rules, now)
                .await
                .map_err(failed)?
            {
                Applied::Done(_) => return Ok(()),
                Applied::Gone => {}
                _ => break,
            }
        }
        Err(StoreError::new(
            StoreErrorKind::Other,
            "client-side sessions: the user's sign-out could not be written to the revocation \
             list (its record expired under each of three writes, or the store refused it as \
             too large); nothing was signed out",
        ))
    }

    /// The cut-off of `user`, if one is kept.
    pub(crate) async fn cut_off(
        &self,
        user: &str,
        now: OffsetDateTime,
    ) -> Result<Option<CutOff>, StoreError> {
        let key = self.user_key(user);
        let Some(record) = self.store.load(&key, None, now).await.map_err(failed)? else {
            return Ok(None);
        };
        let data = record.data();
        let Some(not_before) = data.get(NOT_BEFORE).and_then(Value::as_i64) else {
            return Err(StoreError::new(
                StoreErrorKind::Corrupt,
                "client-side sessions: a user's record in the revocation list has no cut-off \
                 time; was the list's store shared with something else?",
            ));
        };
        Ok(Some(CutOff {
            not_before,
            spared: data.get(SPARED).and_then(Value::as_str).map(str::to_owned),
        }))
    }
}

/// A failure of the list's store, said to be one: the session is neither used nor
/// dropped, and a sign-out that was not recorded is not reported as done.
fn failed(error: StoreError) -> StoreError {
    StoreError::with_source(
        error.kind(),
        "client-side sessions: the revocation list's store failed (see the source); a \
         session it was to check is neither used nor dropped, and a sign-out it was to \
         record is not done",
        error,
    )
}
