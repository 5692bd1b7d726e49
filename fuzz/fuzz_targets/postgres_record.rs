//! The PostgreSQL store's column decoding: any bytes, split at the first NUL into the key
//! column and the JSONB data column (as the server sends it), through the store's key
//! decoder and sqlx's JSON decoding; what decodes must read back the same once written. Run with `fuzz/run.sh postgres_record 60`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    session_layer_postgres::fuzz_columns(data);
});
