//! One request in client-side mode: finding the sealed cookie, opening it when the handler
//! first reads the session, and sealing the result after the handler returns.

use std::sync::{Arc, OnceLock};

use http::HeaderMap;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::seal::{Nonce, MAX_COOKIE_BYTES};
use super::Sealing;
use crate::cookie_header;
use crate::error::SessionError;
use crate::layer::Shared;
use crate::record::{Change, Metadata, Record, Touch};
use crate::service::{fresh_record, nothing_kept, set_cookie, CookieOut};
use crate::session::{Inner, Session};
use crate::store::{StoreError, StoreErrorKind};

/// The sealed value a request brought, kept unopened until the handler reads the session.
pub(crate) struct Incoming {
    value: Box<str>,
    /// Set when the value opened: the session's nonce, and whether an old key opened it.
    opened: OnceLock<(Nonce, bool)>,
}

/// The one place every rejected cookie is reported, whatever was wrong with it (shape,
/// base64, key, name, purpose, format version, payload), so the logs tell an attacker
/// nothing the response does not. The value itself is never logged.
fn rejected() {
    tracing::debug!(
        target: "session_layer::client_side",
        "session cookie rejected: not sealed for this cookie and purpose by a key of the ring, \
         or malformed; the request is anonymous"
    );
}

/// The [`Session`] of a request in client-side mode. Only the value's shape is checked here;
/// the cryptography waits for the handler's first read.
pub(crate) fn session_for(
    shared: Arc<Shared>,
    sealing: &Sealing,
    headers: &HeaderMap,
    now: OffsetDateTime,
) -> Session {
    let found = cookie_header::find(headers, shared.cookie.name.as_bytes(), |v| {
        // The shape check admits only ASCII, so the value is UTF-8.
        sealing
            .sealer
            .has_shape(v)
            .then(|| std::str::from_utf8(v).ok())
            .flatten()
    });
    let incoming = found.first_valid.map(|v| Incoming {
        value: v.into(),
        opened: OnceLock::new(),
    });
    if found.present && incoming.is_none() {
        rejected();
    }
    Session::new_sealed(shared, incoming, found.present, now)
}

/// Opens the request's cookie: the live record it holds, or `None` for a missing, rejected
/// or expired cookie, or one the app's not-before check voids.
///
/// # Errors
///
/// Only the app's not-before check can fail; a bad cookie is never an error.
pub(crate) async fn load(inner: &Inner, sealing: &Sealing) -> Result<Option<Record>, StoreError> {
    let Some(record) = open_live(inner, sealing) else {
        return Ok(None);
    };
    if let (Some(not_before), Some(user)) = (&sealing.not_before, &record.meta.user) {
        if not_before
            .check(user)
            .await?
            .is_some_and(|t| record.meta.created < t)
        {
            return Ok(None);
        }
    }
    Ok(Some(record))
}

/// [`load`], when it needs no waiting: `None` if a not-before check must be made.
pub(crate) fn load_at_once(inner: &Inner, sealing: &Sealing) -> Option<Option<Record>> {
    sealing
        .not_before
        .is_none()
        .then(|| open_live(inner, sealing))
}

/// The part of [`load`] that needs no waiting: opens the cookie and checks its deadlines.
fn open_live(inner: &Inner, sealing: &Sealing) -> Option<Record> {
    let incoming = inner.sealed.as_ref()?;
    let Some(opened) = sealing.sealer.open(&incoming.value) else {
        rejected();
        return None;
    };
    if !opened.record.is_live(inner.now) {
        return None;
    }
    // Kept even if the not-before check then voids the record: it is only read for a
    // record that loaded.
    let _ = incoming.opened.set((opened.nonce, opened.old_key));
    Some(opened.record)
}

/// Refuses a write that would make the cookie larger than browsers keep, while the handler
/// can still react. The layer checks again when it seals, as metadata set later in the
/// request (a long user name, say) also counts.
pub(crate) async fn check_insert(
    session: &Session,
    key: &str,
    value: &Value,
) -> Result<(), SessionError> {
    let inner = session.inner();
    let Some(sealing) = &inner.shared.client_side else {
        return Ok(());
    };
    // A cheap bound first: what the request's cookie held (or a new session's metadata),
    // plus the largest JSON spelling of every value this request sets. Only when that does
    // not fit is the record serialized to count exactly.
    let bound = {
        let state = session.state();
        let stored = match &inner.sealed {
            Some(incoming) if !state.destroyed && !state.change.clear => incoming.value.len(),
            _ => FRESH_PAYLOAD_BOUND,
        };
        let user = match &state.change.user {
            Some(Some(user)) => json_str_bound(user) + 8,
            _ => 0,
        };
        let pending: usize = state
            .change
            .set
            .iter()
            .map(|(k, v)| json_str_bound(k) + json_bound(v) + 2)
            .sum();
        stored + user + pending + json_str_bound(key) + json_bound(value) + 2
    };
    if sealing.sealer.cookie_len_for_json(bound) <= MAX_COOKIE_BYTES {
        return Ok(());
    }
    let loaded = inner
        .loaded
        .get_or_try_init(|| load(inner, sealing))
        .await?;
    let mut record = {
        let state = session.state();
        let mut record = match loaded {
            Some(record) if !state.destroyed => record.clone(),
            _ => Record::from_parts(Map::new(), session.fresh_meta(&state.change)),
        };
        state.change.apply_to(&mut record);
        record
    };
    record.data_mut().insert(key.to_owned(), value.clone());
    let bytes = sealing.sealer.cookie_len(&record);
    if bytes > MAX_COOKIE_BYTES {
        return Err(SessionError::CookieTooLarge { bytes });
    }
    Ok(())
}

/// More than the JSON payload of a session with no data and no user takes (format, nonce,
/// four times and the persistence flag).
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

/// Decides the cookie after the handler: unchanged, a new sealed value, or a removal.
pub(crate) async fn save(session: &Session, sealing: &Sealing) -> Result<CookieOut, StoreError> {
    let inner = session.inner();
    if must_open(session) {
        // A write that no read preceded opens the cookie now: the whole record is resealed.
        inner
            .loaded
            .get_or_try_init(|| load(inner, sealing))
            .await?;
    }
    save_now(session, sealing).expect("the cookie was opened")
}

/// [`save`] without waiting, or `None` when the cookie is still to be opened and the app's
/// not-before check awaited first. Most requests (a read, a read and write, a write to a
/// cookie with no not-before check) finish here, with no boxed future.
pub(crate) fn save_now(
    session: &Session,
    sealing: &Sealing,
) -> Option<Result<CookieOut, StoreError>> {
    let inner = session.inner();
    if must_open(session) {
        if sealing.not_before.is_some() {
            return None;
        }
        let _ = inner.loaded.set(open_live(inner, sealing));
    }
    let (destroyed, rotate, mut change) = {
        // The request is over: the change moves to the save instead of being copied.
        let mut state = session.state();
        (
            state.destroyed,
            state.rotate,
            std::mem::take(&mut state.change),
        )
    };
    if destroyed {
        // Nothing to delete: the removal cookie (or a new session) replaces the old value.
        return Some(fresh_or_clear(session, sealing, &change));
    }
    let Some(loaded) = inner.loaded.get() else {
        // Nothing was read (or the read failed) and nothing changed: no reason to open.
        return Some(Ok(CookieOut::Keep));
    };
    let Some(record) = loaded else {
        return Some(fresh_or_clear(session, sealing, &change));
    };
    let (nonce, old_key) = inner
        .sealed
        .as_ref()
        .and_then(|s| s.opened.get())
        .expect("a loaded record came from an opened cookie");

    let now = inner.now;
    let expiry = &inner.shared.expiry;
    let persistent = change.persistent.unwrap_or(record.meta.persistent);
    let idle_deadline = now + expiry.idle_for(persistent);
    let step = time::Duration::try_from(expiry.touch_step).unwrap_or(time::Duration::MAX);
    let due = idle_deadline.min(record.meta.absolute_deadline) - record.meta.idle_deadline > step;
    if !due && !rotate && !old_key && change.is_empty() {
        return Some(Ok(CookieOut::Keep));
    }
    // Resealing costs the same with or without a touch, so every reseal is one.
    change.touch = Some(Touch {
        seen: now,
        idle_deadline,
    });
    let nonce = if rotate {
        Nonce::generate()
    } else {
        nonce.clone()
    };
    // Sealed from the loaded record and the change, without copying the record first.
    let mut meta = record.meta.clone();
    change.apply_meta(&mut meta);
    Some(sealed_out(
        session,
        sealing,
        &meta,
        |out| super::seal::write_data(record, Some(&change), out),
        &nonce,
    ))
}

/// Whether the save has to open the cookie first: the session was neither read nor
/// destroyed, and the request rotated or wrote.
fn must_open(session: &Session) -> bool {
    let state = session.state();
    !state.destroyed
        && (state.rotate || !state.change.is_empty())
        && session.inner().loaded.get().is_none()
}

/// A new sealed session holding `change`, if the request wrote anything worth keeping, or the
/// removal of a cookie that named no live session.
fn fresh_or_clear(
    session: &Session,
    sealing: &Sealing,
    change: &Change,
) -> Result<CookieOut, StoreError> {
    match fresh_record(session, change) {
        Some(record) => sealed_out(
            session,
            sealing,
            &record.meta,
            |out| super::seal::write_data(&record, None, out),
            &Nonce::generate(),
        ),
        None => Ok(nothing_kept(session)),
    }
}

/// Seals a record given as metadata and data into the response's `Set-Cookie`, rendered
/// from the sealed value where the jar holds it.
fn sealed_out(
    session: &Session,
    sealing: &Sealing,
    meta: &Metadata,
    write_data: impl FnOnce(&mut Vec<u8>),
    nonce: &Nonce,
) -> Result<CookieOut, StoreError> {
    let inner = session.inner();
    sealing
        .sealer
        .seal_with(meta, write_data, nonce, |value| {
            CookieOut::Sealed(set_cookie(&inner.shared, value, meta, inner.now))
        })
        .map_err(|bytes| {
            StoreError::new(
                StoreErrorKind::TooLarge,
                format!("{}", SessionError::CookieTooLarge { bytes }),
            )
        })
}
