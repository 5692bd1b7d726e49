//! One request's session, whichever keeper holds it: the cookie read once when the request
//! comes in, the record loaded at most once when a handler first reads it, the handler's
//! writes collected as one change, and one save when the handler is done.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use http::HeaderMap;
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use crate::cookie_header;
use crate::id::{SessionHandle, StorageKey};
use crate::keeper::{Ending, Fit, FitCheck, Keeper, Kept, Saving, Settled};
use crate::observe;
use crate::record::Record;
use crate::rules::Totals;
use crate::settings::Settings;
use crate::store::{SessionInfo, StoreFuture};

/// A layer's settings and the keeper of its sessions.
#[derive(Debug)]
pub(crate) struct Shared<K> {
    pub(crate) settings: Settings,
    pub(crate) keeper: K,
}

/// Starts the session of each request: what a layer holds, whatever its keeper.
pub(crate) trait Begin: fmt::Debug + Send + Sync + 'static {
    /// The session of a request with these headers. Only the cookie's shape is checked: a
    /// handler that never reads the session costs no load.
    fn begin(self: Arc<Self>, headers: &HeaderMap) -> Arc<dyn Core>;
}

impl<K: Keeper> Begin for Shared<K> {
    fn begin(self: Arc<Self>, headers: &HeaderMap) -> Arc<dyn Core> {
        let started = self.settings.now();
        let found = cookie_header::find(headers, self.settings.cookie_name.as_bytes(), |v| {
            self.keeper.read(v)
        });
        if found.present && found.first_valid.is_none() {
            self.keeper.refused();
        }
        // Without a cookie of the right shape there is nothing to load: the session starts
        // empty.
        let loaded = match found.first_valid {
            Some(_) => OnceCell::new(),
            None => OnceCell::new_with(Some(None)),
        };
        Arc::new(Visit {
            span: observe::request_span(found.present),
            shared: self,
            cookie: found.first_valid,
            had_cookie: found.present,
            started,
            loaded,
            state: Mutex::default(),
        })
    }
}

/// What the handler has done to the session so far.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// The handler read or wrote the session (the response then varies by cookie).
    pub(crate) accessed: bool,
    /// What is left to keep when the handler is done.
    pub(crate) ending: Ending,
    /// What the data adds up to with the change applied, as far as this request knows it,
    /// and whether that counts what was read: kept so that many writes count in linear time.
    pub(crate) known: Option<(bool, Totals)>,
}

/// The request flow as the [`Session`](crate::Session) handle sees it, with the keeper's
/// type erased.
pub(crate) trait Core: Send + Sync + 'static {
    fn settings(&self) -> &Settings;
    /// When the request began: what loads and per-user calls are judged at.
    fn started(&self) -> OffsetDateTime;
    fn had_cookie(&self) -> bool;
    /// The request's span: the store calls nest under it, and it records the outcome.
    fn span(&self) -> &tracing::Span;
    fn state(&self) -> MutexGuard<'_, State>;
    /// The stored record if it was loaded: `None` if not yet, `Some(None)` if there is none.
    fn loaded(&self) -> Option<Option<&Record>>;
    /// The stored record, loaded at most once per request.
    fn record(&self) -> StoreFuture<'_, Option<&Record>>;
    /// Whether setting `key` to `value` keeps the session within what its keeper holds.
    fn fits(&self, state: &State, key: &str, value: &serde_json::Value) -> Fit;
    fn handle(&self) -> Option<SessionHandle>;
    fn sessions_of<'a>(&'a self, user: &'a str) -> StoreFuture<'a, Vec<SessionInfo>>;
    fn revoke<'a>(&'a self, key: &'a StorageKey, user: &'a str) -> StoreFuture<'a, bool>;
    fn revoke_others<'a>(&'a self, user: &'a str) -> StoreFuture<'a, u64>;
    /// Keeps what the request did, after its handler: at most one store operation.
    fn finish(self: Arc<Self>) -> StoreFuture<'static, Kept>;
}

struct Visit<K: Keeper> {
    span: tracing::Span,
    shared: Arc<Shared<K>>,
    /// The cookie value, if it had the right shape.
    cookie: Option<K::Cookie>,
    /// Whether the request carried a cookie of the session's name at all.
    had_cookie: bool,
    started: OffsetDateTime,
    loaded: OnceCell<Option<Record>>,
    state: Mutex<State>,
}

impl<K: Keeper> Visit<K> {
    fn saving<'a>(&'a self, ending: &'a Ending, now: OffsetDateTime) -> Saving<'a, K::Cookie> {
        Saving {
            settings: &self.shared.settings,
            cookie: self.cookie.as_ref(),
            had_cookie: self.had_cookie,
            loaded: self.loaded(),
            started: self.started,
            now,
            ending,
        }
    }

    /// The save that needs waiting: on the store, or first on the record the keeper asked
    /// for.
    async fn save(
        &self,
        settled: Settled,
        ending: &Ending,
        now: OffsetDateTime,
    ) -> Result<Kept, crate::store::StoreError> {
        if let Settled::NeedsRecord = settled {
            self.record().await?;
        }
        let saving = self.saving(ending, now);
        match self.shared.keeper.settle(&saving) {
            Settled::Done(out) => out,
            Settled::NeedsSave | Settled::NeedsRecord => self.shared.keeper.save(&saving).await,
        }
    }
}

impl<K: Keeper> Core for Visit<K> {
    fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    fn started(&self) -> OffsetDateTime {
        self.started
    }

    fn had_cookie(&self) -> bool {
        self.had_cookie
    }

    fn span(&self) -> &tracing::Span {
        &self.span
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another clone's holder panicked; the state is whole.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn loaded(&self) -> Option<Option<&Record>> {
        self.loaded.get().map(Option::as_ref)
    }

    fn record(&self) -> StoreFuture<'_, Option<&Record>> {
        if let Some(loaded) = self.loaded.get() {
            return StoreFuture::ready(Ok(loaded.as_ref()));
        }
        let cookie = self
            .cookie
            .as_ref()
            .expect("the load cell is filled at once when there is no cookie");
        let load = self
            .shared
            .keeper
            .load(&self.shared.settings, cookie, self.started);
        match load.into_ready() {
            Ok(Ok(record)) => {
                if let Err(tokio::sync::SetError::InitializingError(record)) =
                    self.loaded.set(record)
                {
                    // Another read of this request is loading: wait for it.
                    return StoreFuture::boxed(async move {
                        let loaded = self.loaded.get_or_init(|| async { record }).await;
                        Ok(loaded.as_ref())
                    });
                }
                StoreFuture::ready(Ok(self.loaded.get().and_then(Option::as_ref)))
            }
            Ok(Err(error)) => StoreFuture::ready(Err(error)),
            Err(waiting) => StoreFuture::boxed(async move {
                let loaded = self.loaded.get_or_try_init(|| waiting).await?;
                Ok(loaded.as_ref())
            }),
        }
    }

    fn fits(&self, state: &State, key: &str, value: &serde_json::Value) -> Fit {
        self.shared.keeper.fits(&FitCheck {
            settings: &self.shared.settings,
            cookie: self.cookie.as_ref(),
            loaded: self.loaded(),
            destroyed: state.ending.destroyed,
            change: &state.ending.change,
            started: self.started,
            key,
            value,
        })
    }

    fn handle(&self) -> Option<SessionHandle> {
        self.shared.keeper.handle(self.cookie.as_ref()?)
    }

    fn sessions_of<'a>(&'a self, user: &'a str) -> StoreFuture<'a, Vec<SessionInfo>> {
        self.shared.keeper.sessions_of(user, self.started)
    }

    fn revoke<'a>(&'a self, key: &'a StorageKey, user: &'a str) -> StoreFuture<'a, bool> {
        let revoke = self.shared.keeper.revoke(key, user, self.started);
        counted(revoke, |ended| u64::from(*ended))
    }

    fn revoke_others<'a>(&'a self, user: &'a str) -> StoreFuture<'a, u64> {
        let revoke = self
            .shared
            .keeper
            .revoke_others(self.cookie.as_ref(), user, self.started);
        counted(revoke, |ended| *ended)
    }

    fn finish(self: Arc<Self>) -> StoreFuture<'static, Kept> {
        // The request is over: what it did moves to the save instead of being copied.
        let ending = std::mem::take(&mut self.state().ending);
        let now = self.shared.settings.now();
        let mut settled = self.shared.keeper.settle(&self.saving(&ending, now));
        if let Settled::NeedsRecord = settled {
            // A load that answers at once (a cookie to open, an in-process store) needs no
            // waiting either; one that waits is made again inside the save.
            match self.record().into_ready() {
                Ok(Ok(_)) => settled = self.shared.keeper.settle(&self.saving(&ending, now)),
                Ok(Err(error)) => return StoreFuture::ready(Err(error)),
                Err(_) => {}
            }
        }
        match settled {
            Settled::Done(out) => StoreFuture::ready(out),
            settled => StoreFuture::boxed(async move { self.save(settled, &ending, now).await }),
        }
    }
}

/// A revocation's answer, with the sessions it ended counted.
fn counted<'a, T: Send + 'a>(
    revoke: StoreFuture<'a, T>,
    ended: fn(&T) -> u64,
) -> StoreFuture<'a, T> {
    match revoke.into_ready() {
        Ok(answer) => {
            if let Ok(answer) = &answer {
                observe::revoked(ended(answer));
            }
            StoreFuture::ready(answer)
        }
        Err(waiting) => StoreFuture::boxed(async move {
            let answer = waiting.await?;
            observe::revoked(ended(&answer));
            Ok(answer)
        }),
    }
}
