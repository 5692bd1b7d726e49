//! The SQLite store's column decoding: any bytes, split at NUL into the columns of one
//! row, through the store's own decoders; what decodes must read back the same once
//! written again. Run with `fuzz/run.sh sqlite_record 60`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    session_layer_sqlite::fuzz_columns(data);
});
