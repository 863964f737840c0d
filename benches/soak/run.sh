#!/usr/bin/env bash
# Soak bench (issue 7, "Leaks"): one hour (by default) of random UPDATE churn and session flaps
# against the speaker CLI over loopback TCP, recording its open file descriptors and resident
# memory every minute. Not a CI test. Output: a table on stdout and the JSON report in
# benches/soak/result.json (or $OUT).
#
#   benches/soak/run.sh [soak arguments...]      e.g. --duration 900 --peers 8 --rate 50
#
# Runs at nice 19: the load is mostly I/O and the machine may be shared.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-benches/soak/result.json}
cargo build --release --example speaker --example soak
echo "soak: $(date -u +%FT%TZ) on $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)" >&2
exec nice -n 19 target/release/examples/soak --out "$out" "$@"
