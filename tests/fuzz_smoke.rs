//! The fuzz targets of `fuzz/`, run on stable Rust: each target's body gets its seeds (and
//! every crash input ever found, kept among them) plus thousands of generated and mutated
//! inputs. The real, coverage-guided runs are `fuzz/run.sh TARGET SECONDS` (see
//! `fuzz/README.md`); this is the smoke run CI can always afford.

use std::path::Path;

use session_layer_test_support::inputs::HostileInputs;

/// The committed seeds of one fuzz target (`fuzz/seeds/<target>/`).
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// Feeds `body` the seeds as they are, then `count` hostile inputs built from them.
fn smoke(target: &str, count: usize, max_len: usize, body: fn(&[u8])) {
    let seeds = seeds(target);
    for seed in &seeds {
        body(seed);
    }
    let inputs = HostileInputs::new(target.len() as u64, &seeds).with_max_len(max_len);
    for input in inputs.take(count) {
        body(&input);
    }
    println!(
        "hostile: fuzz smoke {target}: {} inputs, no failure",
        count + seeds.len()
    );
}

#[test]
fn the_cookie_header_target_survives_hostile_headers() {
    smoke(
        "cookie_header",
        5_000,
        16 * 1024,
        session_layer::fuzz::cookie_header,
    );
}

#[test]
fn the_session_id_target_survives_hostile_ids() {
    smoke("session_id", 50_000, 128, session_layer::fuzz::session_id);
}

#[test]
fn the_unseal_target_survives_hostile_cookies_and_payloads() {
    smoke(
        "unseal",
        3_000,
        4096,
        session_layer::client_side::fuzz_unseal,
    );
}

#[test]
fn the_known_id_opens_its_session_and_lookalikes_do_not() {
    use session_layer::fuzz::{cookie_header, KNOWN_ID};
    // The target's own positive check runs on the exact cookie; lookalikes must stay out
    // (the target asserts it: no data without the known ID).
    cookie_header(format!("__Host-session={KNOWN_ID}").as_bytes());
    let mut flipped = KNOWN_ID.as_bytes().to_vec();
    for i in 0..flipped.len() {
        flipped[i] ^= 0x20;
        let mut header = b"__Host-session=".to_vec();
        header.extend_from_slice(&flipped);
        cookie_header(&header);
        flipped[i] ^= 0x20;
    }
}
