//! The Redis store's record decoder: any bytes, read as the value of a session key (as
//! `GET` returns it); a record that reads must read back the same after being written
//! again. Run with `fuzz/run.sh redis_record 60`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    session_layer_redis::fuzz_record(data);
});
