#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each for a bounded time (default 30 s).
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Seeds in fuzz/seeds/TARGET/ are copied into a scratch corpus; nothing is written into the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}; shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# A fresh target dir: a failed plain-stable probe is cached in .rustc_info.json otherwise.
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$PWD/fuzz/target}
export RUSTC_BOOTSTRAP=1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
  cargo fuzz build --fuzz-dir fuzz
else
  for t in "${targets[@]}"; do cargo fuzz build --fuzz-dir fuzz "$t"; done
fi
scratch=$(mktemp -d /tmp/fuzz-corpus.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  [ -d "fuzz/seeds/$t" ] && cp -r "fuzz/seeds/$t/." "$scratch/$t/"
  echo "== fuzz $t for ${secs}s"
  rc=0
  cargo fuzz run --fuzz-dir fuzz "$t" "$scratch/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    >"$scratch/$t.log" 2>&1 || rc=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)' "$scratch/$t.log" || true
  if [ "$rc" -ne 0 ]; then tail -60 "$scratch/$t.log" >&2; echo "fuzz target $t failed" >&2; exit 1; fi
done
echo "fuzzed ${#targets[@]} targets, ${secs}s each"
