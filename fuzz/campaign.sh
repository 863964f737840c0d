#!/usr/bin/env bash
# Runs one fuzz campaign: TARGET for at most SECONDS of wall time and, if CPU_SECONDS is
# given, until the libFuzzer process has used that much CPU time (user + system), whichever
# comes first. One libFuzzer process, one core. Starts from the committed corpus plus any
# working corpus left by an earlier run, then minimises the result back into corpus/TARGET and
# prints the campaign's numbers (CPU time from /proc/PID/stat).
#
#   fuzz/campaign.sh TARGET SECONDS [CPU_SECONDS]
#
# Run it under `nice -n 19` on a shared machine. Uses the nightly toolchain (rustup's
# `+nightly`); with only stable, RUSTC_BOOTSTRAP=1 works. SANITIZER=none builds without
# AddressSanitizer (the libraries forbid unsafe code; about six times the executions per CPU
# second on rib_updates); the default is cargo fuzz's, address. Coverage numbers of the two
# builds are not comparable (ASan's checks add edges). FUZZ_TIMEOUT (seconds, default 10) is
# libFuzzer's per-input limit; it counts wall time, so a campaign that is paused (SIGSTOP, to
# keep a benchmark quiet) needs a limit longer than the pause, or it reports a false timeout.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?target}
secs=${2:?seconds}
cpu_budget=${3:-0}
work="work/$target"
mkdir -p "$work" "corpus/$target" "artifacts/$target"
log="work/$target.log"
toolchain=+nightly
rustup toolchain list | grep -q nightly || { toolchain=; export RUSTC_BOOTSTRAP=1; }
san=${SANITIZER:-address}
tdir=target
[ "$san" = address ] || tdir="target-$san"
flags=(-O -s "$san" --target-dir "$tdir")
cargo $toolchain fuzz build "${flags[@]}" "$target"
bin="$tdir/x86_64-unknown-linux-gnu/release/$target"
cp -n "corpus/$target"/* "$work"/ 2>/dev/null || true
ticks=$(getconf CLK_TCK)
cpu_of() { # user + system seconds of a live process
    awk -v t="$ticks" '{ print int(($14 + $15) / t) }' "/proc/$1/stat" 2>/dev/null || echo 0
}
start=$(date +%s)
"$bin" "$work" -artifact_prefix="artifacts/$target/" \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout="${FUZZ_TIMEOUT:-10}" -print_final_stats=1 >"$log" 2>&1 &
pid=$!
cpu=0
while kill -0 "$pid" 2>/dev/null; do
    now=$(cpu_of "$pid")
    [ "$now" -gt 0 ] && cpu=$now
    if [ "$cpu_budget" -gt 0 ] && [ "$cpu" -ge "$cpu_budget" ]; then
        kill -INT "$pid" 2>/dev/null || true
        break
    fi
    sleep 5
done
status=0
wait "$pid" || status=$?
end=$(date +%s)
# Minimise the working corpus (seeds included) and make it the committed one.
cargo $toolchain fuzz cmin "${flags[@]}" "$target" "$work" >/dev/null 2>&1 || true
rm -f "corpus/$target"/*
cp "$work"/* "corpus/$target"/ 2>/dev/null || true
execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo "?")
cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || echo "?")
ft=$(grep -Eo 'ft: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || echo "?")
crashes=$(ls "artifacts/$target" 2>/dev/null | wc -l)
echo "target=$target sanitizer=$san wall_seconds=$((end - start)) cpu_seconds=$cpu executions=$execs coverage_edges=$cov features=$ft corpus_files=$(ls "corpus/$target" | wc -l) artifacts=$crashes exit=$status" | tee -a "work/campaigns.txt"
