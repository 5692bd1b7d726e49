//! [`RedisStoreBuilder`]: where the store connects and how patient it is.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::AsyncConnectionConfig;
use session_layer::{StoreError, StoreErrorKind};

use crate::conn::{timed, Conn, Reconnecting, Source};
use crate::replication::ReplicationWait;
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
    Client(Box<redis::Client>),
    Manager(ConnectionManager),
    ClusterClient(Box<ClusterClient>),
    Sentinel {
        sentinels: Vec<String>,
        master: String,
        node: SentinelNodeConnectionInfo,
    },
}

/// Builds a [`RedisStore`]: made by [`RedisStore::builder`] (one server),
/// [`RedisStore::cluster_builder`] (a Redis Cluster), [`RedisStore::sentinel_builder`] (the
/// master that Redis Sentinel names), or from a client you built yourself
/// ([`RedisStore::from_client`], [`RedisStore::from_connection_manager`],
/// [`RedisStore::from_cluster_client`]); finished by [`connect`](Self::connect).
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
    wait: Option<ReplicationWait>,
}

/// URLs may carry a password, so `Debug` shows only their number.
impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            Target::Single(_) => "one server".to_owned(),
            Target::Cluster(nodes) => format!("cluster, {} seed nodes", nodes.len()),
            Target::Client(_) => "one server, from a client".to_owned(),
            Target::Manager(_) => "one server, from a connection manager".to_owned(),
            Target::ClusterClient(_) => "cluster, from a client".to_owned(),
            Target::Sentinel { sentinels, .. } => {
                format!("the master named by {} sentinels", sentinels.len())
            }
        };
        f.debug_struct("RedisStoreBuilder")
            .field("target", &target)
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("refuse_evicting_server", &self.refuse_evicting_server)
            .field("replication_wait", &self.wait)
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
            wait: None,
        }
    }

    pub(crate) fn single(url: String) -> Self {
        Self::new(Target::Single(url))
    }

    pub(crate) fn cluster(nodes: Vec<String>) -> Self {
        Self::new(Target::Cluster(nodes))
    }

    pub(crate) fn client(client: redis::Client) -> Self {
        Self::new(Target::Client(Box::new(client)))
    }

    pub(crate) fn manager(manager: ConnectionManager) -> Self {
        Self::new(Target::Manager(manager))
    }

    pub(crate) fn cluster_client(client: ClusterClient) -> Self {
        Self::new(Target::ClusterClient(Box::new(client)))
    }

    pub(crate) fn sentinel(sentinels: Vec<String>, master: String) -> Self {
        Self::new(Target::Sentinel {
            sentinels,
            master,
            node: SentinelNodeConnectionInfo::default(),
        })
    }

    /// How to reach the servers a Sentinel names (not the Sentinels themselves): their
    /// password, user, database and TLS mode. Only for a builder made by
    /// [`RedisStore::sentinel_builder`]; ignored otherwise. Default: no password, database
    /// 0, no TLS.
    ///
    /// ```no_run
    /// use redis::sentinel::SentinelNodeConnectionInfo;
    /// use redis::RedisConnectionInfo;
    /// use session_layer_redis::RedisStore;
    ///
    /// # async fn run() -> Result<(), session_layer::StoreError> {
    /// let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(
    ///     RedisConnectionInfo::default().set_password("the masters' password"),
    /// );
    /// let store = RedisStore::sentinel_builder(["redis://10.0.0.1:26379"], "sessions")
    ///     .with_sentinel_node_connection_info(node)
    ///     .connect()
    ///     .await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub fn with_sentinel_node_connection_info(mut self, info: SentinelNodeConnectionInfo) -> Self {
        if let Target::Sentinel { node, .. } = &mut self.target {
            *node = info;
        }
        self
    }

    /// Makes every write that ends or moves a session (a sign-out, a revocation, a
    /// rotation) wait until at least `replicas` replicas have acknowledged it (Redis
    /// `WAIT replicas timeout`), so that once the store reports it done it survives the
    /// loss of the master. If fewer replicas acknowledge within `timeout`, the operation
    /// fails with a [`StoreErrorKind::Unavailable`] error (the write may or may not have
    /// reached a replica), never a silent success. Default: off. See the crate docs,
    /// "Replicas and failover", for what each mode guarantees.
    ///
    /// `timeout` must be at most 80% of the command timeout (a waiting `WAIT` is one round
    /// trip), and `replicas` at least 1; [`connect`](Self::connect) refuses anything else.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use session_layer_redis::RedisStore;
    ///
    /// # async fn run() -> Result<(), session_layer::StoreError> {
    /// let store = RedisStore::sentinel_builder(
    ///     ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379", "redis://10.0.0.3:26379"],
    ///     "sessions",
    /// )
    /// .with_replication_wait(1, Duration::from_millis(200))
    /// .connect()
    /// .await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub fn with_replication_wait(mut self, replicas: u32, timeout: Duration) -> Self {
        self.wait = Some(ReplicationWait { replicas, timeout });
        self
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
    /// [`StoreErrorKind::Other`] for a URL that does not parse, a zero timeout, a
    /// replication wait that cannot work, or (with
    /// [`refuse_evicting_server`](Self::refuse_evicting_server)) a server that may evict
    /// keys.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        if self.command_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                "the Redis store's timeouts must be longer than zero",
            ));
        }
        if let Some(wait) = &self.wait {
            wait.check(self.command_timeout)?;
        }
        let (conn, cluster) = self.open(false).await?;
        crate::eviction::check(&conn, self.command_timeout, self.refuse_evicting_server).await?;
        // The writes that wait for replicas, and their `WAIT`s, get a connection of their
        // own: Redis holds every later command of a connection behind a pending `WAIT`.
        let waiting = match (self.wait, &self.target) {
            (None, _) => None,
            // A manager you share cannot be split: the store waits on it.
            (Some(_), Target::Manager(_)) => Some(conn.clone()),
            (Some(_), _) => Some(self.open(true).await?.0),
        };
        let waiting = waiting.map(|conn| RedisStore {
            inner: Arc::new(Inner {
                conn,
                scripts: Scripts::new(),
                prefix: self.prefix.clone(),
                timeout: self.command_timeout,
                cluster,
                wait: self.wait,
                waiting: None,
            }),
        });
        Ok(RedisStore {
            inner: Arc::new(Inner {
                conn,
                scripts: Scripts::new(),
                prefix: self.prefix,
                timeout: self.command_timeout,
                cluster,
                wait: self.wait,
                waiting,
            }),
        })
    }

    /// Opens a connection to the target: the connection and whether it is a cluster's.
    /// `waited`: for the writes that wait for replicas, which need to know when the
    /// connection changed, so on one server the store reconnects it itself.
    async fn open(&self, waited: bool) -> Result<(Conn, bool), StoreError> {
        let limit = self.connect_timeout + self.command_timeout;
        let server = match &self.target {
            Target::Single(url) if waited => {
                Some(redis::Client::open(url.as_str()).map_err(bad_url)?)
            }
            Target::Client(client) if waited => Some((**client).clone()),
            _ => None,
        };
        if let Some(client) = server {
            let conn = timed(
                limit,
                "connect",
                Reconnecting::connect(
                    Source::Server(client),
                    self.connection_config(),
                    self.command_timeout,
                ),
            )
            .await?;
            return Ok((Conn::Reconnecting(conn), false));
        }
        Ok(match &self.target {
            Target::Single(url) => {
                let client = redis::Client::open(url.as_str()).map_err(bad_url)?;
                let manager = timed(
                    limit,
                    "connect",
                    client.get_connection_manager_with_config(self.manager_config()),
                )
                .await?;
                (Conn::Single(manager), false)
            }
            Target::Client(client) => (
                Conn::Single(
                    timed(
                        limit,
                        "connect",
                        client.get_connection_manager_with_config(self.manager_config()),
                    )
                    .await?,
                ),
                false,
            ),
            Target::Manager(manager) => (Conn::Single(manager.clone()), false),
            Target::ClusterClient(client) => (
                Conn::Cluster(timed(limit, "connect", client.get_async_connection()).await?),
                true,
            ),
            Target::Sentinel {
                sentinels,
                master,
                node,
            } => {
                let client = SentinelClient::build(
                    sentinels.clone(),
                    master.clone(),
                    Some(node.clone()),
                    SentinelServerType::Master,
                )
                .map_err(bad_url)?;
                // Asking the Sentinels, then the master's role, then connecting: a few
                // round trips.
                let conn = timed(
                    limit + self.command_timeout * 2,
                    "connect",
                    Reconnecting::connect(
                        Source::Sentinel(client),
                        self.connection_config(),
                        self.command_timeout,
                    ),
                )
                .await?;
                (Conn::Reconnecting(conn), false)
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
        })
    }

    fn connection_config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.command_timeout))
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        // A failed request makes the next one reconnect; retrying inside a request would
        // only turn a quick "unavailable" into a timeout.
        ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.command_timeout))
    }
}

fn bad_url(_: redis::RedisError) -> StoreError {
    StoreError::new(
        StoreErrorKind::Other,
        "a Redis URL does not parse; expected redis://[user:password@]host[:port][/db] \
         (rediss:// needs the crate's `tls` feature)",
    )
}

/// Stores on a client, connection manager or cluster client you built yourself (its TLS
/// certificates, credentials, DNS or other settings), and through Redis Sentinel.
impl RedisStore {
    /// A builder for a store on one server, through a [`redis::Client`] you built (for
    /// example with [`redis::Client::build_with_tls`] and your own CA, with the crate's `tls`
    /// feature). The store opens its own `ConnectionManager` from it with the builder's
    /// timeouts.
    ///
    /// ```no_run
    /// use session_layer_redis::{redis, RedisStore};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let store = RedisStore::from_client(client)
    ///     .with_key_prefix("myapp:session:")
    ///     .connect()
    ///     .await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub fn from_client(client: redis::Client) -> RedisStoreBuilder {
        RedisStoreBuilder::client(client)
    }

    /// A builder for a store on a `ConnectionManager` you already have; the store shares
    /// it (and its socket) with the rest of your application. Its own connection and
    /// response timeouts and retry policy stay as you set them: the builder's connect
    /// timeout does not apply, and its command timeout still bounds each round trip. Keep
    /// the manager's retries low, or a request waits through them while Redis is down.
    ///
    /// ```no_run
    /// use session_layer_redis::{redis, RedisStore};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let manager = client.get_connection_manager().await?;
    /// let store = RedisStore::from_connection_manager(manager).connect().await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub fn from_connection_manager(manager: ConnectionManager) -> RedisStoreBuilder {
        RedisStoreBuilder::manager(manager)
    }

    /// A builder for a store on a Redis Cluster, through a [`ClusterClient`] you built
    /// (its TLS, credentials, timeouts and retries are yours; the builder's connect
    /// timeout bounds the first connection only).
    ///
    /// ```no_run
    /// use session_layer_redis::{redis, RedisStore};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::cluster::ClusterClient::new(vec!["redis://10.0.0.1:6379"])?;
    /// let store = RedisStore::from_cluster_client(client).connect().await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub fn from_cluster_client(client: ClusterClient) -> RedisStoreBuilder {
        RedisStoreBuilder::cluster_client(client)
    }

    /// A builder for a store on the master that Redis Sentinel names `master_name`, given
    /// the URLs of one or more Sentinels (`redis://host:26379`). After a failover the store
    /// finds the new master by itself: the first command that fails on the old one (its
    /// connection dropped, or it answers as a replica) makes the next one ask the Sentinels
    /// again. Requests during the failover fail with
    /// [`StoreErrorKind::Unavailable`]; see the crate docs, "Replicas and failover", for
    /// what a failover can lose and [`RedisStoreBuilder::with_replication_wait`] for how to
    /// keep sign-outs through it.
    ///
    /// ```no_run
    /// use session_layer_redis::RedisStore;
    ///
    /// # async fn run() -> Result<(), session_layer::StoreError> {
    /// let store = RedisStore::sentinel_builder(
    ///     ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379", "redis://10.0.0.3:26379"],
    ///     "sessions",
    /// )
    /// .connect()
    /// .await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub fn sentinel_builder<I, S>(sentinels: I, master_name: impl Into<String>) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisStoreBuilder::sentinel(
            sentinels.into_iter().map(Into::into).collect(),
            master_name.into(),
        )
    }
}
