//! A store's fuzz target, run on stable Rust: its decoder gets the target's seeds and
//! thousands of generated and mutated inputs. The coverage-guided run is
//! `fuzz/run.sh TARGET SECONDS` (see `fuzz/README.md`).
//!
//! ```
//! // `fuzz/seeds/sqlite_record` holds that target's seeds; a real test passes the store's
//! // decoder, such as `session_layer_sqlite::fuzz_columns`.
//! session_layer_test_support::fuzz::smoke("sqlite_record", 7, |input| {
//!     let _ = std::str::from_utf8(input);
//! });
//! ```

use std::path::Path;

use crate::inputs::HostileInputs;

/// How many generated and mutated inputs a smoke run feeds the decoder, besides the seeds.
pub const INPUTS: usize = 20_000;

/// Feeds `decode` every seed in `fuzz/seeds/{target}`, then [`INPUTS`] hostile inputs of at
/// most 1 KiB from the stream numbered `seed`, grown from those seeds; prints the count as
/// `hostile: fuzz smoke {target}: N inputs, no failure`.
///
/// # Panics
///
/// When the target has no seeds (or they cannot be read), and whenever `decode` panics.
pub fn smoke(target: &str, seed: u64, decode: impl Fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    for seed in &seeds {
        decode(seed);
    }
    for input in HostileInputs::new(seed, &seeds)
        .with_max_len(1024)
        .take(INPUTS)
    {
        decode(&input);
    }
    println!(
        "hostile: fuzz smoke {target}: {} inputs, no failure",
        INPUTS + seeds.len()
    );
}
