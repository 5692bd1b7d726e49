//! The `redis_record` fuzz target, run on stable Rust: the record decoder gets the target's
//! seeds and thousands of generated and mutated session hashes. The coverage-guided run is
//! `fuzz/run.sh redis_record SECONDS` (see `fuzz/README.md`).

use std::path::Path;

use session_layer::testing::hostile::HostileInputs;

#[test]
fn the_record_decoder_survives_hostile_hashes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/redis_record");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    for seed in &seeds {
        session_layer_redis::fuzz_record(seed);
    }
    const COUNT: usize = 20_000;
    for input in HostileInputs::new(11, &seeds)
        .with_max_len(1024)
        .take(COUNT)
    {
        session_layer_redis::fuzz_record(&input);
    }
    println!(
        "hostile: fuzz smoke redis_record: {} inputs, no failure",
        COUNT + seeds.len()
    );
}
