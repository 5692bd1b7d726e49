//! [`RedisStoreBuilder`]: where the store connects and how patient it is.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManagerConfig;
use redis::cluster::ClusterClientBuilder;
use session_layer::{StoreError, StoreErrorKind};

use crate::conn::{timed, Conn};
use crate::scripts::Scripts;
use crate::store::{Inner, RedisStore};

/// The key prefix when none is set.
pub const DEFAULT_KEY_PREFIX: &str = "session:";
/// The per-command timeout when none is set.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// The connection timeout when none is set.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone)]
enum Target {
    Single(String),
    Cluster(Vec<String>),
}

/// Builds a [`RedisStore`]: made by [`RedisStore::builder`] (one server) or
/// [`RedisStore::cluster_builder`] (a Redis Cluster), finished by
/// [`connect`](Self::connect).
///
/// ```no_run
/// use std::time::Duration;
/// use session_layer_redis::RedisStore;
///
/// # async fn run() -> Result<(), session_layer::StoreError> {
/// let store = RedisStore::builder("redis://127.0.0.1:6379")
///     .with_key_prefix("myapp:session:")
///     .with_command_timeout(Duration::from_millis(200))
///     .connect()
///     .await?;
/// # let _ = store; Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct RedisStoreBuilder {
    target: Target,
    prefix: String,
    command_timeout: Duration,
    connect_timeout: Duration,
    refuse_evicting_server: bool,
}

/// URLs may carry a password, so `Debug` shows only their number.
impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            Target::Single(_) => "one server".to_owned(),
            Target::Cluster(nodes) => format!("cluster, {} seed nodes", nodes.len()),
        };
        f.debug_struct("RedisStoreBuilder")
            .field("target", &target)
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("refuse_evicting_server", &self.refuse_evicting_server)
            .finish()
    }
}

impl RedisStoreBuilder {
    fn new(target: Target) -> Self {
        Self {
            target,
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            refuse_evicting_server: false,
        }
    }

    pub(crate) fn single(url: String) -> Self {
        Self::new(Target::Single(url))
    }

    pub(crate) fn cluster(nodes: Vec<String>) -> Self {
        Self::new(Target::Cluster(nodes))
    }

    /// What every key this store writes starts with, so several applications (or a
    /// session store and a cache) can share one Redis. Default: `session:`. Sessions live
    /// under `<prefix><64 hex digits>`, user indexes under `<prefix>user:<64 hex digits>`.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one round trip to Redis may take before the store gives up with a
    /// [`StoreErrorKind::Timeout`] error, so a stalled server fails requests promptly
    /// instead of holding them. Default: 500 ms. Operations of several round trips
    /// (rotation, per-user listing) apply it to each.
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// How long one attempt to open a connection may take, at start and on every
    /// reconnection. Default: 1 s.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Whether [`connect`](Self::connect) fails when the server may evict keys (a
    /// `maxmemory-policy` other than `noeviction` with a memory limit set), instead of
    /// logging a warning. Default: `false` (warn). A server that refuses `CONFIG GET`
    /// passes either way. Session Redis should run with `maxmemory-policy noeviction`: an
    /// evicted session signs its user out, an evicted index hides a user's sessions from
    /// "sign out everywhere".
    pub fn refuse_evicting_server(mut self, refuse: bool) -> Self {
        self.refuse_evicting_server = refuse;
        self
    }

    /// Connects and returns the store.
    ///
    /// # Errors
    ///
    /// [`StoreErrorKind::Unavailable`] if Redis cannot be reached,
    /// [`StoreErrorKind::Timeout`] if it does not answer in time, and
    /// [`StoreErrorKind::Other`] for a URL that does not parse, a zero timeout, or (with
    /// [`refuse_evicting_server`](Self::refuse_evicting_server)) a server that may evict
    /// keys.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        if self.command_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                "the Redis store's timeouts must be longer than zero",
            ));
        }
        let limit = self.connect_timeout + self.command_timeout;
        let (conn, cluster) = match &self.target {
            Target::Single(url) => {
                let client = redis::Client::open(url.as_str()).map_err(bad_url)?;
                // A failed request makes the next one reconnect; retrying inside a request
                // would only turn a quick "unavailable" into a timeout.
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(0)
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.command_timeout));
                let manager = timed(
                    limit,
                    "connect",
                    client.get_connection_manager_with_config(config),
                )
                .await?;
                (Conn::Single(manager), false)
            }
            Target::Cluster(nodes) => {
                let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .connection_timeout(self.connect_timeout)
                    .response_timeout(self.command_timeout)
                    .build()
                    .map_err(bad_url)?;
                let conn = timed(limit, "connect", client.get_async_connection()).await?;
                (Conn::Cluster(conn), true)
            }
        };
        crate::eviction::check(&conn, self.command_timeout, self.refuse_evicting_server).await?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                conn,
                scripts: Scripts::new(),
                prefix: self.prefix,
                timeout: self.command_timeout,
                cluster,
            }),
        })
    }
}

fn bad_url(_: redis::RedisError) -> StoreError {
    StoreError::new(
        StoreErrorKind::Other,
        "a Redis URL does not parse; expected redis://[user:password@]host[:port][/db]",
    )
}
