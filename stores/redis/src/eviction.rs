//! The start-up check of the server's eviction policy.
//!
//! Every key this store writes carries a TTL, so under any `maxmemory-policy` but
//! `noeviction` (`volatile-*` as well as `allkeys-*`) a server at its memory limit may drop
//! a session (its user is signed out) or a user's index (so "sign out everywhere" cannot
//! find that user's sessions; revocation then reports the damage when it can see it).

use std::time::Duration;

use redis::Value;
use session_layer::{StoreError, StoreErrorKind};

use crate::conn::{timed, Conn};

/// What the server said about eviction: `Some(policy)` when it may evict keys under that
/// policy, `None` when it will not or would not say.
pub(crate) async fn evicting_policy(conn: &Conn, limit: Duration) -> Option<String> {
    let ask = |name: &'static str| {
        let mut conn = conn.clone();
        async move {
            let mut command = redis::cmd("CONFIG");
            command.arg("GET").arg(name);
            timed(
                limit,
                "configuration check",
                command.query_async::<Value>(&mut conn),
            )
            .await
        }
    };
    let (policy, memory) = match (ask("maxmemory-policy").await, ask("maxmemory").await) {
        (Ok(policy), Ok(memory)) => (policy, memory),
        (Err(error), _) | (_, Err(error)) => {
            // Managed services often refuse CONFIG: nothing to learn, nothing to refuse.
            tracing::debug!(
                target: "session_layer_redis",
                %error,
                "could not read the Redis eviction policy (CONFIG GET refused?)"
            );
            return None;
        }
    };
    let mut texts = Vec::new();
    strings(&policy, &mut texts);
    let policy = texts
        .iter()
        .find(|t| {
            t.contains("lru") || t.contains("lfu") || t.contains("random") || *t == "volatile-ttl"
        })
        .cloned()?;
    let mut limits = Vec::new();
    strings(&memory, &mut limits);
    // No memory limit: nothing is ever evicted, whatever the policy says.
    limits
        .iter()
        .any(|t| t.parse::<u64>().is_ok_and(|n| n > 0))
        .then_some(policy)
}

/// Warns, or refuses when `refuse` is set, if the server may evict session keys.
pub(crate) async fn check(conn: &Conn, limit: Duration, refuse: bool) -> Result<(), StoreError> {
    let Some(policy) = evicting_policy(conn, limit).await else {
        return Ok(());
    };
    if refuse {
        return Err(StoreError::new(
            StoreErrorKind::Other,
            format!(
                "Redis runs with maxmemory-policy {policy} and a memory limit, so it may evict \
                 sessions and users' session indexes; set `maxmemory-policy noeviction` on the \
                 server (or drop the builder's `refuse_evicting_server`)"
            ),
        ));
    }
    tracing::warn!(
        target: "session_layer_redis",
        policy = %policy,
        "Redis may evict session keys under memory pressure (a user is signed out, or \
         \"sign out everywhere\" cannot find a user's sessions); run the session Redis with \
         `maxmemory-policy noeviction`"
    );
    Ok(())
}

fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::BulkString(bytes) => out.push(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => out.push(text.clone()),
        Value::Array(items) | Value::Set(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            strings(k, out);
            strings(v, out);
        }),
        _ => {}
    }
}
