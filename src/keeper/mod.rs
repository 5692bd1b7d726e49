//! Where a layer's sessions live: the one seam between the request flow and the session's
//! home. [`Stored`] keeps them in a [`SessionStore`](crate::SessionStore) under the hash of
//! the cookie's ID; the client-side mode keeps each one sealed in its own cookie. The request
//! flow (loading once, collecting writes, saving once, answering with `Set-Cookie`) is the
//! same for both and knows nothing of which one runs.

mod stored;

use std::fmt::Debug;
use std::future::Future;

use http::HeaderValue;
use serde_json::Value;
use time::OffsetDateTime;

pub(crate) use self::stored::Stored;
use crate::id::{SessionHandle, StorageKey};
use crate::record::{Change, Record};
use crate::settings::Settings;
use crate::store::{SessionInfo, StoreError, StoreFuture};

/// A home for sessions. Each method is judged at the `now` it is given.
pub(crate) trait Keeper: Debug + Send + Sync + 'static {
    /// What a cookie value of the right shape becomes for this keeper.
    type Cookie: Send + Sync + 'static;

    /// The request's cookie value, if it has the shape this keeper issues. Nothing but the
    /// shape is checked here: a request whose handler never reads the session costs no more.
    fn read(&self, value: &[u8]) -> Option<Self::Cookie>;

    /// Reports, once, a request whose cookie of the session's name had no value of the
    /// right shape: the request is anonymous. Never logs the value.
    fn refused(&self);

    /// The live record behind `cookie` at `now`, or `None`; a touch due by the settings'
    /// rule is made in the same step.
    fn load<'a>(
        &'a self,
        settings: &'a Settings,
        cookie: &'a Self::Cookie,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<Record>>;

    /// Whether setting `key` to `value` keeps the session within what this keeper can hold,
    /// with the request's pending `change` and, when it was read, the stored `record`.
    fn fits(&self, check: &FitCheck<'_, Self::Cookie>) -> Fit;

    /// What to answer after the handler, when that needs no waiting; otherwise what it
    /// waits for.
    fn settle(&self, saving: &Saving<'_, Self::Cookie>) -> Settled;

    /// The save that [`settle`](Self::settle) said needs a store call. Its future is the
    /// keeper's own, not boxed: the request core boxes the save once, only if it waits.
    fn save<'a>(
        &'a self,
        saving: &'a Saving<'a, Self::Cookie>,
    ) -> impl Future<Output = Result<Kept, StoreError>> + Send + 'a;

    /// The handle the session behind `cookie` is listed under, if it has one.
    fn handle(&self, cookie: &Self::Cookie) -> Option<SessionHandle>;

    /// The live sessions of `user`.
    fn sessions_of<'a>(
        &'a self,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<SessionInfo>>;

    /// Ends the session a [`SessionHandle`] names (by its storage key) if it belongs to
    /// `user`; answers whether it did.
    fn revoke<'a>(
        &'a self,
        key: &'a StorageKey,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool>;

    /// Ends every session of `user` but the one behind `keep`; answers how many ended.
    fn revoke_others<'a>(
        &'a self,
        keep: Option<&'a Self::Cookie>,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, u64>;
}

/// What a request leaves to keep when its handler is done, taken from it once.
#[derive(Debug, Default)]
pub(crate) struct Ending {
    /// The session the cookie named ends; the change, if any, starts a new one.
    pub(crate) destroyed: bool,
    /// The session moves to a new ID (or, client-side, a new nonce).
    pub(crate) rotate: bool,
    pub(crate) change: Change,
}

/// Everything a keeper's save looks at.
#[derive(Debug)]
pub(crate) struct Saving<'a, C> {
    pub(crate) settings: &'a Settings,
    /// The request's cookie value, if it had the right shape.
    pub(crate) cookie: Option<&'a C>,
    /// Whether the request carried a cookie of the session's name at all.
    pub(crate) had_cookie: bool,
    /// `None` if the handler never read the session; `Some(None)` if it read and found none.
    pub(crate) loaded: Option<Option<&'a Record>>,
    /// When the request began: the time its load was judged at.
    pub(crate) started: OffsetDateTime,
    /// The time the save is judged at: a session that expired while the handler ran stays
    /// expired.
    pub(crate) now: OffsetDateTime,
    pub(crate) ending: &'a Ending,
}

impl<C> Saving<'_, C> {
    /// The answer when the request keeps no session: a cookie that named none is removed,
    /// and a request without one gets nothing.
    pub(crate) fn nothing_kept(&self) -> Kept {
        let how = if self.ending.destroyed {
            How::Destroyed
        } else {
            How::Unchanged
        };
        if self.had_cookie {
            Kept::new(CookieOut::Remove, how)
        } else {
            Kept::new(CookieOut::Keep, how)
        }
    }
}

/// What [`Keeper::settle`] decided.
#[derive(Debug)]
// Only the client-side keeper asks for the record first.
#[cfg_attr(not(feature = "client-side"), allow(dead_code))]
pub(crate) enum Settled {
    /// The answer, with no waiting.
    Done(Result<Kept, StoreError>),
    /// The stored record is needed first (a write that no read preceded, in a keeper that
    /// rewrites the whole session); settle again once it is loaded.
    NeedsRecord,
    /// A store call is needed: [`Keeper::save`].
    NeedsSave,
}

/// What a save did: what the response says about the cookie, and what became of the
/// session.
#[derive(Debug)]
pub(crate) struct Kept {
    pub(crate) cookie: CookieOut,
    pub(crate) how: How,
}

impl Kept {
    pub(crate) fn new(cookie: CookieOut, how: How) -> Self {
        Self { cookie, how }
    }
}

/// What became of the session at the save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum How {
    /// Nothing the handler asked for was written (a read; a touch or a reseal may be).
    Unchanged,
    /// A new session was stored.
    Created,
    /// The handler's writes were applied to the session.
    Written,
    /// The session moved to a new ID.
    Rotated,
    /// The session was ended (a new one may hold writes made after that).
    Destroyed,
}

/// What the response says about the session cookie.
#[derive(Debug)]
pub(crate) enum CookieOut {
    /// Nothing: the browser's cookie stands.
    Keep,
    /// This `Set-Cookie`.
    Set(HeaderValue),
    /// The removal of the cookie.
    Remove,
}

/// Everything [`Keeper::fits`] looks at.
#[derive(Debug)]
// Only the client-side keeper holds sessions of bounded size.
#[cfg_attr(not(feature = "client-side"), allow(dead_code))]
pub(crate) struct FitCheck<'a, C> {
    pub(crate) settings: &'a Settings,
    pub(crate) cookie: Option<&'a C>,
    /// The stored record, if the session was read: `None` if not read yet.
    pub(crate) loaded: Option<Option<&'a Record>>,
    /// The session the cookie named is ended: its stored record no longer counts.
    pub(crate) destroyed: bool,
    pub(crate) change: &'a Change,
    pub(crate) started: OffsetDateTime,
    pub(crate) key: &'a str,
    pub(crate) value: &'a Value,
}

/// What [`Keeper::fits`] found.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "client-side"), allow(dead_code))]
pub(crate) enum Fit {
    Yes,
    /// The session would not fit: its cookie would take this many bytes.
    CookieTooLarge(usize),
    /// Cannot tell without the stored record; ask again once it is loaded.
    NeedsRecord,
}
