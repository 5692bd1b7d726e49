//! The core's store conformance suite, run against a store built on a pool the application
//! opened itself (`PostgresStore::from_pool`), on a real PostgreSQL (`DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`) in a schema of this run's own.

mod common;

async fn make_store() -> Option<session_layer_postgres::PostgresStore> {
    common::store_from_pool().await
}

session_layer::store_conformance_tests!(make_store);
