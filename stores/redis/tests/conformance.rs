//! The store contract against the Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`).
//! Outside CI the cases skip, saying so, when no server answers; with `CI=true` they fail.

mod common;

async fn make_store() -> Option<session_layer_redis::RedisStore> {
    common::shared_store().await
}

session_layer::store_conformance_tests!(make_store);
