//! The opt-in replication wait: Redis `WAIT` after the writes that end or move a session.

use std::future::Future;
use std::time::Duration;

use redis::cmd;
use session_layer::{StoreError, StoreErrorKind};

use crate::conn::timed;
use crate::store::RedisStore;

/// How many replicas must acknowledge a write that ends or moves a session, and how long
/// the store waits for them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReplicationWait {
    pub(crate) replicas: u32,
    pub(crate) timeout: Duration,
}

impl ReplicationWait {
    /// Refuses a wait that cannot work with the store's command timeout.
    pub(crate) fn check(&self, command_timeout: Duration) -> Result<(), StoreError> {
        if self.replicas == 0 {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                "a replication wait needs at least one replica; leave it off instead",
            ));
        }
        // The connection counts a command that takes 90% of the command timeout as a
        // stall; a `WAIT` must answer well before that.
        if self.timeout.is_zero() || self.timeout > command_timeout * 4 / 5 {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                "a replication wait's timeout must be longer than zero and at most 80% of the \
                 command timeout",
            ));
        }
        Ok(())
    }
}

impl RedisStore {
    /// Runs `write` (a write that ends or moves a session) and, with a replication wait
    /// configured, waits on the same connection until enough replicas have acknowledged
    /// every write sent before it. Fewer replicas, a reconnection between the write and the
    /// wait, or no answer: an error, even though the write itself was applied on the master.
    ///
    /// With a wait, `write` is given the store on the connection kept for waited writes
    /// (see [`Inner::waiting`](crate::store::Inner)); without, this store.
    pub(crate) async fn replicated<'s, T, F, Fut>(&'s self, write: F) -> Result<T, StoreError>
    where
        F: FnOnce(&'s RedisStore) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let (Some(store), Some(wait)) = (&self.inner.waiting, self.inner.wait) else {
            return write(self).await;
        };
        let conn = &store.inner.conn;
        let generation = conn.generation();
        let value = write(store).await?;
        // `WAIT` counts the replicas that acknowledged this connection's writes so far.
        // Not retried: on a new connection it would vouch for nothing.
        let timeout_ms = u64::try_from(wait.timeout.as_millis()).unwrap_or(u64::MAX);
        let mut command = cmd("WAIT");
        command.arg(wait.replicas).arg(timeout_ms);
        let acknowledged: u64 = timed(
            self.inner.timeout,
            "replication wait",
            command.query_async(&mut conn.clone()),
        )
        .await?;
        if generation != conn.generation() {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "the connection to the Redis master changed during a write, so whether its \
                 replicas have it is unknown; the master may have failed over",
            ));
        }
        if acknowledged < u64::from(wait.replicas) {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                format!(
                    "only {acknowledged} of the {} Redis replicas required acknowledged a \
                     write within {:?}; it may be lost if the master fails",
                    wait.replicas, wait.timeout
                ),
            ));
        }
        Ok(value)
    }
}
