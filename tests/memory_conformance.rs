//! The store contract, run against the built-in `MemoryStore`.

async fn make_store() -> Option<session_layer::MemoryStore> {
    Some(session_layer::MemoryStore::default())
}

session_layer::store_conformance_tests!(make_store);
