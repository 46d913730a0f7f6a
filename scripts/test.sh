#!/usr/bin/env bash
# The whole test suite, as README gives it: system peers, formatting, lints, every crate's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo test --workspace --all-features
# The published-suite counts, printed (the suite itself already ran above and gates on divergences).
cargo test -q --all-features -p smtp-tls-policy --test limbo -- --nocapture 2>&1 | grep -E '^(x509-limbo|failures:)'
