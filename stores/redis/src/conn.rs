//! One handle over a standalone server or a cluster, and the mapping of its failures.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::SentinelClient;
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind,
    Value,
};
use session_layer::{StoreError, StoreErrorKind};

/// A multiplexed connection: one socket per server carries every request, pipelined.
/// Cloning is cheap and shares the socket.
#[derive(Clone)]
pub(crate) enum Conn {
    /// A standalone server (or a proxy in front of one), reconnected on failure.
    Single(ConnectionManager),
    /// A Redis Cluster; commands go to the node that owns their key's slot.
    Cluster(ClusterConnection),
    /// A connection the store re-opens itself after a failure, counting generations: to
    /// the master a set of Sentinels names (asked again each time), or, for writes that
    /// wait for replicas, to one server.
    Reconnecting(Reconnecting),
}

impl Conn {
    /// Which connection to the master carries commands now, where the store can tell: it
    /// changes each time the store connects anew (after a failover, say). `None` where the
    /// client reconnects by itself without saying so.
    pub(crate) fn generation(&self) -> Option<u64> {
        match self {
            Self::Reconnecting(c) => Some(c.shared.generation.load(Ordering::Acquire)),
            Self::Single(_) | Self::Cluster(_) => None,
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
            Self::Reconnecting(c) => {
                Box::pin(c.send(move |mut conn| async move { conn.req_packed_command(cmd).await }))
            }
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
            Self::Reconnecting(c) => Box::pin(c.send(move |mut conn| async move {
                conn.req_packed_commands(pipeline, offset, count).await
            })),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
            Self::Reconnecting(_) => 0,
        }
    }
}

/// A multiplexed connection that is dropped when it fails (the server died, or was demoted
/// and answers `READONLY`), so that the next command opens a new one: through Sentinel,
/// asking the Sentinels again and reaching whichever server is master by then (redis-rs
/// asks them once per connection). Unlike a `ConnectionManager`, it counts its
/// connections, so a replication wait can tell that its write went out on another one.
#[derive(Clone)]
pub(crate) struct Reconnecting {
    shared: Arc<Shared>,
}

/// Where [`Reconnecting`] opens its connections.
pub(crate) enum Source {
    Sentinel(SentinelClient),
    Server(redis::Client),
}

struct Shared {
    source: tokio::sync::Mutex<Source>,
    config: AsyncConnectionConfig,
    /// How long one command may take before the connection counts as failed: a little
    /// less than the store's command timeout, so that this fires first (a command the
    /// store's own timeout cancels would leave a frozen master's connection in place).
    stall: Duration,
    /// The connection in use and its generation; `None` after a failure.
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    /// The generation of the latest connection.
    generation: AtomicU64,
}

impl Reconnecting {
    /// Opens the first connection.
    pub(crate) async fn connect(
        source: Source,
        config: AsyncConnectionConfig,
        command_timeout: Duration,
    ) -> redis::RedisResult<Self> {
        let conn = Self {
            shared: Arc::new(Shared {
                source: tokio::sync::Mutex::new(source),
                config,
                stall: (command_timeout * 9 / 10).max(Duration::from_millis(1)),
                current: Mutex::new(None),
                generation: AtomicU64::new(0),
            }),
        };
        conn.current().await?;
        Ok(conn)
    }

    fn cached(&self) -> Option<(u64, MultiplexedConnection)> {
        self.shared
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn current(&self) -> redis::RedisResult<(u64, MultiplexedConnection)> {
        if let Some(current) = self.cached() {
            return Ok(current);
        }
        // One reconnection at a time; those who waited use its result.
        let mut source = self.shared.source.lock().await;
        if let Some(current) = self.cached() {
            return Ok(current);
        }
        let config = &self.shared.config;
        let conn = match &mut *source {
            Source::Sentinel(client) => client.get_async_connection_with_config(config).await?,
            Source::Server(client) => {
                client
                    .get_multiplexed_async_connection_with_config(config)
                    .await?
            }
        };
        let generation = self.shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
        *self
            .shared
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((generation, conn.clone()));
        Ok((generation, conn))
    }

    async fn send<'a, T, F, Fut>(&'a self, call: F) -> redis::RedisResult<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>> + 'a,
    {
        let (generation, conn) = self.current().await?;
        let result = match tokio::time::timeout(self.shared.stall, call(conn)).await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
        };
        if let Err(error) = &result {
            if needs_new_master(error) {
                let mut current = self
                    .shared
                    .current
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if current.as_ref().map(|(g, _)| *g) == Some(generation) {
                    *current = None;
                }
            }
        }
        result
    }
}

/// Whether a failed command means the connection no longer leads to a working master.
fn needs_new_master(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || matches!(
            error.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        )
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
                | ErrorKind::MasterNameNotFoundBySentinel
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
