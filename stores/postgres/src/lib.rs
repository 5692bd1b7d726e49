//! A PostgreSQL [`SessionStore`](session_layer::SessionStore) for
//! [`session-layer`](session_layer), on `sqlx`.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use session_layer::{Session, SessionError, SessionLayer};
//! use session_layer_postgres::PostgresStore;
//!
//! async fn counter(session: Session) -> Result<String, SessionError> {
//!     let visits: u64 = session.get("visits").await?.unwrap_or(0);
//!     session.insert("visits", visits + 1).await?;
//!     Ok(format!("{visits} visits before this one"))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::connect("postgres://app@localhost:5432/app").await?;
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
//! [`PostgresStore::migrate`] creates (and later upgrades) one table, `public.sessions`
//! unless [configured](PostgresStoreBuilder) otherwise, with columns a DBA can read:
//!
//! | column | type | holds |
//! | --- | --- | --- |
//! | `key` | `BYTEA` primary key | SHA-256 of the session ID; the cookie value is never stored |
//! | `user_id` | `TEXT`, indexed | the owner, for listing and revoking a user's sessions |
//! | `created`, `last_seen` | `TIMESTAMPTZ` | creation and last recorded activity |
//! | `idle_deadline`, `absolute_deadline` | `TIMESTAMPTZ` | the two deadlines |
//! | `expires` | `TIMESTAMPTZ`, generated, indexed | the earlier deadline: the row is dead from then on |
//! | `persistent` | `BOOLEAN` | "remember me" |
//! | `data` | `JSONB` | the session's keys and values |
//! | `format` | `SMALLINT` | version of the data encoding (1) |
//!
//! The applied migration steps are listed in `<table>_migrations`. Requires PostgreSQL 12
//! or later (generated columns).
//!
//! # The rules it keeps
//!
//! - **Liveness uses the layer's clock.** A row is live while `expires > now`, where `now`
//!   is the time the layer passes to the store call, not the database's `now()`. Every
//!   read and write filters on it, so an expired row that cleanup has not reached yet is
//!   never served, extended or revived.
//! - **One statement per operation.** A save applies only its own keys inside PostgreSQL
//!   (`(data - removed) || set`), so concurrent requests of one session keep each other's
//!   writes. Saves only update: a save for a session that was deleted or rotated meanwhile
//!   changes nothing and is reported, so a slow request cannot undo a logout. Creation never
//!   overwrites (`ON CONFLICT DO NOTHING`). Rotation is one `UPDATE ... SET key = new`; a
//!   taken new key is reported as a collision. [`PostgresStore::statements`] shows them all.
//! - **Bounded waits.** Each store call waits at most the
//!   [query timeout](PostgresStoreBuilder::with_query_timeout), connection included. A slow
//!   database gives a [`Timeout`](session_layer::StoreErrorKind::Timeout) error, an
//!   unreachable one [`Unavailable`](session_layer::StoreErrorKind::Unavailable); the layer
//!   answers both with a 503 and never takes them for a missing session.
//! - **Expired rows are deleted in batches** by [`PostgresStore::spawn_cleanup`], or by
//!   calling [`delete_expired`](session_layer::SessionStore::delete_expired) yourself.
//!
//! # Your own pool
//!
//! [`PostgresStore::from_pool`] keeps the sessions in a pool the application already has
//! (see [`PostgresStoreBuilder::from_pool`] for what to set on it).
//!
//! # Features
//!
//! This crate has no optional features. It uses `sqlx` with `runtime-tokio`, `postgres`,
//! `json` and `time`, and re-exports it as [`sqlx`] so pool types match.

mod builder;
mod config;
mod error;
mod migrate;
mod sql;
mod store;

pub use builder::{
    PostgresStoreBuilder, DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_CLEANUP_BATCH, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_QUERY_TIMEOUT, DEFAULT_SCHEMA, DEFAULT_TABLE,
};
pub use config::{ConfigError, MAX_NAME_LEN};
pub use session_layer::store::CleanupHandle;
pub use sql::Statements;
pub use sqlx;
#[doc(hidden)]
pub use store::fuzz_columns;
pub use store::PostgresStore;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
