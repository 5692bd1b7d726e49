//! The core's store conformance suite, run against a store built on a pool the application
//! opened itself (`SqliteStore::from_pool`), in a real SQLite file (one per case).

mod common;

async fn make_store() -> Option<common::TempStore> {
    Some(common::TempStore::from_user_pool().await)
}

session_layer::store_conformance_tests!(make_store);
