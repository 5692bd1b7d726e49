//! The MySQL store's column decoding: any bytes, split at the first NUL into the key column and
//! the data column's JSON text, through the store's own decoders; what
//! decodes must read back the same once written. Run with `fuzz/run.sh mysql_record 60`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    session_layer_mysql::fuzz_columns(data);
});
