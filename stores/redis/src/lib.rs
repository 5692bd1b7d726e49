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
//! | `<prefix><storage key in hex>` | string | one session |
//! | `<prefix>user:<SHA-256 of the user name in hex>` | sorted set | a user's sessions, scored by absolute deadline |
//!
//! The prefix defaults to `session:`. A session is one string: a fixed-width header (the
//! format version, `2`; the header's length; the creation time, the last activity and the
//! idle and absolute deadlines in Unix milliseconds; the persistence flag; whether there
//! is an owner and its length; the session's own idle timeout, if it has one), the
//! owner's name, then one entry per data key,
//! `<key length>:<key><value length>:<value's JSON text>`. Reading a session is one `GET`
//! and one pass over that string. A later minor format may append header fields, which
//! this version skips; a change it must not ignore gets a new version byte. A record of
//! an unknown format version, of the previous format (one hash per session, written by
//! 0.1) or with a damaged layout is logged (without its key) and read as absent, so the
//! request gets a new, empty session; no script ever writes to a value it cannot read.
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
//! A write that gives a session of a user its own end time
//! ([`Session::set_expires_at`](session_layer::Session::set_expires_at)) moves its absolute
//! deadline, so it also sets the session's score in the user's index, in one more call
//! after the script: the entry lasts exactly as long as the session. If that call fails,
//! the session is deleted and the write fails, as a rotation that cannot index does.
//!
//! # Atomicity and round trips
//!
//! Each write runs as one Lua script, so it is atomic on a standalone server and on a
//! cluster alike; scripts only touch the keys they declare. The scripts apply the core's
//! rules (how a change applies, the size limits, when a touch is due) exactly as
//! `WriteRules::apply` does; the conformance suite pins the two together.
//!
//! | operation | how | round trips (one server) | on a cluster |
//! | --- | --- | --- | --- |
//! | load | `GET` | 1 | 1 |
//! | load, touching if due | script: `GET`; if the touch is due, `SETRANGE` of the two header fields and `PEXPIRE` | 1 | 1 |
//! | apply a change (with its size check and due touch) | script: read, apply, `SET` with the new TTL | 1 | 1 (setting an owner: 3, the index first) |
//! | create | `SET NX PX`; with an owner, a script that also adds the index entry | 1 | 1 (with an owner: 2, the index first) |
//! | delete | `DEL` | 1 | 1 |
//! | rotate | one script (below) | 1 (keeping an owner: 2) | 3 (below) |
//! | list by user | per page of up to 512 entries, `ZSCAN` then `MGET`; then one script that drops dead entries | 3 (up to 512 sessions) | per page, `ZSCAN` then one `GET` per entry, in parallel |
//! | delete by user | `GET` and `ZSCORE` of the caller's own session (the eviction check, below); per page `ZSCAN`, one script per session in parallel (following rotations' notes), one script that drops the ended entries | 5 (up to 512 sessions) | the same |
//!
//! Through the layer: a request that only reads its session costs one round trip (the
//! touching load, which writes nothing unless the idle deadline is due to move, and then
//! in the same call); a read then a write, two; a write without a read, one (its size
//! check and due touch included); a sign-in (rotation and new owner, with or without
//! writes), one (three on a cluster); a sign-out, one.
//!
//! Update and touch never create: a change to a session that was deleted, expired or
//! rotated away writes nothing and is reported as gone, so a slow request cannot bring a
//! signed-out session back. Two requests that write different keys of one session both
//! keep their writes (each script applies only its own keys to the record it reads); the
//! same key written twice is last-writer-wins.
//!
//! ## Rotation
//!
//! On one server, one script reads the live record under the old key, refuses a taken
//! new key (a collision, which 256-bit IDs make a sign of a broken random source) or a
//! change past the limits, stores the changed record under the new key, indexes it under
//! a new owner the change names, and replaces the old key with a short note (60 s) that
//! names the new key and the old owner. Of concurrent rotations exactly one moves the
//! session; the others find it gone. A rotation that keeps an owner adds the new key to
//! that owner's index in a second call, since a script cannot name an index before it
//! has read the owner; until then the note leads a revocation to the new key.
//!
//! On a cluster the old key, the new key and the index hash to different slots, so a
//! rotation is three steps: a script takes the record out of the old key (leaving the
//! note), the new owner's index gets the new key, and the record is stored under the new
//! key with create-only semantics. A revocation that reaches the new key before the
//! record does leaves a marker there (60 s), so the last step finds the session gone and
//! the rotation reports it gone. If the new key is taken, the record is put back under
//! the old key unless a revocation ended it meanwhile. If Redis fails between the steps,
//! the store fails closed: the session ends rather than surviving under two IDs or
//! outside its index; the request fails and its user signs in again.
//!
//! # The per-user index
//!
//! Each user has a sorted set of their sessions' storage keys, scored by each session's
//! absolute deadline, which never changes for a key. An entry is added before (or, on a
//! standalone server, in the same script as) any write that gives a session its user,
//! except after a rotation that keeps its owner, where the rotation's note covers the gap.
//! Listing and revocation walk the index a page of 512 entries per round trip
//! (`ZSCAN`, then one `MGET`), so no single command holds Redis for long however many
//! sessions a user has, and drop the entries they find dead: past their absolute
//! deadline, naming a session of another owner, or (on one server) naming no session. On
//! a cluster an entry whose session is missing may be a create still on its way, so only
//! revocation drops those, after leaving its marker. The set's own TTL is kept at its
//! latest member's deadline, so an index disappears with the last session it could name.
//!
//! Listing keeps only sessions that exist, are live at `now`, and still belong to that
//! user: a stale entry is never shown as live. Revocation deletes a listed session only
//! if, inside its script, the session still belongs to that user, and follows the notes
//! rotations left, so a rotation racing "sign out everywhere" never carries a session
//! out of its reach, on one server or a cluster.
//!
//! ## Eviction
//!
//! Run the Redis that holds sessions with `maxmemory-policy noeviction`. Every key this
//! store writes has a TTL, so under any other policy (`volatile-*` as well as
//! `allkeys-*`) a server at its memory limit may drop a session (its user is signed out)
//! or a user's index (so "sign out everywhere" cannot see that user's sessions).
//! [`connect`](RedisStoreBuilder::connect) reads the policy and logs a warning when keys
//! can be evicted, or fails with
//! [`refuse_evicting_server`](RedisStoreBuilder::refuse_evicting_server). Revocation
//! checks that the caller's own session is in its user's index; if the index lost it,
//! the call ends what the index still names and returns a
//! [`StoreErrorKind::Corrupt`](session_layer::StoreErrorKind) error instead of reporting
//! success. Revoking every session of a user (no session of the caller to check against)
//! cannot detect an evicted index.
//!
//! # Failures
//!
//! Every round trip is bounded by the command timeout (default 500 ms), a listing or
//! revocation of many sessions by it per page: a stalled server
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
//! killed. Without the wait, every sign-out acknowledged during the lag (53 to 72 in our
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
mod eviction;
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
