//! Sessions kept in a [`SessionStore`], named by the session ID in the cookie: the save
//! policy, which picks the one store operation a request needs (create, apply, rotate,
//! delete) and what the cookie says afterwards.

use std::future::Future;
use std::sync::OnceLock;

use time::OffsetDateTime;

use super::{CookieOut, Fit, FitCheck, How, Keeper, Kept, Saving, Settled};
use crate::id::{SessionHandle, SessionId, StorageKey};
use crate::observe::{self, Anonymous};
use crate::record::{Change, Metadata, Record};
use crate::rules::Totals;
use crate::settings::Settings;
use crate::store::{
    Applied, Rotated, SessionInfo, SessionStore, StoreError, StoreErrorKind, StoreFuture,
};

/// A load's answer, with the reason reported when it found no live session.
fn found(answer: Result<Option<Record>, StoreError>) -> Result<Option<Record>, StoreError> {
    if let Ok(None) = answer {
        observe::anonymous(Anonymous::UnknownOrExpired);
    }
    answer
}

/// How many fresh IDs to try when a new ID is taken (which 256 random bits make a sign of a
/// broken random source rather than of bad luck).
const CREATE_ATTEMPTS: usize = 3;

/// A [`SessionStore`] as the home of a layer's sessions.
#[derive(Debug)]
pub(crate) struct Stored<S> {
    store: S,
    /// The store's type, for the spans of its calls.
    name: Box<str>,
}

impl<S> Stored<S> {
    pub(crate) fn new(store: S) -> Self {
        Self {
            store,
            name: observe::store_name::<S>(),
        }
    }

    /// Runs one call on the store, observed.
    fn call<'a, T: Send + 'a>(
        &'a self,
        op: &'static str,
        call: impl FnOnce(&'a S) -> StoreFuture<'a, T>,
    ) -> StoreFuture<'a, T> {
        observe::store_call(op, &self.name, || call(&self.store))
    }
}

/// The session ID a request's cookie carried, and its storage key once needed: a request
/// that loads and then saves hashes its ID once.
#[derive(Debug)]
pub(crate) struct Named {
    id: SessionId,
    key: OnceLock<StorageKey>,
}

impl Named {
    fn key(&self) -> &StorageKey {
        self.key.get_or_init(|| self.id.storage_key())
    }
}

impl<S: SessionStore> Keeper for Stored<S> {
    type Cookie = Named;

    fn read(&self, value: &[u8]) -> Option<Named> {
        SessionId::parse(value).map(|id| Named {
            id,
            key: OnceLock::new(),
        })
    }

    fn refused(&self) {
        observe::anonymous(Anonymous::Malformed);
    }

    fn load<'a>(
        &'a self,
        settings: &'a Settings,
        cookie: &'a Named,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<Record>> {
        // The read's touch, if due, happens in the same store call.
        let touch = Some(&settings.rules.touch);
        let load = self.call("load", |s| s.load(cookie.key(), touch, now));
        match load.into_ready() {
            Ok(answer) => StoreFuture::ready(found(answer)),
            Err(waiting) => StoreFuture::boxed(async move { found(waiting.await) }),
        }
    }

    fn fits(&self, _: &FitCheck<'_, Named>) -> Fit {
        // The store holds any size the layer's limits allow; those are checked apart.
        Fit::Yes
    }

    fn settle(&self, saving: &Saving<'_, Named>) -> Settled {
        let ending = saving.ending;
        if ending.destroyed || ending.rotate || !ending.change.is_empty() {
            return Settled::NeedsSave;
        }
        let Some(cookie) = saving.cookie else {
            return Settled::Done(Ok(saving.nothing_kept()));
        };
        Settled::Done(Ok(match saving.loaded {
            None => Kept::new(CookieOut::Keep, How::Unchanged),
            // Unknown or expired: never adopted, and nothing to keep.
            Some(None) => saving.nothing_kept(),
            Some(Some(record)) if renews_cookie(saving, &record.meta, saving.started) => {
                set(saving, &cookie.id, &record.meta, How::Unchanged)
            }
            Some(Some(_)) => Kept::new(CookieOut::Keep, How::Unchanged),
        }))
    }

    fn save<'a>(
        &'a self,
        saving: &'a Saving<'a, Named>,
    ) -> impl Future<Output = Result<Kept, StoreError>> + Send + 'a {
        self.save_now(saving)
    }

    fn handle(&self, cookie: &Named) -> Option<SessionHandle> {
        Some(SessionHandle::from(*cookie.key()))
    }

    fn sessions_of<'a>(
        &'a self,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<SessionInfo>> {
        self.call("list_by_user", |s| s.list_by_user(user, now))
    }

    fn revoke<'a>(
        &'a self,
        key: &'a StorageKey,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        self.call("delete_owned", |s| s.delete_owned(key, user, now))
    }

    fn revoke_others<'a>(
        &'a self,
        keep: Option<&'a Named>,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, u64> {
        let keep = keep.map(Named::key);
        self.call("delete_by_user", |s| s.delete_by_user(user, keep, now))
    }
}

impl<S: SessionStore> Stored<S> {
    async fn save_now(&self, saving: &Saving<'_, Named>) -> Result<Kept, StoreError> {
        let ending = saving.ending;
        let now = saving.now;
        if ending.destroyed {
            if let Some(cookie) = saving.cookie {
                self.call("delete", |s| s.delete(cookie.key())).await?;
            }
            let mut kept = self.create_or_clear(saving, &ending.change).await?;
            kept.how = How::Destroyed;
            return Ok(kept);
        }
        let (Some(cookie), loaded) = (saving.cookie, saving.loaded) else {
            return self.create_or_clear(saving, &ending.change).await;
        };
        if let Some(None) = loaded {
            // Loaded and found nothing: unknown or expired. Never adopt the client's ID.
            return self.create_or_clear(saving, &ending.change).await;
        }
        let rules = &saving.settings.rules;
        // A due touch was made by the load, or is made by the store with the change, which
        // also restarts the idle deadline when the persistence or the idle timeout changes.
        let change = &ending.change;
        let touched_by_load = loaded
            .flatten()
            .is_some_and(|r| renews_cookie(saving, &r.meta, saving.started));
        let key = cookie.key();

        if ending.rotate {
            for _ in 0..CREATE_ATTEMPTS {
                let new_id = SessionId::generate();
                let new_key = new_id.storage_key();
                let rotated = self.call("rotate", |s| s.rotate(key, &new_key, change, rules, now));
                match rotated.await? {
                    Rotated::Done(meta) => return Ok(set(saving, &new_id, &meta, How::Rotated)),
                    Rotated::Collision => {}
                    Rotated::TooLarge(totals) => return Err(too_large(totals)),
                    _ => return self.create_or_clear(saving, &ending.change).await,
                }
            }
            return Err(collision_error());
        }

        match self
            .call("apply", |s| s.apply(key, change, rules, now))
            .await?
        {
            Applied::Done(meta)
                if change.alters_expiry()
                    || touched_by_load
                    || renews_cookie(saving, &meta, now) =>
            {
                Ok(set(saving, &cookie.id, &meta, How::Written))
            }
            Applied::Done(_) => Ok(Kept::new(CookieOut::Keep, How::Written)),
            Applied::TooLarge(totals) => Err(too_large(totals)),
            // The session ended while this request ran (logout elsewhere, expiry): its
            // writes go to a new session, never back into the old one.
            _ => self.create_or_clear(saving, &ending.change).await,
        }
    }

    /// Stores a new session holding `change`, if it holds anything worth keeping, or clears
    /// a cookie that named no live session.
    async fn create_or_clear(
        &self,
        saving: &Saving<'_, Named>,
        change: &Change,
    ) -> Result<Kept, StoreError> {
        let Some(record) = saving.settings.fresh_record(change, saving.now) else {
            return Ok(saving.nothing_kept());
        };
        for _ in 0..CREATE_ATTEMPTS {
            let id = SessionId::generate();
            let key = id.storage_key();
            if self.call("create", |s| s.create(&key, &record)).await? {
                return Ok(set(saving, &id, &record.meta, How::Created));
            }
        }
        Err(collision_error())
    }
}

fn set(saving: &Saving<'_, Named>, id: &SessionId, meta: &Metadata, how: How) -> Kept {
    Kept::new(
        CookieOut::Set(saving.settings.cookie(id.text(), meta, saving.now)),
        how,
    )
}

/// Whether the idle deadline of a session whose cookie has a `Max-Age` was moved at `now`
/// (by this request's load or write, as the store reports it), so the `Max-Age` is renewed.
/// A session created at `now` already got its cookie. Another request's touch in the same
/// millisecond also counts, which only resends the same cookie.
fn renews_cookie(saving: &Saving<'_, Named>, meta: &Metadata, now: OffsetDateTime) -> bool {
    meta.last_seen == now && meta.created != now && saving.settings.has_max_age(meta)
}

/// The save error for a write that would pass the size limits. It names no key or value.
fn too_large(totals: Totals) -> StoreError {
    StoreError::new(
        StoreErrorKind::TooLarge,
        format!(
            "a session size limit was passed: the write would make the session {} keys and {} \
             bytes of data; nothing was saved (read the session before writing to get \
             SessionError::TooLarge from insert, or raise the limits)",
            totals.keys, totals.bytes
        ),
    )
}

fn collision_error() -> StoreError {
    StoreError::new(
        StoreErrorKind::Other,
        "three fresh session IDs in a row were already taken; the random source or the store \
         is broken",
    )
}
