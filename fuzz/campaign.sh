#!/usr/bin/env bash
# Runs one fuzz campaign: TARGET for SECONDS of wall time (one libFuzzer process, one core),
# starting from the committed corpus plus any working corpus left by an earlier run, then
# minimises the result back into corpus/TARGET and prints the campaign's numbers.
#
#   fuzz/campaign.sh TARGET SECONDS
#
# Uses the nightly toolchain (rustup's `+nightly`); with only stable, RUSTC_BOOTSTRAP=1 works.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?target}
secs=${2:?seconds}
work="work/$target"
mkdir -p "$work" "corpus/$target"
log="work/$target.log"
toolchain=+nightly
rustup toolchain list | grep -q nightly || { toolchain=; export RUSTC_BOOTSTRAP=1; }
cargo $toolchain fuzz build -O "$target"
cp -n "corpus/$target"/* "$work"/ 2>/dev/null || true
start=$(date +%s)
cargo $toolchain fuzz run -O "$target" "$work" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1 || status=$?
end=$(date +%s)
# Minimise the working corpus (seeds included) and make it the committed one.
cargo $toolchain fuzz cmin -O "$target" "$work" >/dev/null 2>&1 || true
rm -f "corpus/$target"/*
cp "$work"/* "corpus/$target"/ 2>/dev/null || true
execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo "?")
cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || echo "?")
ft=$(grep -Eo 'ft: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || echo "?")
crashes=$(ls artifacts/"$target" 2>/dev/null | wc -l)
echo "target=$target seconds=$((end - start)) executions=$execs coverage_edges=$cov features=$ft corpus_files=$(ls corpus/$target | wc -l) artifacts=$crashes exit=${status:-0}"
