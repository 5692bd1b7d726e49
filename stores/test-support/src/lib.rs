//! Test code the SQL store crates share: a small axum app over any store, served on
//! loopback, its client side, and the bodies of the checks every SQL store runs the same
//! way. Each store crate keeps what is its own (opening its store, its server, its query
//! plans, its fault tests) and calls these with its store; the test names stay in the store
//! crate, so a failure still says which backend failed.
//!
//! | module | what |
//! | --- | --- |
//! | [`app`] | the app ([`app::router`]), serving it ([`app::serve`]) and one request ([`app::call`]) |
//! | [`http`] | over real HTTP: no cookie value in the rows or the logs, rotation, logout racing a save |
//! | [`load`] | 10,000 concurrent writes over 1,000 sessions, every one kept |
//! | [`faults`] | the server behind a store stopped, frozen and stopped again under load: prompt failures, nothing acknowledged lost (the Redis store's too) |
//! | [`hostile`] | malformed IDs never reach the store; concurrent rotations and sign-outs lose nothing |
//! | [`fuzz`] | a store's fuzz target run on its seeds and generated inputs, on stable Rust (the Redis store's too) |
//!
//! Not published: it carries axum and reqwest, which the core's `testing` feature must not.
//!
//! ```
//! use reqwest::Method;
//! use session_layer::MemoryStore;
//! use session_layer_test_support::app::{call, router, serve};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let addr = serve(router(MemoryStore::default())).await;
//! let client = reqwest::Client::new();
//! let set = call(&client, addr, Method::POST, "/set/cart/apple", None).await;
//! let cookie = set.cookie.expect("a new session");
//! let get = call(&client, addr, Method::GET, "/get/cart", Some(&cookie)).await;
//! assert_eq!(get.body, "\"apple\"");
//! # }
//! ```

pub mod app;
pub mod faults;
pub mod fuzz;
pub mod hostile;
pub mod http;
pub mod load;
