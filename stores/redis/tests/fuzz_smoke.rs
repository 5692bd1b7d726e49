//! The `redis_record` fuzz target, run on stable Rust: the record decoder gets the target's
//! seeds and thousands of generated and mutated session hashes. The coverage-guided run is
//! `fuzz/run.sh redis_record SECONDS` (see `fuzz/README.md`).

#[test]
fn the_record_decoder_survives_hostile_hashes() {
    session_layer_test_support::fuzz::smoke("redis_record", 11, session_layer_redis::fuzz_record);
}
