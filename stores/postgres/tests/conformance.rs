//! The core's store conformance suite, run against a real PostgreSQL (`DATABASE_URL`,
//! default `postgres://postgres@127.0.0.1:5432/test`) in a schema of this run's own.

mod common;

async fn make_store() -> Option<session_layer_postgres::PostgresStore> {
    common::store().await
}

session_layer::store_conformance_tests!(make_store);
