//! The `Cookie` header path through the layer: any bytes, split at LF into `Cookie`
//! headers, sent through a `SessionLayer` over a `MemoryStore` to a handler that reads the
//! session. Asserts a 200, no session issued to a read, and that only the store's one known
//! ID reads its data. Run with `fuzz/run.sh cookie_header 60`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    session_layer::fuzz::cookie_header(data);
});
