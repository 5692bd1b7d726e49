#!/usr/bin/env bash
# Packages every publishable crate as `cargo publish` would, then builds and tests what each
# tarball carries (its unit tests and doctests) with the tarballs standing in for crates.io.
set -euo pipefail
cd "$(dirname "$0")/.."

# In dependency order.
crates=(session-layer session-layer-redis session-layer-postgres session-layer-mysql
        session-layer-sqlite session-layer-auth session-layer-verify session-layer-tokens)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

args=()
for crate in "${crates[@]}"; do args+=(-p "$crate"); done
# Packaged as for publishing; the build and tests below verify them.
cargo package --no-verify "${args[@]}"

# A workspace of the unpacked tarballs, each sibling patched to its tarball, so that the
# tests run on exactly what users would download.
unpacked=target/package/unpacked
rm -rf "$unpacked"
mkdir -p "$unpacked"
members=()
patches=()
for crate in "${crates[@]}"; do
  tar -xzf "target/package/$crate-$version.crate" -C "$unpacked"
  members+=("\"$crate-$version\"")
  patches+=("$crate = { path = \"$crate-$version\" }")
done
{
  echo "[workspace]"
  echo "members = [$(IFS=,; echo "${members[*]}")]"
  echo "resolver = \"2\""
  echo
  echo "[patch.crates-io]"
  printf '%s\n' "${patches[@]}"
  echo
  # The same speed-ups the repository's own builds use for the slow hashes.
  echo "[profile.dev.package.argon2]"
  echo "opt-level = 3"
  echo "[profile.dev.package.curve25519-dalek]"
  echo "opt-level = 3"
} > "$unpacked/Cargo.toml"
cp Cargo.lock "$unpacked/Cargo.lock"
for crate in "${crates[@]}"; do
  files=$(tar -tzf "target/package/$crate-$version.crate" | wc -l)
  echo "packaged $crate $version: $files files"
done
# Shares the main build's compiled dependencies.
CARGO_TARGET_DIR="$PWD/target" cargo test --manifest-path "$unpacked/Cargo.toml" --workspace --all-features
echo "every package built and passed the tests it carries"
