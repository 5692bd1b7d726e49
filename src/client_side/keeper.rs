//! Sessions kept in their own cookies: the cookie is opened when the handler first reads
//! the session, and the result is sealed into the response after the handler returns.

use std::future::Future;
use std::sync::OnceLock;

use serde_json::Value;
use time::OffsetDateTime;

use super::seal::{write_data, Nonce, MAX_COOKIE_BYTES};
use super::Sealing;
use crate::error::SessionError;
use crate::id::{SessionHandle, StorageKey};
use crate::keeper::{CookieOut, Fit, FitCheck, How, Keeper, Kept, Saving, Settled};
use crate::observe::{self, Anonymous};
use crate::record::{Change, Metadata, Record};
use crate::store::{SessionInfo, StoreError, StoreErrorKind, StoreFuture};

/// The sealed value a request brought, kept unopened until the handler reads the session.
#[derive(Debug)]
pub(crate) struct Sealed {
    value: Box<str>,
    /// Set when the value opened.
    opened: OnceLock<Opening>,
}

/// What an opened cookie said besides its record.
#[derive(Debug)]
struct Opening {
    nonce: Nonce,
    /// When the session was created or last rotated.
    signed_in: OffsetDateTime,
    /// Opened by a key other than the first: the response reseals it.
    old_key: bool,
}

impl Sealed {
    fn opening(&self) -> &Opening {
        self.opened
            .get()
            .expect("a loaded record came from an opened cookie")
    }
}

/// The one place every rejected cookie is reported, whatever was wrong with it (shape,
/// base64, key, name, purpose, format version, payload), so the logs tell an attacker
/// nothing the response does not. The value itself is never logged.
fn rejected() {
    observe::anonymous(Anonymous::Malformed);
}

fn unsupported() -> StoreError {
    StoreError::new(
        StoreErrorKind::Other,
        "client-side sessions keep no server-side records, so a user's sessions cannot be \
         listed or revoked one by one; use a server-side store, or for \"sign out everywhere \
         else\" ClientSide::with_revocation_list (then revoke_others works) or \
         ClientSide::with_not_before",
    )
}

impl Keeper for Sealing {
    type Cookie = Sealed;

    fn read(&self, value: &[u8]) -> Option<Sealed> {
        // The shape check admits only ASCII, so the value is UTF-8.
        if !self.sealer.has_shape(value) {
            return None;
        }
        Some(Sealed {
            value: std::str::from_utf8(value).ok()?.into(),
            opened: OnceLock::new(),
        })
    }

    fn refused(&self) {
        rejected();
    }

    fn load<'a>(
        &'a self,
        _: &'a crate::settings::Settings,
        cookie: &'a Sealed,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<Record>> {
        let Some(record) = self.open_live(cookie, now) else {
            return StoreFuture::ready(Ok(None));
        };
        if !self.checks(&record.meta) {
            return StoreFuture::ready(Ok(Some(record)));
        }
        StoreFuture::boxed(async move {
            let opening = cookie.opening();
            if self.voided(&record.meta, opening, now).await? {
                observe::anonymous(Anonymous::Revoked);
                return Ok(None);
            }
            Ok(Some(record))
        })
    }

    fn fits(&self, check: &FitCheck<'_, Sealed>) -> Fit {
        // A cheap bound first: what the request's cookie held (or a new session's metadata),
        // plus the largest JSON spelling of every value this request sets. Only when that
        // does not fit is the record serialized to count exactly.
        let change = check.change;
        let stored = match check.cookie {
            Some(cookie) if !check.destroyed && !change.clear => cookie.value.len(),
            _ => FRESH_PAYLOAD_BOUND,
        };
        let user = match &change.user {
            Some(Some(user)) => json_str_bound(user) + 8,
            _ => 0,
        };
        let pending: usize = change
            .set
            .iter()
            .map(|(k, v)| json_str_bound(k) + json_bound(v) + 2)
            .sum();
        let bound =
            stored + user + pending + json_str_bound(check.key) + json_bound(check.value) + 2;
        if self.sealer.cookie_len_for_json(bound) <= MAX_COOKIE_BYTES {
            return Fit::Yes;
        }
        let Some(loaded) = check.loaded else {
            return Fit::NeedsRecord;
        };
        let mut record = match loaded {
            Some(record) if !check.destroyed => record.clone(),
            _ => Record::from_parts(
                serde_json::Map::new(),
                check.settings.fresh_meta(change, check.started),
            ),
        };
        change.apply_data(record.data_mut());
        let rules = &check.settings.rules;
        rules.apply_meta(change, &mut record.meta, check.started);
        record
            .data_mut()
            .insert(check.key.to_owned(), check.value.clone());
        match self.sealer.cookie_len(&record) {
            bytes if bytes > MAX_COOKIE_BYTES => Fit::CookieTooLarge(bytes),
            _ => Fit::Yes,
        }
    }

    fn settle(&self, saving: &Saving<'_, Sealed>) -> Settled {
        let ending = saving.ending;
        if ending.destroyed {
            if self.revocations.is_some() && saving.cookie.is_some() {
                // The sign-out goes on the list, under the session's nonce: the cookie is
                // opened for it first.
                match saving.loaded {
                    None => return Settled::NeedsRecord,
                    Some(Some(_)) => return Settled::NeedsSave,
                    Some(None) => {}
                }
            }
            // Nothing else to delete: the removal cookie (or a new session) replaces the old
            // value.
            return Settled::Done(destroyed(self.fresh_or_clear(saving)));
        }
        let Some(loaded) = saving.loaded else {
            if ending.rotate || !ending.change.is_empty() {
                // A write that no read preceded: the whole record is resealed, so it is opened
                // first.
                return Settled::NeedsRecord;
            }
            // Nothing was read and nothing changed: no reason to open the cookie.
            return Settled::Done(Ok(Kept::new(CookieOut::Keep, How::Unchanged)));
        };
        let (Some(record), Some(cookie)) = (loaded, saving.cookie) else {
            return Settled::Done(self.fresh_or_clear(saving));
        };
        // Judged now, at the save: a session that expired while the handler ran stays
        // expired, and its writes start a new one.
        let now = saving.now;
        if !record.is_live(now) {
            return Settled::Done(self.fresh_or_clear(saving));
        }
        let rules = &saving.settings.rules;
        let due = ending.change.alters_expiry() || rules.touch.due(&record.meta, now).is_some();
        let mut meta = record.meta.clone();
        rules.apply_meta(&ending.change, &mut meta, now);
        if !due && !ending.rotate && !cookie.opening().old_key && ending.change.is_empty() {
            return Settled::Done(Ok(Kept::new(CookieOut::Keep, How::Unchanged)));
        }
        if ending.rotate && self.checks(&record.meta) {
            // A rotation gives the session a new nonce and sign-in time, which no sign-out
            // recorded while the request ran would name: checked again first.
            return Settled::NeedsSave;
        }
        Settled::Done(self.reseal(saving, record, cookie, meta))
    }

    fn save<'a>(
        &'a self,
        saving: &'a Saving<'a, Sealed>,
    ) -> impl Future<Output = Result<Kept, StoreError>> + Send + 'a {
        let (Some(cookie), Some(Some(record))) = (saving.cookie, saving.loaded) else {
            // Settling answers every case without an opened session.
            return StoreFuture::ready(match self.settle(saving) {
                Settled::Done(out) => out,
                Settled::NeedsRecord | Settled::NeedsSave => Err(StoreError::new(
                    StoreErrorKind::Other,
                    "client-side sessions: the cookie was not opened before the save",
                )),
            });
        };
        StoreFuture::boxed(async move {
            let opening = cookie.opening();
            if saving.ending.destroyed {
                if let Some(list) = &self.revocations {
                    list.revoke_session(&opening.nonce, &record.meta, saving.now)
                        .await?;
                }
                return destroyed(self.fresh_or_clear(saving));
            }
            if self.voided(&record.meta, opening, saving.now).await? {
                // Signed out while the request ran: its writes start a new session, never
                // bring the old one back.
                return self.fresh_or_clear(saving);
            }
            let mut meta = record.meta.clone();
            let rules = &saving.settings.rules;
            rules.apply_meta(&saving.ending.change, &mut meta, saving.now);
            self.reseal(saving, record, cookie, meta)
        })
    }

    fn handle(&self, _: &Sealed) -> Option<SessionHandle> {
        None
    }

    fn sessions_of<'a>(
        &'a self,
        _: &'a str,
        _: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<SessionInfo>> {
        StoreFuture::ready(Err(unsupported()))
    }

    fn revoke<'a>(
        &'a self,
        _: &'a StorageKey,
        _: &'a str,
        _: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        StoreFuture::ready(Err(unsupported()))
    }

    fn revoke_others<'a>(
        &'a self,
        keep: Option<&'a Sealed>,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, u64> {
        let Some(list) = &self.revocations else {
            return StoreFuture::ready(Err(unsupported()));
        };
        // The session asking is spared by its nonce, so every copy of its cookie (another
        // tab's request in flight, say) keeps working.
        let spare = keep
            .and_then(|cookie| cookie.opened.get())
            .map(|o| &o.nonce);
        StoreFuture::boxed(async move {
            list.revoke_user(user, spare, now).await?;
            // How many sessions that voided, no server-side record says.
            Ok(0)
        })
    }
}

impl Sealing {
    /// Whether opening a session with metadata `meta` asks anything of a server: the
    /// revocation list, or the app's not-before check for a session with a user.
    fn checks(&self, meta: &Metadata) -> bool {
        self.revocations.is_some() || (self.not_before.is_some() && meta.user.is_some())
    }

    /// Whether the session opened from a cookie is void: signed out, or signed in before
    /// its user's cut-off, the revocation list's or the app's.
    async fn voided(
        &self,
        meta: &Metadata,
        opening: &Opening,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let signed_in = opening.signed_in;
        if let Some(list) = &self.revocations {
            if list.is_revoked(&opening.nonce, now).await? {
                return Ok(true);
            }
        }
        let Some(user) = meta.user.as_deref() else {
            return Ok(false);
        };
        if let Some(list) = &self.revocations {
            let cut_off = list.cut_off(user, now).await?;
            if cut_off.is_some_and(|c| c.voids(list, &opening.nonce, signed_in)) {
                return Ok(true);
            }
        }
        if let Some(not_before) = &self.not_before {
            if not_before.check(user).await?.is_some_and(|t| signed_in < t) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The `Set-Cookie` that reseals the opened `record` with the request's change, its
    /// metadata `meta` after the change.
    fn reseal(
        &self,
        saving: &Saving<'_, Sealed>,
        record: &Record,
        cookie: &Sealed,
        mut meta: Metadata,
    ) -> Result<Kept, StoreError> {
        let (ending, now) = (saving.ending, saving.now);
        let rules = &saving.settings.rules;
        let change = &ending.change;
        if let Some(totals) = rules.limits.refuse(record.data(), change) {
            return Err(StoreError::new(
                StoreErrorKind::TooLarge,
                format!(
                    "a session size limit was passed: the write would make the session {} keys \
                     and {} bytes of data; nothing was saved",
                    totals.keys, totals.bytes
                ),
            ));
        }
        // Resealing costs the same with or without a touch, so every reseal is one (`meta`
        // has the change applied already, a restart included).
        rules.touch.restart(&meta, now).apply_to(&mut meta);
        let opening = cookie.opening();
        // A rotation is a new sign-in as far as the not-before checks go: a fresh nonce and
        // a fresh time.
        let (nonce, signed_in) = if ending.rotate {
            (Nonce::generate(), now)
        } else {
            (opening.nonce.clone(), opening.signed_in)
        };
        let how = if ending.rotate {
            How::Rotated
        } else if change.is_empty() {
            How::Unchanged
        } else {
            How::Written
        };
        // Sealed from the loaded record and the change, without copying the record first.
        self.sealed_out(
            saving,
            &meta,
            signed_in,
            |out| write_data(record, Some(change), out),
            &nonce,
        )
        .map(|cookie| Kept::new(cookie, how))
    }
    /// Opens the cookie and checks its deadlines: the live record, or `None` for a cookie
    /// that does not open or has expired.
    fn open_live(&self, cookie: &Sealed, now: OffsetDateTime) -> Option<Record> {
        let Some(opened) = self.sealer.open(&cookie.value) else {
            rejected();
            return None;
        };
        if !opened.record.is_live(now) {
            observe::anonymous(Anonymous::Expired);
            return None;
        }
        // Kept even if a check then voids the record: it is only read for a record that
        // loaded, and to spare the session asking for "sign out everywhere else".
        let _ = cookie.opened.set(Opening {
            nonce: opened.nonce,
            signed_in: opened.signed_in,
            old_key: opened.old_key,
        });
        Some(opened.record)
    }

    /// A new sealed session holding the request's change, if it holds anything worth
    /// keeping, or the removal of a cookie that named no live session.
    fn fresh_or_clear(&self, saving: &Saving<'_, Sealed>) -> Result<Kept, StoreError> {
        let change: &Change = &saving.ending.change;
        match saving.settings.fresh_record(change, saving.now) {
            Some(record) => self
                .sealed_out(
                    saving,
                    &record.meta,
                    record.meta.created,
                    |out| write_data(&record, None, out),
                    &Nonce::generate(),
                )
                .map(|cookie| Kept::new(cookie, How::Created)),
            None => Ok(saving.nothing_kept()),
        }
    }

    /// Seals a record given as metadata and data into the response's `Set-Cookie`, rendered
    /// from the sealed value where the jar holds it.
    fn sealed_out(
        &self,
        saving: &Saving<'_, Sealed>,
        meta: &Metadata,
        signed_in: OffsetDateTime,
        write_data: impl FnOnce(&mut Vec<u8>),
        nonce: &Nonce,
    ) -> Result<CookieOut, StoreError> {
        self.sealer
            .seal_with(meta, signed_in, write_data, nonce, |value| {
                CookieOut::Set(saving.settings.cookie(value, meta, saving.now))
            })
            .map_err(|bytes| {
                StoreError::new(
                    StoreErrorKind::TooLarge,
                    format!("{}", SessionError::CookieTooLarge { bytes }),
                )
            })
    }
}

/// A save that ended the session, whatever it then kept of the request's later writes.
fn destroyed(kept: Result<Kept, StoreError>) -> Result<Kept, StoreError> {
    kept.map(|mut kept| {
        kept.how = How::Destroyed;
        kept
    })
}

/// More than the JSON payload of a session with no data and no user takes (format, nonce,
/// five times and the persistence flag).
const FRESH_PAYLOAD_BOUND: usize = 160;

/// At least as many bytes as `value` takes as JSON: numbers at their longest (24), every
/// byte of a string that JSON may escape at its longest escape (6).
fn json_bound(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 24,
        Value::String(s) => json_str_bound(s),
        Value::Array(items) => 2 + items.iter().map(|v| json_bound(v) + 1).sum::<usize>(),
        Value::Object(map) => {
            2 + map
                .iter()
                .map(|(k, v)| json_str_bound(k) + json_bound(v) + 2)
                .sum::<usize>()
        }
    }
}

fn json_str_bound(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| {
            if b < 0x20 || b == b'"' || b == b'\\' {
                6
            } else {
                1
            }
        })
        .sum::<usize>()
}
