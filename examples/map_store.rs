//! The smallest correct store: every session in one map behind one lock. It passes the
//! whole conformance suite (`tests/map_store.rs` runs it), which is the bar for any store.
//! One lock over everything makes each operation atomic, including "sign out everywhere"
//! against a racing rotation; a real store gets the same from a transaction, a script, or
//! one statement. Run it with `cargo run --example map_store`.

use std::collections::HashMap;
use std::sync::Mutex;

use session_layer::id::StorageKey;
use session_layer::record::{Change, Record};
use session_layer::store::{Applied, Rotated, SessionInfo, StoreFuture, TouchRule, WriteRules};
use session_layer::SessionStore;
use time::OffsetDateTime;

/// Sessions in a map, for one process.
#[derive(Debug, Default)]
pub struct MapStore(Mutex<HashMap<StorageKey, Record>>);

fn ready<T>(value: T) -> StoreFuture<'static, T> {
    StoreFuture::ready(Ok(value))
}

fn owned_by(record: &Record, user: &str) -> bool {
    record.meta.user.as_deref() == Some(user)
}

impl SessionStore for MapStore {
    fn create<'a>(&'a self, key: &'a StorageKey, record: &'a Record) -> StoreFuture<'a, bool> {
        let mut map = self.0.lock().unwrap();
        let fresh = !map.contains_key(key);
        if fresh {
            map.insert(*key, record.clone());
        }
        ready(fresh)
    }

    fn load<'a>(
        &'a self,
        key: &'a StorageKey,
        touch: Option<&'a TouchRule>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<Record>> {
        let mut map = self.0.lock().unwrap();
        let live = map.get_mut(key).filter(|r| r.is_live(now)).map(|record| {
            // A due touch moves the idle deadline in the same step as the read.
            if let Some(due) = touch.and_then(|rule| rule.due(&record.meta, now)) {
                due.apply_to(&mut record.meta);
            }
            record.clone()
        });
        ready(live)
    }

    fn apply<'a>(
        &'a self,
        key: &'a StorageKey,
        change: &'a Change,
        rules: &'a WriteRules,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Applied> {
        // The core's rules apply the change, the limits and a due touch, exactly.
        ready(match self.0.lock().unwrap().get_mut(key) {
            Some(record) => rules.apply(record, change, now),
            None => Applied::Gone,
        })
    }

    fn rotate<'a>(
        &'a self,
        old: &'a StorageKey,
        new: &'a StorageKey,
        change: &'a Change,
        rules: &'a WriteRules,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Rotated> {
        let mut map = self.0.lock().unwrap();
        if map.contains_key(new) {
            return ready(Rotated::Collision);
        }
        let Some(mut record) = map.get(old).cloned() else {
            return ready(Rotated::Gone);
        };
        ready(match rules.apply(&mut record, change, now) {
            Applied::Done(meta) => {
                map.remove(old);
                map.insert(*new, record);
                Rotated::Done(meta)
            }
            Applied::TooLarge(totals) => Rotated::TooLarge(totals),
            _ => Rotated::Gone,
        })
    }

    fn delete<'a>(&'a self, key: &'a StorageKey) -> StoreFuture<'a, ()> {
        self.0.lock().unwrap().remove(key);
        ready(())
    }

    fn delete_owned<'a>(
        &'a self,
        key: &'a StorageKey,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        let mut map = self.0.lock().unwrap();
        let owned = map.get(key).is_some_and(|r| owned_by(r, user));
        let removed = if owned { map.remove(key) } else { None };
        ready(removed.is_some_and(|r| r.is_live(now)))
    }

    fn list_by_user<'a>(
        &'a self,
        user: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<SessionInfo>> {
        let map = self.0.lock().unwrap();
        let mine = map
            .iter()
            .filter(|(_, r)| r.is_live(now) && owned_by(r, user));
        ready(
            mine.map(|(k, r)| SessionInfo::new(*k, r.meta.clone()))
                .collect(),
        )
    }

    fn delete_by_user<'a>(
        &'a self,
        user: &'a str,
        except: Option<&'a StorageKey>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, u64> {
        // One lock over every record: no rotation runs between the look and the delete.
        let mut ended = 0;
        self.0.lock().unwrap().retain(|key, record| {
            let doomed = owned_by(record, user) && Some(key) != except;
            ended += u64::from(doomed && record.is_live(now));
            !doomed
        });
        ready(ended)
    }

    fn delete_expired(&self, now: OffsetDateTime, batch: usize) -> StoreFuture<'_, u64> {
        let mut map = self.0.lock().unwrap();
        let dead: Vec<StorageKey> = map
            .iter()
            .filter(|(_, r)| !r.is_live(now))
            .map(|(k, _)| *k)
            .take(batch)
            .collect();
        for key in &dead {
            map.remove(key);
        }
        ready(dead.len() as u64)
    }
}

#[allow(dead_code)] // `tests/map_store.rs` includes this file for the store alone.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    use axum::{routing::get, Router};
    use session_layer::{Session, SessionError, SessionLayer};

    async fn counter(session: Session) -> Result<String, SessionError> {
        let visits: u64 = session.get("visits").await?.unwrap_or(0);
        session.insert("visits", visits + 1).await?;
        Ok(format!("{visits} visits before this one"))
    }

    let layer = SessionLayer::builder(MapStore::default())
        .with_plain_http_for_development()
        .build()?;
    let app = Router::new().route("/", get(counter)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("a counter on MapStore: http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
