//! The `mysql_record` fuzz target, run on stable Rust: the MySQL store's column
//! decoders get the target's seeds and thousands of generated and mutated rows. The
//! coverage-guided run is `fuzz/run.sh mysql_record SECONDS` (see `fuzz/README.md`).

#[test]
fn the_column_decoders_survive_hostile_rows() {
    session_layer_test_support::fuzz::smoke("mysql_record", 13, session_layer_mysql::fuzz_columns);
}
