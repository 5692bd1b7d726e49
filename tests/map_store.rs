//! The store the store authors' guide shows (`examples/map_store.rs`) passes the whole
//! conformance suite, and so does a forwarding wrapper around it.

#[allow(unreachable_pub)] // public in the example, which is a crate of its own
#[path = "../examples/map_store.rs"]
mod map_store;

use map_store::MapStore;
use session_layer::testing::CountingStore;

async fn make_store() -> Option<MapStore> {
    Some(MapStore::default())
}

session_layer::store_conformance_tests!(make_store);

mod wrapped {
    use super::*;

    async fn make_store() -> Option<CountingStore<MapStore>> {
        Some(CountingStore::new(MapStore::default()))
    }

    session_layer::store_conformance_tests!(make_store);
}
