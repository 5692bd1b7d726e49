//! The `sqlite_record` fuzz target, run on stable Rust: the SQLite store's column decoders get
//! the target's seeds and thousands of generated and mutated rows. The coverage-guided run
//! is `fuzz/run.sh sqlite_record SECONDS` (see `fuzz/README.md`).

use std::path::Path;

use session_layer::testing::hostile::HostileInputs;

#[test]
fn the_column_decoders_survive_hostile_rows() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/sqlite_record");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    for seed in &seeds {
        session_layer_sqlite::fuzz_columns(seed);
    }
    const COUNT: usize = 20_000;
    for input in HostileInputs::new(13, &seeds)
        .with_max_len(1024)
        .take(COUNT)
    {
        session_layer_sqlite::fuzz_columns(&input);
    }
    println!(
        "hostile: fuzz smoke sqlite_record: {} inputs, no failure",
        COUNT + seeds.len()
    );
}
