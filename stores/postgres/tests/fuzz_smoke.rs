//! The `postgres_record` fuzz target, run on stable Rust: the PostgreSQL store's column
//! decoders get the target's seeds and thousands of generated and mutated rows. The
//! coverage-guided run is `fuzz/run.sh postgres_record SECONDS` (see `fuzz/README.md`).

#[test]
fn the_column_decoders_survive_hostile_rows() {
    session_layer_test_support::fuzz::smoke(
        "postgres_record",
        13,
        session_layer_postgres::fuzz_columns,
    );
}
