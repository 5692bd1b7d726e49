//! The core's store conformance suite, run against a real SQLite file in a temporary
//! directory (one per case).

mod common;

async fn make_store() -> Option<common::TempStore> {
    Some(common::TempStore::new().await)
}

session_layer::store_conformance_tests!(make_store);
