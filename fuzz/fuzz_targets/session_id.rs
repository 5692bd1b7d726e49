//! The session ID decoder: `SessionId::parse` on any bytes accepts exactly the canonical
//! base64url spelling of 32 bytes. Run with `fuzz/run.sh session_id 60`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    session_layer::fuzz::session_id(data);
});
