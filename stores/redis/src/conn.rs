//! One handle over a standalone server or a cluster, and the mapping of its failures.

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value};
use session_layer::{StoreError, StoreErrorKind};

/// A multiplexed connection: one socket per server carries every request, pipelined.
/// Cloning is cheap and shares the socket.
#[derive(Clone)]
pub(crate) enum Conn {
    /// A standalone server (or a proxy in front of one), reconnected on failure.
    Single(ConnectionManager),
    /// A Redis Cluster; commands go to the node that owns their key's slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Runs one round trip to Redis under the store's command timeout.
pub(crate) async fn timed<T>(
    limit: Duration,
    what: &'static str,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    // redis-rs has its own response timeout, set to the same limit; whichever fires first,
    // the caller sees the same error.
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) if !error.is_timeout() => Err(store_error(what, error)),
        Ok(Err(_)) | Err(_) => Err(StoreError::timeout(format_args!(
            "Redis {what} (limit {limit:?})"
        ))),
    }
}

/// Turns a client error (other than a timeout) into the store's error kinds. The message names the operation and
/// the category only; redis-rs errors carry no keys or values, and the store never sees a
/// session ID anyway.
pub(crate) fn store_error(what: &'static str, error: RedisError) -> StoreError {
    let unreachable = error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || matches!(
            error.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::BusyLoading
                        | ServerErrorKind::ReadOnly
                )
        );
    let (kind, hint) = if unreachable {
        (
            StoreErrorKind::Unavailable,
            "check that Redis is running and reachable",
        )
    } else {
        (
            StoreErrorKind::Other,
            "check the server's logs and version (Redis 5 or later)",
        )
    };
    StoreError::with_source(
        kind,
        format!("Redis {what} failed ({}); {hint}", error.category()),
        error,
    )
}
