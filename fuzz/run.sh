#!/usr/bin/env bash
# Runs one fuzz target under libFuzzer for a while: fuzz/run.sh TARGET SECONDS [JOBS]
#
# Targets: cookie_header, session_id, unseal, redis_record, sqlite_record, postgres_record,
# mysql_record (see fuzz/README.md).
# With cargo-fuzz and a nightly toolchain it runs `cargo +nightly fuzz run`; otherwise (or
# with FUZZ_BOOTSTRAP=1) it builds the target itself with cargo-fuzz's flags on the default
# toolchain, which accepts them with RUSTC_BOOTSTRAP=1, so a machine with only stable Rust
# can still fuzz.
# The corpus (fuzz/corpus/TARGET) starts from the committed seeds (fuzz/seeds/TARGET);
# crashes land in fuzz/artifacts/TARGET. The last lines print libFuzzer's final stats.
set -euo pipefail

target="${1:?usage: fuzz/run.sh TARGET SECONDS [JOBS]}"
seconds="${2:?usage: fuzz/run.sh TARGET SECONDS [JOBS]}"
jobs="${3:-1}"
cd "$(dirname "$0")"

if [ ! -f "fuzz_targets/$target.rs" ]; then
  echo "no such target: $target (have: $(ls fuzz_targets | sed 's/\.rs$//' | tr '\n' ' '))" >&2
  exit 2
fi

corpus="corpus/$target"
artifacts="artifacts/$target"
mkdir -p "$corpus" "$artifacts"
cp -n "seeds/$target/"* "$corpus/" 2>/dev/null || true

# Each input must finish within a second; past that, libFuzzer reports a hang.
libfuzzer_args=(
  -max_total_time="$seconds"
  -timeout=1
  -rss_limit_mb=2048
  -print_final_stats=1
  -artifact_prefix="$artifacts/"
)
if [ "$jobs" -gt 1 ]; then
  libfuzzer_args+=(-fork="$jobs")
fi

if [ -z "${FUZZ_BOOTSTRAP:-}" ] && cargo fuzz --version >/dev/null 2>&1 \
  && cargo +nightly --version >/dev/null 2>&1; then
  echo "== cargo +nightly fuzz run $target ($seconds s)"
  exec cargo +nightly fuzz run "$target" "$corpus" -- "${libfuzzer_args[@]}"
fi

# No cargo-fuzz, no nightly, or FUZZ_BOOTSTRAP set: the flags cargo-fuzz 0.13 passes, on the
# default toolchain.
echo "== building $target on the default toolchain with RUSTC_BOOTSTRAP=1 ($seconds s)"
host="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-Cpasses=sancov-module \
  -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
  -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares \
  --cfg fuzzing -Cdebug-assertions -Coverflow-checks \
  -Zsanitizer=address"
# Its own target directory, so the two ways of building never undo each other's work.
cargo build --release --target "$host" --target-dir target/bootstrap --bin "$target"
# As cargo-fuzz does: ASan's one-definition-rule check fires on the SQLite amalgamation that
# every target links (through the store crates), before any input runs.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"
exec "target/bootstrap/$host/release/$target" "${libfuzzer_args[@]}" "$corpus"
