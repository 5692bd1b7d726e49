//! A SQLite [`SessionStore`](session_layer::SessionStore) for
//! [`session-layer`](session_layer), on `sqlx`: sessions that survive restarts, in one file,
//! with no server to run.
//!
//! ```
//! use axum::{routing::get, Router};
//! use session_layer::{Session, SessionError, SessionLayer};
//! use session_layer_sqlite::SqliteStore;
//!
//! async fn counter(session: Session) -> Result<String, SessionError> {
//!     let visits: u64 = session.get("visits").await?.unwrap_or(0);
//!     session.insert("visits", visits + 1).await?;
//!     Ok(format!("{visits} visits before this one"))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("sessions.db");
//! let store = SqliteStore::open(&path).await?;
//! store.migrate().await?;
//! let cleanup = store.spawn_cleanup(std::time::Duration::from_secs(300));
//!
//! let app: Router = Router::new()
//!     .route("/", get(counter))
//!     .layer(SessionLayer::new(store));
//! // serve `app`, then:
//! cleanup.shutdown().await;
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
//! ```
//!
//! # The table
//!
//! [`SqliteStore::migrate`] creates (and later upgrades) one `STRICT` table, `sessions`
//! unless [configured](SqliteStoreBuilder::with_table) otherwise, with columns a DBA can
//! read:
//!
//! | column | type | holds |
//! | --- | --- | --- |
//! | `key` | `BLOB` primary key | SHA-256 of the session ID; the cookie value is never stored |
//! | `user_id` | `TEXT`, indexed | the owner, for listing and revoking a user's sessions |
//! | `created`, `last_seen` | `TEXT` | creation and last recorded activity |
//! | `idle_deadline`, `absolute_deadline` | `TEXT` | the two deadlines |
//! | `expires` | `TEXT`, generated, indexed | the earlier deadline: the row is dead from then on |
//! | `persistent` | `INTEGER` 0/1 | "remember me" |
//! | `data` | `TEXT`, a JSON object | the session's keys and values |
//! | `format` | `INTEGER` | version of the data encoding (1) |
//!
//! Times are UTC in SQLite's own text form, `YYYY-MM-DD HH:MM:SS.SSS`: `datetime()` reads
//! them, and being fixed-width they order as text, so comparisons and the expiry index
//! need no conversion. The applied migration steps are listed in `<table>_migrations`.
//!
//! # The rules it keeps
//!
//! - **Liveness uses the layer's clock.** A row is live while `expires > now`, where `now`
//!   is the time the layer passes to the store call, never SQLite's clock. Every read and
//!   write filters on it, so an expired row that cleanup has not reached yet is never
//!   served, extended or revived.
//! - **Atomic, update-only writes.** Metadata changes (touch, persistence, owner) and
//!   rotation without data are one `UPDATE ... RETURNING`. A change to the data reads the
//!   row and writes it back inside `BEGIN IMMEDIATE`, SQLite's write lock, so two requests
//!   of one session that write different keys keep both writes. (SQLite's JSON functions
//!   cannot do it in one statement for every key: their paths cannot name a key that
//!   contains `"`, and rebuilding the object with `json_each` rounds large integers.)
//!   Saves never insert: a save for a session deleted or rotated meanwhile changes nothing.
//!   Creation never overwrites; rotation is one `UPDATE ... SET key = new`, a taken key
//!   being reported as a collision. [`SqliteStore::statements`] shows them all.
//! - **WAL mode, one writer.** The file is switched to WAL, so readers never wait for the
//!   writer. Writes go through one connection, queueing inside the process instead of
//!   polling SQLite's lock. A lock held by another process past the
//!   [busy timeout](SqliteStoreBuilder::with_busy_timeout) is an error
//!   ([`Timeout`](session_layer::StoreErrorKind::Timeout), a 503) that changed nothing:
//!   never a lost or half-written session.
//! - **Bounded waits.** Each store call waits at most the
//!   [query timeout](SqliteStoreBuilder::with_query_timeout), connection included.
//! - **A private file.** A database file the store creates is readable and writable by its
//!   owner only (mode 0600 on Unix), and so are the `-wal` and `-shm` files beside it: the
//!   sessions in it are credentials. An existing file keeps its permissions.
//! - **Several processes may start at once.** Opening and migrating retry while another
//!   process holds the file locked, up to the
//!   [start-up timeout](SqliteStoreBuilder::with_startup_timeout).
//! - **Expired rows are deleted in batches** by [`SqliteStore::spawn_cleanup`], or by
//!   calling [`delete_expired`](session_layer::SessionStore::delete_expired) yourself.
//!
//! # Your own pool
//!
//! [`SqliteStore::from_pool`] keeps the sessions in a pool the application already has
//! (see [`SqliteStoreBuilder::from_pool`] for what it shares).
//!
//! # Features
//!
//! This crate has no optional features. It uses `sqlx` with `runtime-tokio`, `sqlite`
//! (SQLite bundled), `json` and `time`, and re-exports it as [`sqlx`].

mod builder;
mod config;
mod error;
mod migrate;
mod sql;
mod startup;
mod store;
mod time_text;

pub use builder::{
    SqliteStoreBuilder, DEFAULT_BUSY_TIMEOUT, DEFAULT_CLEANUP_BATCH, DEFAULT_QUERY_TIMEOUT,
    DEFAULT_READERS, DEFAULT_STARTUP_TIMEOUT, DEFAULT_TABLE,
};
pub use config::{ConfigError, MAX_NAME_LEN};
pub use session_layer::store::CleanupHandle;
pub use sql::Statements;
pub use sqlx;
#[doc(hidden)]
pub use store::fuzz_columns;
pub use store::SqliteStore;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
