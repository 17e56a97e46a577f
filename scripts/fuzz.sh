#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: FUZZ_SECONDS each (default 60).
#
#   cargo install cargo-fuzz        # once
#   scripts/fuzz.sh                 # FUZZ_SECONDS=300 scripts/fuzz.sh for a longer run
#
# cargo-fuzz needs nightly-only compiler flags (sanitizers). This machine has only a stable
# toolchain, so RUSTC_BOOTSTRAP=1 lets stable accept them. Findings land in fuzz/artifacts/;
# turn each into a regression test next to the code it breaks.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-60}"
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
  echo "==> $target for ${seconds}s"
  cargo fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048
done
echo "PASS: every fuzz target ran ${seconds}s without a crash"
