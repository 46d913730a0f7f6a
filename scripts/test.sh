#!/usr/bin/env bash
# The whole test suite, as README gives it: system peers, formatting, lints, every crate's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps --quiet
cargo test --workspace --all-features
# The published-suite counts (x509-limbo, the TLS-RPT corpus), printed (the suite already ran above, gated on its divergence list);
# same features as above, so nothing is rebuilt.
cargo test -q --workspace --all-features --tests -- --nocapture --exact \
  limbo_core_strict fewer_failures_than_rustls_webpki_alone \
  corpus_reports_read_with_their_expected_counts 2>&1 |
  grep -oE '(x509-limbo core, strict: .*|failures: smtp-tls-policy .*|tlsrpt corpus: .*)' || true
