//! A Redis and Redis Cluster store for [`session-layer`](session_layer): Redis's own expiry,
//! per-key updates applied atomically by Lua scripts, rotation that never leaves two live
//! copies, and a per-user index for "sign out everywhere else".
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use session_layer::{Session, SessionError, SessionLayer};
//! use session_layer_redis::RedisStore;
//!
//! async fn counter(session: Session) -> Result<String, SessionError> {
//!     let visits: u64 = session.get("visits").await?.unwrap_or(0);
//!     session.insert("visits", visits + 1).await?;
//!     Ok(format!("{visits} visits before this one"))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
//! let app: Router = Router::new()
//!     .route("/", get(counter))
//!     .layer(SessionLayer::new(store));
//! # let _ = app; Ok(()) }
//! ```
//!
//! For a cluster, give [`RedisStore::cluster_builder`] one or more nodes; for a master
//! watched by Redis Sentinel, [`RedisStore::sentinel_builder`] the Sentinels and the
//! master's name. To bring your own client (its TLS certificates, credentials or DNS),
//! use [`RedisStore::from_client`], [`RedisStore::from_connection_manager`] or
//! [`RedisStore::from_cluster_client`]; the [`redis`] crate is re-exported so its version
//! matches. Key prefix, timeouts and the replication wait are set on the
//! [`RedisStoreBuilder`].
//!
//! # Features
//!
//! | feature | default | what |
//! | --- | --- | --- |
//! | `tls` | off | `rediss://` URLs, through redis-rs's Tokio rustls connector with rustls's `ring` provider. A plain `rediss://` URL trusts the system's CAs; for your own CA or client certificates, build a client with [`redis::Client::build_with_tls`] and pass it to [`RedisStore::from_client`]. If your build also enables rustls's `aws-lc-rs` provider (through another crate's defaults), rustls cannot choose: install one at start, `rustls::crypto::ring::default_provider().install_default()`. |
//!
//! # The client
//!
//! The store is built on [`redis`] (redis-rs), the maintained, widely used async Redis
//! client for Rust. It is the one client that covers everything this store needs in one
//! crate: Tokio support, a multiplexed connection that pipelines concurrent requests over
//! one socket and reconnects by itself (`ConnectionManager`), an async Redis Cluster client
//! that follows slot moves (`cluster-async`), and `Script`, which sends `EVALSHA` and falls
//! back to loading the script when the server answers `NOSCRIPT` (after a restart or
//! failover). No pool is needed: one multiplexed connection per server carries every
//! request.
//!
//! # What Redis holds
//!
//! The store only ever sees storage keys (SHA-256 hashes of session IDs), so nothing in
//! Redis equals a cookie value.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `<prefix><storage key in hex>` | hash | one session |
//! | `<prefix>user:<SHA-256 of the user name in hex>` | sorted set | a user's sessions, scored by absolute deadline |
//!
//! The prefix defaults to `session:`. A session's hash has a format version (`v`),
//! metadata fields (`m:created`, `m:seen`, `m:idle`, `m:abs`, `m:pers`, `m:user`) and one
//! field per data key, `d:<key>`, holding the value's JSON; the prefixes keep data keys
//! from colliding with metadata. A record of an unknown format version or with a damaged
//! field is logged (without its key) and read as absent, so the request gets a new, empty
//! session; no script ever writes to a record of an unknown format version.
//!
//! # Expiry
//!
//! Every session key carries a TTL equal to its remaining lifetime: the earlier of the
//! idle and absolute deadlines, minus the `now` the layer passes (for a create, the
//! record's `last_seen`). Redis removes dead sessions by itself, so no cleanup job is
//! needed and [`delete_expired`](session_layer::SessionStore::delete_expired) does
//! nothing. A write whose result would live zero milliseconds or less deletes the key
//! instead. A record Redis has not removed yet (TTL lag, clock skew) but whose deadline
//! has passed at the layer's `now` is still treated as absent by every operation.
//!
//! # Atomicity
//!
//! Each step runs as one Lua script on one key, so it is atomic on a standalone server
//! and on a cluster alike; scripts only touch the keys they declare.
//!
//! | operation | how | round trips |
//! | --- | --- | --- |
//! | load | `HGETALL` | 1 |
//! | load, touching if due | script: liveness check, the touch if due (`m:seen`, `m:idle`, TTL), then every field | 1 |
//! | write without a read | script: as update, plus the size limits counted over the whole hash (nothing written if passed) and the touch if due | 1 (cluster, setting a user: 3) |
//! | create | script: store only if the key is absent (the index entry is added in the same script, or just before it in cluster mode) | 1 (cluster, with a user: 2) |
//! | update | script: liveness check, then `HDEL`/`HSET` of the changed fields only, metadata, TTL | 1 (cluster, setting a user: 3) |
//! | touch | script: liveness check, `m:seen`, `m:idle`, TTL; data untouched | 1 |
//! | delete | `DEL` | 1 |
//! | rotate | mark, create, finish (below) | 3 (cluster, with a user: 4) |
//! | rotate within limits | as rotate; the limits are checked on the fields the mark took (nothing written if passed) | 3 (cluster, with a user: 4) |
//! | list by user | index read, then one `HMGET` per listed session, in parallel | 2 |
//! | delete by user | index read, one script per session in parallel, `ZREM` | 3 |
//!
//! Through the layer, a request that only reads its session costs one script call (the
//! layer loads with the touching script, which writes nothing unless the idle deadline is
//! due to move); a save after a load costs one more; a write without a read costs one
//! (the write script), its touch and size check included; a sign-in (rotation), with or
//! without writes, costs the rotation's three.
//!
//! Update and touch never create: a change to a session that was deleted, expired or
//! rotated away writes nothing and is reported as gone, so a slow request cannot bring a
//! signed-out session back. Two requests that write different keys of one session both
//! keep their writes (each writes only its own fields); the same key written twice is
//! last-writer-wins.
//!
//! ## Rotation
//!
//! The old and new keys of a rotation hash to different slots, so no single script can
//! see both on a cluster. Rotation is therefore three atomic steps, the same in both
//! modes:
//!
//! 1. **Mark**: a script on the old key checks that the record is live, marks it as moving
//!    (with a token of this rotation) and returns its fields. From this instant the old ID
//!    is dead: loads, updates, touches and other rotations of it find nothing. Updates that
//!    landed before the mark are in the returned fields and move with the record. This is
//!    the point at which the rotation takes effect; of concurrent rotations exactly one
//!    marks, the others find the session gone.
//! 2. **Create**: the record, with the request's change applied, is created under the new
//!    key with create-only semantics.
//! 3. **Finish**: a script deletes the old key if it still carries this rotation's mark.
//!    If a sign-out or revocation deleted it in the meantime, that wins: the new key is
//!    deleted too and the rotation reports the session gone.
//!
//! If the new key is taken (a collision, which 256-bit IDs make a sign of a broken random
//! source), the mark is cleared and the old record is untouched. If Redis fails between
//! the steps, the store fails closed: the old key stays marked, so the session ends
//! rather than surviving under two IDs; the request fails and its user signs in again.
//!
//! # The per-user index
//!
//! Each user has a sorted set of their sessions' storage keys, scored by each session's
//! absolute deadline, which never changes for a key. An entry is added before (or, on a
//! standalone server, in the same script as) any write that gives a session its user, so
//! a stored session is never missing from its user's index. Entries are dropped when the
//! index is read or written and their absolute deadline has passed, and when
//! [`delete_by_user`](session_layer::SessionStore::delete_by_user) deletes their session;
//! the set's own TTL is kept at its latest member's deadline, so an index disappears with
//! the last session it could name. Nothing is left behind forever.
//!
//! An entry can outlive its session (a sign-out, an idle expiry, a rotation, an owner
//! change), so listing reads every listed session and keeps only those that exist, are not
//! moving, are live at `now`, and still belong to that user: a stale entry is never shown
//! as live. Revocation deletes a listed session only if, inside its script, the session
//! still belongs to that user.
//!
//! On a cluster the index is a key in its own slot, so adding an entry and writing the
//! session are two atomic steps rather than one, always in that order. A session being
//! created or rotated at the very moment of a "sign out everywhere" may survive it, as
//! with any store that does not lock a user's sessions together.
//!
//! # Failures
//!
//! Every round trip is bounded by the command timeout (default 500 ms): a stalled server
//! fails the request with a [`StoreErrorKind::Timeout`](session_layer::StoreErrorKind)
//! error; a server that cannot be reached fails it with
//! [`StoreErrorKind::Unavailable`](session_layer::StoreErrorKind). The layer turns either
//! into an error response and never sends a cookie for a session it could not store. The
//! connection reconnects on the next request once Redis is back; scripts a restarted
//! server has forgotten are loaded again on first use.
//!
//! A timeout cannot tell whether Redis ran the command: a stalled server that resumes
//! still runs what it had received. The request has already failed by then, so no cookie
//! names what a late create stored (it expires by its TTL), and a late update applies
//! like any other write of that session: it never brings back a session that is gone.
//!
//! # Replicas and failover
//!
//! Redis replicates asynchronously: the master answers a write before any replica has it.
//! If the master dies, the replica that Sentinel (or an operator) promotes lacks whatever
//! the master acknowledged in its last moments. For sessions that matters for the writes
//! that end or move one: a lost sign-out or revocation brings the signed-out session back
//! (its cookie works again), and a lost rotation brings the pre-sign-in ID back. Lost
//! creates, data writes and touches fail safe (a user signed out, a value written last
//! missing).
//!
//! | mode | an acknowledged sign-out, revocation or rotation after a failover |
//! | --- | --- |
//! | one server, no replicas | kept as long as the server's data is (persistence: `appendfsync always` keeps every acknowledged write through a crash) |
//! | replicas (Sentinel, Cluster, a managed service's failover), no wait | may be lost: the sign-outs the master acknowledged while its replica lagged come back |
//! | replicas, [`with_replication_wait(n, t)`](RedisStoreBuilder::with_replication_wait) | kept if a replica that acknowledged it, or one further along, is promoted: among reachable replicas of the same `replica-priority`, Sentinel promotes the one that has replicated the most. Too few replicas within `t`: the operation fails ([`StoreErrorKind::Unavailable`](session_layer::StoreErrorKind)) and the request gets the layer's error response, never a silent success |
//!
//! The repository's failover test measures it: a master, a replica and three Sentinels on
//! loopback, 300 sign-outs over HTTP while the replica lags for 400 ms and the master is
//! killed. Without the wait, every sign-out acknowledged during the lag (58 to 72 in our
//! runs) came back on the new master; with it, those sign-outs failed instead, their
//! users' retries succeeded once a replica was back, and none came back. Promotion took about 1.8 s (Sentinel's
//! `down-after-milliseconds` 400); requests in that window fail with
//! [`StoreErrorKind::Unavailable`](session_layer::StoreErrorKind), and the first request
//! after it reaches the new master.
//!
//! With the wait:
//!
//! - Sign-outs (`delete`, `delete_owned`), revocations (`delete_by_user`) and rotations send
//!   `WAIT n t` after their writes, on a connection kept for them (Redis holds every later
//!   command of a connection behind a pending `WAIT`, so loads never queue behind one). A
//!   store made by [`RedisStore::from_connection_manager`] cannot open another connection
//!   and waits on yours.
//! - With no replica attached (right after a failover, until one is back), every sign-out
//!   fails: the store cannot promise it. Attach a replica to the new master.
//! - A reconnection between the write and its `WAIT` fails the operation (a `WAIT` on a new
//!   connection would vouch for nothing), so a DNS name that moves to the new primary on
//!   failover (as managed Redis services do) is safe too. The exception is a store on your
//!   own `ConnectionManager`, which reconnects without telling: there, a connection that
//!   drops in the instant between the two goes unnoticed.
//! - On a cluster, the `WAIT` goes to every master and the least answer counts: every
//!   master needs `n` replicas.
//! - `WAIT` does not make Redis strongly consistent: a replica that acknowledged and then
//!   lost the write (restarted without persistence) does not hold it.
//!
//! # Requirements
//!
//! Redis 5 or later, or a compatible server (tested with Redis 7.0). Rust 1.88 or later
//! (redis-rs 1.x). Without TLS by default; the `tls` feature adds `rediss://`.

mod builder;
mod codec;
mod conn;
mod replication;
mod scripts;
mod store;

#[doc(hidden)]
pub use codec::fuzz_record;

pub use builder::{
    RedisStoreBuilder, DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEY_PREFIX,
};
pub use store::RedisStore;

/// The Redis client this crate is built on, for building your own [`redis::Client`],
/// `ConnectionManager` or cluster client to hand to the store (see
/// [`RedisStore::from_client`]) with the same version of it.
pub use redis;
