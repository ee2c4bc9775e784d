#!/usr/bin/env bash
# Builds every fuzz target and runs each for FUZZ_SECONDS (default 20) with
# its committed seeds and the SMTP dictionary, so the harness cannot rot.
# A crash fails the run and leaves the input in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-20}
export RUSTC_BOOTSTRAP=1   # cargo-fuzz's -Z flags on the stable toolchain
cargo fuzz build --sanitizer none
for target in $(cargo fuzz list); do
  mkdir -p "fuzz/corpus/$target"
  seeds=()
  [ -d "fuzz/seeds/$target" ] && seeds=("fuzz/seeds/$target")
  # Inputs that once failed (kept beside the generated seeds, which
  # generate.py rewrites).
  [ -d "fuzz/regressions/$target" ] && seeds+=("fuzz/regressions/$target")
  log=$(mktemp)
  if ! cargo fuzz run --sanitizer none "$target" "fuzz/corpus/$target" "${seeds[@]}" -- \
      -max_total_time="$secs" -dict=fuzz/smtp.dict -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $target FAILED"
    exit 1
  fi
  stats=$(grep -E '^#[0-9]+.*(DONE|pulse)' "$log" | tail -n 1)
  echo "$target: ${stats:-no stats}"
  rm -f "$log"
done
