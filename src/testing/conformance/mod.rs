//! The store contract, one public async function per case. Each panics with a message that
//! names the broken rule. Cases use fresh random keys and user names, so they can run
//! concurrently against one shared backend.
//!
//! The cases come in six files by topic: lifecycle, apply, rotate, users, the mirrored
//! rules, and per-session expiry. [`for_each_conformance_case!`](crate::for_each_conformance_case) lists them
//! once; [`store_conformance_tests!`](crate::store_conformance_tests) and [`run_all`]
//! expand that list.

use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::clock::to_millis;
use crate::id::{SessionId, StorageKey};
use crate::record::Metadata;
use crate::record::{Change, Record, Touch};
use crate::store::{Applied, Limits, Rotated, SessionStore, Totals, TouchRule, WriteRules};

mod apply;
mod expiry;
mod lifecycle;
mod rotate;
mod rules;
mod users;

pub use self::apply::*;
pub use self::expiry::*;
pub use self::lifecycle::*;
pub use self::rotate::*;
pub use self::rules::*;
pub use self::users::*;

fn now() -> OffsetDateTime {
    to_millis(OffsetDateTime::now_utc())
}

fn key() -> StorageKey {
    SessionId::generate().storage_key()
}

fn user() -> String {
    format!("user-{}", &key().to_hex()[..16])
}

/// A live record: idle deadline in one hour, absolute in two.
fn record(now: OffsetDateTime) -> Record {
    let mut r = Record::new(now, now + Duration::hours(1), now + Duration::hours(2));
    r.data_mut().insert("greeting".into(), json!("hello"));
    r
}

fn set(key: &str, value: serde_json::Value) -> Change {
    let mut c = Change::default();
    c.set(key, value);
    c
}

async fn create<S: SessionStore + ?Sized>(store: &S, key: &StorageKey, record: &Record) {
    assert!(
        store.create(key, record).await.expect("create"),
        "create of a fresh key reported a collision"
    );
}

async fn load<S: SessionStore + ?Sized>(
    store: &S,
    key: &StorageKey,
    now: OffsetDateTime,
) -> Option<Record> {
    store.load(key, None, now).await.expect("load")
}

/// Rules that never refuse and never touch: the change alone applies.
fn loose() -> WriteRules {
    WriteRules::new(
        Limits::new(usize::MAX, usize::MAX),
        TouchRule::new(Duration::hours(1), Duration::hours(10), Duration::MAX),
    )
}

type Result<T> = std::result::Result<T, crate::store::StoreError>;

/// `apply` of a change alone: its metadata afterwards, or `None` if the record is gone.
async fn update<S: SessionStore + ?Sized>(
    store: &S,
    key: &StorageKey,
    change: &Change,
    now: OffsetDateTime,
) -> Result<Option<Metadata>> {
    Ok(match store.apply(key, change, &loose(), now).await? {
        Applied::Done(meta) => Some(meta),
        Applied::Gone => None,
        other => panic!("apply within limits that cannot be passed answered {other:?}"),
    })
}

/// `apply` of a change that only moves the idle deadline: whether the record was live.
async fn touch<S: SessionStore + ?Sized>(
    store: &S,
    key: &StorageKey,
    seen: OffsetDateTime,
    idle_deadline: OffsetDateTime,
) -> Result<bool> {
    let change = Change {
        touch: Some(Touch {
            seen,
            idle_deadline,
        }),
        ..Change::default()
    };
    Ok(update(store, key, &change, seen).await?.is_some())
}

/// `rotate` of a change alone.
async fn rotate<S: SessionStore + ?Sized>(
    store: &S,
    old: &StorageKey,
    new: &StorageKey,
    change: &Change,
    now: OffsetDateTime,
) -> Result<Rotated> {
    store.rotate(old, new, change, &loose(), now).await
}

/// `rotate` within `limits`, never touching.
async fn rotate_within<S: SessionStore + ?Sized>(
    store: &S,
    old: &StorageKey,
    new: &StorageKey,
    change: &Change,
    limits: &Limits,
    now: OffsetDateTime,
) -> Result<Rotated> {
    let rules = WriteRules::new(*limits, loose().touch);
    store.rotate(old, new, change, &rules, now).await
}

/// `load` with the touch rule.
async fn load_touching<S: SessionStore + ?Sized>(
    store: &S,
    key: &StorageKey,
    now: OffsetDateTime,
    rule: &TouchRule,
) -> Result<Option<Record>> {
    store.load(key, Some(rule), now).await
}

/// The touch rule of the cases below: idle 1 hour, persistent idle 10 hours, step 1 minute.
fn rule() -> TouchRule {
    TouchRule::new(
        Duration::hours(1),
        Duration::hours(10),
        Duration::minutes(1),
    )
}

fn rules(max_bytes: usize, max_keys: usize) -> WriteRules {
    WriteRules::new(Limits::new(max_bytes, max_keys), rule())
}

async fn write<S: SessionStore + ?Sized>(
    store: &S,
    key: &StorageKey,
    change: &Change,
    rules: &WriteRules,
    now: OffsetDateTime,
) -> Applied {
    store.apply(key, change, rules, now).await.expect("apply")
}

/// Runs every case in turn against `store`.
pub async fn run_all<S: SessionStore + ?Sized>(store: &S) {
    macro_rules! run {
        ($($case:ident),*) => {$( $case(store).await; )*};
    }
    crate::for_each_conformance_case!(run);
}

#[cfg(test)]
mod tests {
    /// The list the macros expand is the one place a case is named: a case written but not
    /// listed would never run against any store.
    #[test]
    fn every_case_written_is_listed_once() {
        macro_rules! names {
            ($($case:ident),*) => { const LISTED: &[&str] = &[$(stringify!($case)),*]; };
        }
        crate::for_each_conformance_case!(names);
        let listed = LISTED;
        let mut written = Vec::new();
        for source in [
            include_str!("apply.rs"),
            include_str!("expiry.rs"),
            include_str!("lifecycle.rs"),
            include_str!("rotate.rs"),
            include_str!("rules.rs"),
            include_str!("users.rs"),
        ] {
            for line in source.lines() {
                if let Some(rest) = line.strip_prefix("pub async fn ") {
                    let name = rest.split(['<', '(']).next().unwrap_or_default();
                    written.push(name.trim());
                }
            }
        }
        for name in &written {
            let times = listed.iter().filter(|l| *l == name).count();
            assert_eq!(times, 1, "case {name} is listed {times} times");
        }
        assert_eq!(listed.len(), written.len(), "a listed case is not written");
    }
}
