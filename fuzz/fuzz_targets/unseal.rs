//! The client-side session cookie decoder: any bytes as a sealed cookie value, and any text
//! as a payload behind valid cryptography. Run with `fuzz/run.sh unseal 60` (or
//! `cargo +nightly fuzz run unseal` from the repository root).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    session_layer::client_side::fuzz_unseal(data);
});
