//! A MySQL and MariaDB [`SessionStore`](session_layer::SessionStore) for
//! [`session-layer`](session_layer), on `sqlx`.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use session_layer::{Session, SessionError, SessionLayer};
//! use session_layer_mysql::MySqlStore;
//!
//! async fn counter(session: Session) -> Result<String, SessionError> {
//!     let visits: u64 = session.get("visits").await?.unwrap_or(0);
//!     session.insert("visits", visits + 1).await?;
//!     Ok(format!("{visits} visits before this one"))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MySqlStore::connect("mysql://app:secret@localhost:3306/app").await?;
//! store.migrate().await?;
//! let cleanup = store.spawn_cleanup(std::time::Duration::from_secs(300));
//!
//! let app: Router = Router::new()
//!     .route("/", get(counter))
//!     .layer(SessionLayer::new(store));
//! // serve `app`, then:
//! cleanup.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # The table
//!
//! [`MySqlStore::migrate`] creates (and later upgrades) one InnoDB table, `sessions` unless
//! [configured](MySqlStoreBuilder::with_table) otherwise, in the database the URL names,
//! with columns a DBA can read:
//!
//! | column | type | holds |
//! | --- | --- | --- |
//! | `key` | `BINARY(32)` primary key | SHA-256 of the session ID; the cookie value is never stored |
//! | `user_id` | `VARBINARY(1020)`, indexed | the owner as UTF-8, for listing and revoking a user's sessions |
//! | `created`, `last_seen` | `DATETIME(3)`, UTC | creation and last recorded activity |
//! | `idle_deadline`, `absolute_deadline` | `DATETIME(3)`, UTC | the two deadlines |
//! | `expires` | `DATETIME(3)`, generated, indexed | the earlier deadline: the row is dead from then on |
//! | `persistent` | `BOOLEAN` | "remember me" |
//! | `data` | `JSON`, an object | the session's keys and values |
//! | `format` | `SMALLINT` | version of the data encoding (1) |
//!
//! The owner is a binary string so that it compares byte for byte: a text column would
//! ignore trailing spaces (and, with most collations, case), and one user could then list or
//! sign out another's sessions. User IDs longer than 1,020 bytes are refused with an error.
//! Times must lie within the years 1000 to 9999 (`DATETIME`). The applied migration steps
//! are listed in `<table>_migrations`. Tested with MariaDB 10.11. The SQL is written for
//! MySQL 8.0.16 or later too (for `CHECK` constraints), which these tests have not run
//! against.
//!
//! # The rules it keeps
//!
//! - **Liveness uses the layer's clock.** A row is live while `expires > now`, where `now`
//!   is the time the layer passes to the store call, not the database's `NOW()`. Every
//!   read and write filters on it, so an expired row that cleanup has not reached yet is
//!   never served, extended or revived.
//! - **A save is one short transaction.** It reads the row with `SELECT ... FOR UPDATE`,
//!   applies the request's change with the core's
//!   [`WriteRules::apply`](session_layer::store::WriteRules::apply) (its own keys only, the
//!   size limits, a due touch) and writes the row back, so concurrent requests of one
//!   session wait for each other and keep each other's writes. One statement of JSON
//!   functions cannot do it: the size limits need the stored data, MariaDB has no
//!   `UPDATE ... RETURNING` to give the metadata back, and JSON paths cannot name every key
//!   a session may hold. Saves only update: a save for a session that was deleted or
//!   rotated meanwhile changes nothing and is reported, so a slow request cannot undo a
//!   logout. Creation never overwrites (a taken key is a collision). Rotation is one
//!   `UPDATE ... SET key = new` in the same kind of transaction; a taken new key is
//!   reported as a collision. A transaction InnoDB picks as a deadlock victim is rolled
//!   back whole and runs again. [`MySqlStore::statements`] shows every statement.
//! - **Signing a user out everywhere leaves no gap.** A rotation racing
//!   [`delete_by_user`](session_layer::SessionStore::delete_by_user) holds its row locked
//!   until it commits. The `DELETE` runs at `REPEATABLE READ` (set for that statement,
//!   whatever the pool uses), where InnoDB locks the whole range of the user's index it
//!   scans, gaps included: the rotated row cannot move into a part the scan has passed.
//!   The rotation waits, or InnoDB ends one of the two as a deadlock victim and it runs
//!   again (the rotation then finds its row gone). At `READ COMMITTED` there are no gap
//!   locks, and the conformance case racing the two lets a rotated session survive about
//!   one run in four; the suite runs at both levels.
//! - **Bounded waits.** Each store call waits at most the
//!   [query timeout](MySqlStoreBuilder::with_query_timeout), connection included. A slow
//!   database gives a [`Timeout`](session_layer::StoreErrorKind::Timeout) error, an
//!   unreachable one [`Unavailable`](session_layer::StoreErrorKind::Unavailable); the layer
//!   answers both with a 503 and never takes them for a missing session.
//! - **Expired rows are deleted in batches** by [`MySqlStore::spawn_cleanup`], or by
//!   calling [`delete_expired`](session_layer::SessionStore::delete_expired) yourself.
//!
//! # Your own pool
//!
//! [`MySqlStore::from_pool`] keeps the sessions in a pool the application already has (see
//! [`MySqlStoreBuilder::from_pool`] for what to set on it).
//!
//! # Features
//!
//! This crate has no optional features. It uses `sqlx` with `runtime-tokio`, `mysql` and
//! `time`, and re-exports it as [`sqlx`] so pool types match. It enables no TLS: a server
//! that requires it, or MySQL 8's `caching_sha2_password` over a plain connection, needs
//! sqlx's `tls-rustls` (or `mysql-rsa`) feature, which your own `sqlx` dependency can turn
//! on for this crate too.

mod builder;
mod columns;
mod config;
mod error;
mod migrate;
mod sql;
mod store;

pub use builder::{
    MySqlStoreBuilder, DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_CLEANUP_BATCH, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_QUERY_TIMEOUT, DEFAULT_TABLE,
};
#[doc(hidden)]
pub use columns::fuzz_columns;
pub use config::{ConfigError, MAX_NAME_LEN};
pub use session_layer::store::CleanupHandle;
pub use sql::Statements;
pub use sqlx;
pub use store::MySqlStore;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
