#!/usr/bin/env bash
# The whole test suite, as README gives it: system peers, formatting, lints, every crate's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo test --workspace --all-features
