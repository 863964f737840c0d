#!/usr/bin/env bash
# End-to-end benchmark of issue 8: injector(s) -> target daemon -> monitor(s), on loopback.
#
# For each target, one after another (a fresh daemon per repetition), the script writes an
# accept-all config into a temporary directory, starts the daemon on its own loopback address,
# starts the monitors and injectors (examples/bgpload.rs; they listen, the daemon connects to
# them), waits until every session is up, samples the daemon's idle RSS/VSZ and CPU time, lets
# the injectors send, waits (bounded) until every monitor holds every prefix, samples CPU, peak
# RSS (VmHWM) and the settled RSS, and stops exactly what it started, by PID.
#
# Usage: sudo benches/e2e/run.sh [--reps N] [--size small|bar|full] [--targets bird,gobgp,frr]
#                                [--scenarios 1,2,3,4,5] [--out DIR] [--settle SECS]
#                                [--churn-rate N] [--churn-secs N]
#   --size small  10,000 IPv4 + 2,000 IPv6 prefixes in 2,400 attribute sets (smoke test, seconds)
#   --size bar    1,000,000 IPv4 prefixes in 200,000 attribute sets, no IPv6 (issue 8's bar; default)
#   --size full   TableSpec::full(): 1,000,000 IPv4 + 200,000 IPv6 prefixes, 360,000 sets
#   --scenarios   1: one injector, one monitor; 2: one injector, 10 monitors;
#                 3: 10 injectors with disjoint tenths of the table, one monitor;
#                 4: churn: after convergence, --churn-rate prefix changes per second (10,000)
#                    for --churn-secs (60): the monitor's lag after the last change, target CPU;
#                 5: graceful restart of the injector (SIGKILL, restart with the R bit and the
#                    same table): time from its End-of-RIB until the target's CPU time stops
#                    moving for 2 s, and the withdrawals the monitor saw (should be zero)
#   --targets     bird, gobgp, frr, speaker (our CLI, current-thread runtime), speaker-mt
#                 (our CLI, multi-thread runtime)
#   --summarize F print the tables of a results.jsonl kept with --out (with the --size it ran at)
#   --check       exit 1 unless every run succeeded (CI runs --size small once, so that the
#                 benchmark does not rot; it is not a timed test)
#
# Must run as root (port 179). Uses 127.0.8.0/24 only (--net 127.0.9 picks another /24): targets
# .1-.4, injectors .101-.110, monitors .201-.210. Prints one markdown table per scenario on stdout; progress on stderr.
# Convergence = last monitor's "holds every prefix" time - first injector's first UPDATE time.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="${E2E_REPO:-$(cd "$HERE/../.." && pwd)}"   # E2E_REPO: when running a copy of this script

REPS=3
SIZE=bar
TARGETS=speaker,speaker-mt,bird,gobgp,frr
SCENARIOS=1
OUT=""
SETTLE=3
CHURN_RATE=10000
CHURN_SECS=""
GR=0
SUMMARIZE=""
CHECK=0
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) REPS="$2"; shift 2 ;;
        --size) SIZE="$2"; shift 2 ;;
        --targets) TARGETS="$2"; shift 2 ;;
        --scenarios) SCENARIOS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --settle) SETTLE="$2"; shift 2 ;;
        --net) NET="$2"; shift 2 ;;
        --churn-rate) CHURN_RATE="$2"; shift 2 ;;
        --churn-secs) CHURN_SECS="$2"; shift 2 ;;
        --summarize) SUMMARIZE="$2"; shift 2 ;;
        --check) CHECK=1; shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

case "$SIZE" in
    small) IPV4=10000;   IPV6=2000;   SETS=2400;   TIMEOUT=120 ;;
    bar)   IPV4=1000000; IPV6=0;      SETS=200000; TIMEOUT=900 ;;
    full)  IPV4=1000000; IPV6=200000; SETS=360000; TIMEOUT=1200 ;;
    *) echo "--size small|bar|full" >&2; exit 2 ;;
esac
EXPECT=$((IPV4 + IPV6))
[ -n "$CHURN_SECS" ] || { CHURN_SECS=60; [ "$SIZE" = small ] && CHURN_SECS=10; }
SEED=24301

BGPD=/usr/lib/frr/bgpd
for b in python3 cargo; do
    command -v "$b" >/dev/null || { echo "missing: $b" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "must run as root (port 179)" >&2; exit 1; }

NET="${NET:-127.0.8}"
WORK="$(mktemp -d /tmp/bgp-e2e.XXXXXX)"
chmod 755 "$WORK"
RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
CLK_TCK="$(getconf CLK_TCK)"

STARTED_PIDS=()   # every process this script started and has not yet stopped
TARGET_PID=""

log() { printf '%s [e2e] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# Stop one process we started: TERM, wait (bounded), then KILL. Only by PID.
stop_pid() {
    local pid="$1" i
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    local keep=() p
    for p in "${STARTED_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    STARTED_PIDS=("${keep[@]}")
}

# wait_exit PID SECONDS: wait (bounded) for a process we started to exit by itself.
wait_exit() {
    local i
    for i in $(seq 1 $(( $2 * 5 ))); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.2
    done
}

# descendants PID: the ids of the processes PID started, and theirs, deepest first.
descendants() {
    local c
    for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        descendants "$c"
        echo "$c"
    done
}

stop_all() {
    local p d
    for p in "${STARTED_PIDS[@]}"; do
        # A profiler wrapper (E2E_SPEAKER_WRAP) may leave its child running: stop the tree.
        for d in $(descendants "$p"); do kill -TERM "$d" 2>/dev/null || true; done
        stop_pid "$p"
    done
}

cleanup() {
    local rc=$?
    set +e
    stop_all
    if [ -n "$OUT" ]; then
        mkdir -p "$OUT" && cp -r "$WORK"/. "$OUT"/ && log "raw results kept in $OUT"
    fi
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_until SECONDS DESCRIPTION COMMAND...: poll every 0.2 s, fail after SECONDS.
wait_until() {
    local secs="$1" what="$2"; shift 2
    local deadline=$(( $(date +%s) + secs ))
    while ! "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            log "timeout (${secs}s) waiting for: $what"
            return 1
        fi
        sleep 0.2
    done
}

# ------------------------------------------------------------------------ /proc sampling
cpu_ticks() {  # utime + stime of PID, in clock ticks
    local stat rest
    stat="$(cat "/proc/$1/stat")"
    rest="${stat##*) }"            # fields from 3 on (comm may hold spaces)
    set -- $rest
    echo $(( ${12} + ${13} ))      # fields 14 and 15
}
status_kb() {  # status_kb PID FIELD -> value in kB
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# ------------------------------------------------------------------------ peers of a run
# PEERS holds "name addr asn" lines for the current run: injectors inj1.., monitors mon1..
inj_addr() { echo "$NET.$((100 + $1))"; }
inj_asn()  { echo $((65100 + $1)); }
mon_addr() { echo "$NET.$((200 + $1))"; }
mon_asn()  { echo $((65000 + $1)); }
peer_list() {  # peer_list N_INJ N_MON -> "addr asn" lines
    local i
    for i in $(seq 1 "$1"); do echo "$(inj_addr "$i") $(inj_asn "$i")"; done
    for i in $(seq 1 "$2"); do echo "$(mon_addr "$i") $(mon_asn "$i")"; done
}

# ------------------------------------------------------------------------ targets
# Each target is one function: target_start_NAME DIR ADDR ASN N_INJ N_MON. It writes an
# accept-all config into DIR, starts the daemon in the background with its address, sets
# TARGET_PID and appends it to STARTED_PIDS; it returns 2 to skip the target. The daemon must
# connect to every peer of peer_list (they listen on port 179) with eBGP, IPv4 and IPv6
# unicast, and must not need a kernel route for the next hop 198.18.0.1.
declare -A TARGET_ADDR=([bird]=$NET.1 [gobgp]=$NET.2 [frr]=$NET.3 [speaker]=$NET.4 [speaker-mt]=$NET.5)
declare -A TARGET_ASN=([bird]=4200000001 [gobgp]=4200000002 [frr]=4200000003 [speaker]=4200000004 [speaker-mt]=4200000005)
declare -A TARGET_VERSION=()

target_start_bird() {
    local dir="$1" addr="$2" asn="$3" a p
    {
        echo "log \"$dir/bird.log\" { warning, error, fatal, bug };"
        echo "router id 10.0.8.1;"
        echo "protocol device { }"
        # Loopback neighbours are host scope: BIRD needs multihop, which resolves next hops
        # recursively through an IGP table; an empty one leaves 198.18.0.1 unresolved, which
        # BIRD keeps and exports anyway (next hop self towards the monitors).
        echo "ipv4 table igp4;"
        echo "ipv6 table igp6;"
        echo "template bgp peer {"
        echo "  local $addr as $asn;"
        echo "  multihop 2;"
        echo "  strict bind yes;"
        echo "  connect delay time 1; connect retry time 1; error wait time 1, 5;"
        # graceful restart: BIRD's default "aware" is the helper (receiving speaker) role.
        echo "  ipv4 { import all; export all; igp table igp4; };"
        # An IPv6 channel on an IPv4 session needs an IPv6 next hop to export ("Missing next
        # hop address" otherwise): documentation range, attribute data only.
        echo "  ipv6 { import all; export all; igp table igp6; next hop address 2001:db8:ffff::1; };"
        echo "}"
        peer_list "$4" "$5" | while read -r a p; do
            echo "protocol bgp p${a//./_} from peer { neighbor $a as $p; }"
        done
    } > "$dir/bird.conf"
    TARGET_VERSION[bird]="$(bird --version 2>&1 | head -1)"
    bird -f -c "$dir/bird.conf" -s "$dir/bird.ctl" -P "$dir/bird.pid" >"$dir/bird.out" 2>&1 &
    TARGET_PID=$!; STARTED_PIDS+=("$TARGET_PID")
}

target_start_gobgp() {
    local dir="$1" addr="$2" asn="$3" a p fam
    {
        echo "[global.config]"
        echo "  as = $asn"
        echo "  router-id = \"10.0.8.2\""
        echo "  port = 179"
        echo "  local-address-list = [\"$addr\"]"
        echo "  [global.apply-policy.config]"
        echo "    default-import-policy = \"accept-route\""
        echo "    default-export-policy = \"accept-route\""
        peer_list "$4" "$5" | while read -r a p; do
            echo "[[neighbors]]"
            echo "  [neighbors.config]"
            echo "    neighbor-address = \"$a\""
            echo "    peer-as = $p"
            echo "  [neighbors.transport.config]"
            echo "    local-address = \"$addr\""
            echo "  [neighbors.timers.config]"
            echo "    connect-retry = 1"
            echo "  [neighbors.ebgp-multihop.config]"
            echo "    enabled = true"
            echo "    multihop-ttl = 2"
            if [ "$GR" = 1 ]; then   # graceful restart is off by default in GoBGP
                echo "  [neighbors.graceful-restart.config]"
                echo "    enabled = true"
                echo "    restart-time = 120"
            fi
            for fam in ipv4-unicast ipv6-unicast; do
                echo "  [[neighbors.afi-safis]]"
                echo "    [neighbors.afi-safis.config]"
                echo "      afi-safi-name = \"$fam\""
                if [ "$GR" = 1 ]; then
                    echo "    [neighbors.afi-safis.mp-graceful-restart.config]"
                    echo "      enabled = true"
                fi
            done
        done
    } > "$dir/gobgpd.toml"
    TARGET_VERSION[gobgp]="gobgpd $(gobgpd --version 2>&1 | awk '{print $NF}')"
    gobgpd -f "$dir/gobgpd.toml" -t toml --api-hosts "$addr:50058" --pprof-disable -l warn \
        >"$dir/gobgpd.log" 2>&1 &
    TARGET_PID=$!; STARTED_PIDS+=("$TARGET_PID")
}

target_start_frr() {
    local dir="$1" addr="$2" asn="$3" a p fam
    mkdir -p "$dir/frr"; chmod 777 "$dir/frr"
    {
        echo "frr defaults traditional"
        echo "hostname e2e-frr"
        # bgpd without zebra logs one error per route at the default level: critical only.
        echo "log file $dir/frr.log critical"
        echo "router bgp $asn"
        echo " bgp router-id 10.0.8.3"
        echo " no bgp ebgp-requires-policy"
        echo " no bgp default ipv4-unicast"
        # FRR 8.4 is a graceful restart helper by default; scenario 5 turns on the full mode.
        [ "$GR" = 1 ] && echo " bgp graceful-restart"
        peer_list "$4" "$5" | while read -r a p; do
            echo " neighbor $a remote-as $p"
            echo " neighbor $a update-source $addr"
            echo " neighbor $a ebgp-multihop 2"
            echo " neighbor $a timers connect 1"
            # "traditional" means a 30 s eBGP MRAI; the bar was measured without it.
            echo " neighbor $a advertisement-interval 0"
        done
        for fam in ipv4 ipv6; do
            echo " address-family $fam unicast"
            peer_list "$4" "$5" | while read -r a p; do echo "  neighbor $a activate"; done
            echo " exit-address-family"
        done
    } > "$dir/frr/bgpd.conf"
    TARGET_VERSION[frr]="FRR $("$BGPD" --version 2>&1 | awk 'NR==1{print $3}') bgpd"
    "$BGPD" -f "$dir/frr/bgpd.conf" -i "$dir/frr/bgpd.pid" -Z -S -l "$addr" -p 179 \
        --vty_socket "$dir/frr" -P 0 >"$dir/frr.out" 2>&1 &
    TARGET_PID=$!; STARTED_PIDS+=("$TARGET_PID")
}

# ---- bgp-speaker (our CLI, examples/speaker.rs) -----------------------------------------------
# Two targets: "speaker" (the CLI's default current-thread runtime) and "speaker-mt"
# (--multi-thread). export-learned makes it pass what the injectors send on to the monitors;
# it connects out to every tool (they listen), like the daemons.
target_start_speaker_any() {  # DIR ADDR ASN N_INJ N_MON FLAGS...
    local dir="$1" addr="$2" asn="$3" ninj="$4" nmon="$5" a p
    shift 5
    {
        echo "[global]"
        echo "asn = $asn"
        echo "router-id = \"10.0.8.4\""
        echo "export-learned = true"
        echo "restart-state-file = \"$dir/speaker.restart-state\""
        peer_list "$ninj" "$nmon" | while read -r a p; do
            echo "[[peer]]"
            echo "address = \"$a\""
            echo "peer-asn = $p"
            echo "local-address = \"$addr\""
            echo "connect-retry = 1"
            echo "families = [\"ipv4-unicast\", \"ipv6-unicast\"]"
        done
    } > "$dir/speaker.toml"
    TARGET_VERSION[speaker]="bgp-speaker $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null)"
    TARGET_VERSION[speaker-mt]="${TARGET_VERSION[speaker]} (multi-thread)"
    # E2E_SPEAKER_WRAP (e.g. "perf record -g -o /tmp/perf.data --") runs the speaker under a
    # profiler; the CPU and memory columns then measure the wrapper, not the speaker. The
    # wrapper may not pass SIGTERM on to the speaker: stop_all stops the wrapper's descendants.
    ${E2E_SPEAKER_WRAP:-} "$REPO/target/release/examples/speaker" --config "$dir/speaker.toml" "$@" \
        >"$dir/speaker.out" 2>&1 &
    TARGET_PID=$!; STARTED_PIDS+=("$TARGET_PID")
}
target_start_speaker() { target_start_speaker_any "$@"; }
target_start_speaker-mt() { target_start_speaker_any "$@" --multi-thread; }

# ------------------------------------------------------------------------ one run
LOAD="$REPO/target/release/examples/bgpload"

all_established() {  # all_established DIR N_INJ N_MON
    local i
    for i in $(seq 1 "$2"); do grep -q established "$1/inj$i.err" || return 1; done
    for i in $(seq 1 "$3"); do grep -q established "$1/mon$i.err" || return 1; done
}

# wait_json FILE SECONDS: wait (bounded) until a tool printed its report into FILE.
wait_json() { wait_until "$2" "report in $1" test -s "$1"; }

# Scenario 4, after convergence: the injector churns CHURN_RATE prefixes per second for
# CHURN_SECS; the monitor keeps watching. Sets extra=(churn_cpu_ticks=...).
churn_phase() {
    local dir="$1" c0 c1
    c0="$(cpu_ticks "$TARGET_PID")"
    touch "$dir/churn-go"
    wait_json "$dir/inj1.json" $((CHURN_SECS + 120)) || log "injector did not finish churning"
    wait_exit "${mon_pids[0]}" 60   # the monitor watches CHURN_SECS + 30 s after converging
    c1="$(cpu_ticks "$TARGET_PID" 2>/dev/null || echo "$c0")"
    extra+=("churn_cpu_ticks=$((c1 - c0))")
}

# Scenario 5, after convergence: kill the injector (no NOTIFICATION: the target, a graceful
# restart helper, keeps its routes as stale), start it again with the R bit and the same table,
# wait until the target's CPU time stops moving for 2 s ("stable"), then let the monitor go.
# Sets extra=(stable_ns=... gr_cpu_ticks=...).
restart_phase() {
    local dir="$1" addr="$2" asn="$3" c0 c prev t_changed n=0
    sleep 1
    log "graceful restart: SIGKILL injector (pid ${inj_pids[0]})"
    kill -KILL "${inj_pids[0]}" 2>/dev/null || true
    stop_pid "${inj_pids[0]}"
    c0="$(cpu_ticks "$TARGET_PID")"
    "$LOAD" inject --target "$addr" --local "$(inj_addr 1)" --asn "$(inj_asn 1)" \
        --peer-asn "$asn" --ipv4 "$IPV4" --ipv6 "$IPV6" --attr-sets "$SETS" --seed "$SEED" \
        --graceful-restart --timeout "$TIMEOUT" --duration "$TIMEOUT" \
        >"$dir/inj1-restarted.json" 2>"$dir/inj1-restarted.err" &
    inj_pids=($!); STARTED_PIDS+=($!)
    wait_json "$dir/inj1-restarted.json" "$TIMEOUT" || log "restarted injector did not send its table"
    prev="$(cpu_ticks "$TARGET_PID")"; t_changed="$(date +%s%N)"
    while [ $n -lt $((TIMEOUT * 5)) ]; do
        sleep 0.2; n=$((n + 1))
        c="$(cpu_ticks "$TARGET_PID" 2>/dev/null || echo "$prev")"
        if [ "$c" != "$prev" ]; then prev="$c"; t_changed="$(date +%s%N)"; continue; fi
        [ $(( $(date +%s%N) - t_changed )) -ge 2000000000 ] && break
    done
    extra+=("stable_ns=$t_changed" "gr_cpu_ticks=$((prev - c0))")
    touch "$dir/stop"
    wait_exit "${mon_pids[0]}" 10
}

# run_once TARGET SCENARIO REP N_INJ N_MON: appends one JSON line to $RESULTS.
run_once() {
    local target="$1" scenario="$2" rep="$3" ninj="$4" nmon="$5"
    local dir="$WORK/$target-s$scenario-r$rep" addr="${TARGET_ADDR[$target]}" asn="${TARGET_ASN[$target]}"
    local i rc=0 mon_pids=() inj_pids=() slice
    local mon_watch=$((SETTLE + 2)) mon_extra=() inj_extra=() extra=()
    case "$scenario" in
        4) inj_extra=(--churn "$CHURN_RATE" --churn-secs "$CHURN_SECS" --churn-go-file "$dir/churn-go")
           mon_watch=$((CHURN_SECS + 30)) ;;
        5) mon_watch="$TIMEOUT"; mon_extra=(--stop-file "$dir/stop") ;;
    esac
    mkdir -p "$dir"; chmod 755 "$dir"
    TARGET_PID=""
    "target_start_$target" "$dir" "$addr" "$asn" "$ninj" "$nmon" || rc=$?
    if [ "$rc" = 2 ]; then
        echo "{\"target\":\"$target\",\"scenario\":$scenario,\"rep\":$rep,\"skipped\":\"not built yet\"}" >> "$RESULTS"
        return 0
    fi
    [ "$rc" = 0 ] || { log "$target failed to start"; return 1; }
    sleep 0.5
    kill -0 "$TARGET_PID" 2>/dev/null || { log "$target exited at once"; tail -n 20 "$dir"/*.out "$dir"/*.log >&2 || true; return 1; }
    log "$target (pid $TARGET_PID) scenario $scenario rep $rep: $ninj injector(s), $nmon monitor(s), $EXPECT prefixes"
    for i in $(seq 1 "$nmon"); do
        "$LOAD" monitor --target "$addr" --local "$(mon_addr "$i")" --asn "$(mon_asn "$i")" \
            --peer-asn "$asn" --expect "$EXPECT" --timeout "$TIMEOUT" --watch-secs "$mon_watch" "${mon_extra[@]}" \
            >"$dir/mon$i.json" 2>"$dir/mon$i.err" &
        mon_pids+=($!); STARTED_PIDS+=($!)
    done
    for i in $(seq 1 "$ninj"); do
        slice=0/1; [ "$ninj" -gt 1 ] && slice="$((i - 1))/$ninj"
        "$LOAD" inject --target "$addr" --local "$(inj_addr "$i")" --asn "$(inj_asn "$i")" \
            --peer-asn "$asn" --ipv4 "$IPV4" --ipv6 "$IPV6" --attr-sets "$SETS" --seed "$SEED" \
            --slice "$slice" --go-file "$dir/go" --timeout "$TIMEOUT" --duration "$TIMEOUT" \
            "${inj_extra[@]}" >"$dir/inj$i.json" 2>"$dir/inj$i.err" &
        inj_pids+=($!); STARTED_PIDS+=($!)
    done
    if ! wait_until 120 "all sessions with $target established" all_established "$dir" "$ninj" "$nmon"; then
        tail -n 5 "$dir"/*.err "$dir"/*.log "$dir"/*.out >&2 2>/dev/null || true
        stop_all; return 1
    fi
    sleep 1
    local idle_rss idle_vsz cpu0 cpu1 cpu2 hwm settled_rss settled_vsz t_go t_conv
    idle_rss="$(status_kb "$TARGET_PID" VmRSS)"; idle_vsz="$(status_kb "$TARGET_PID" VmSize)"
    cpu0="$(cpu_ticks "$TARGET_PID")"
    touch "$dir/go"
    t_go="$(date +%s)"
    # Wait (bounded) until every monitor holds every prefix (it says so on stderr) or left.
    local deadline=$(( t_go + TIMEOUT + 30 )) alive
    while :; do
        alive=0
        for i in $(seq 1 "$nmon"); do
            grep -q holding "$dir/mon$i.err" || { kill -0 "${mon_pids[$((i - 1))]}" 2>/dev/null && alive=1; }
        done
        [ "$alive" = 0 ] && break
        if [ "$(date +%s)" -ge "$deadline" ]; then log "monitors did not finish in time"; break; fi
        kill -0 "$TARGET_PID" 2>/dev/null || { log "$target died"; break; }
        sleep 0.1
    done
    cpu1="$(cpu_ticks "$TARGET_PID" 2>/dev/null || echo 0)"
    t_conv="$(date +%s)"
    case "$scenario" in
        4) churn_phase "$dir" ;;
        5) restart_phase "$dir" "$addr" "$asn" ;;
    esac
    sleep "$SETTLE"
    settled_rss="$(status_kb "$TARGET_PID" VmRSS 2>/dev/null || echo 0)"
    settled_vsz="$(status_kb "$TARGET_PID" VmSize 2>/dev/null || echo 0)"
    hwm="$(status_kb "$TARGET_PID" VmHWM 2>/dev/null || echo 0)"
    cpu2="$(cpu_ticks "$TARGET_PID" 2>/dev/null || echo 0)"
    # Monitors watch for SETTLE + 2 s after converging, then leave by themselves.
    for i in "${mon_pids[@]}"; do wait_exit "$i" 15; stop_pid "$i"; done
    for i in "${inj_pids[@]}"; do stop_pid "$i"; done
    for i in $(descendants "$TARGET_PID"); do kill -TERM "$i" 2>/dev/null || true; done
    stop_pid "$TARGET_PID"
    python3 - "$dir" "$ninj" "$nmon" "${extra[@]}" >> "$RESULTS" <<PY
import json, sys
d, ninj, nmon = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
extra = dict(a.split("=", 1) for a in sys.argv[4:])
def load(name):
    try:
        with open(f"{d}/{name}.json") as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except Exception as e:
        return {"error": f"no report: {e}"}
inj = [load(f"inj{i}") for i in range(1, ninj + 1)]
mon = [load(f"mon{i}") for i in range(1, nmon + 1)]
firsts = [r.get("first_update_ns") for r in inj]
fulls = [r.get("full_ns") for r in mon]
ok = all(isinstance(x, int) for x in firsts + fulls)
res = {
    "target": "$target", "version": "${TARGET_VERSION[$target]:-}", "scenario": $scenario,
    "rep": $rep, "ok": ok,
    "convergence_s": (max(fulls) - min(firsts)) / 1e9 if ok else None,
    "cpu_s": ($cpu1 - $cpu0) / $CLK_TCK, "cpu_settled_s": ($cpu2 - $cpu0) / $CLK_TCK,
    "peak_rss_kb": int("$hwm" or 0), "idle_rss_kb": int("$idle_rss" or 0),
    "idle_vsz_kb": int("$idle_vsz" or 0), "settled_rss_kb": int("$settled_rss" or 0),
    "settled_vsz_kb": int("$settled_vsz" or 0),
    "updates_sent": sum(r.get("updates", 0) for r in inj),
    "monitor_updates": [r.get("updates") for r in mon],
    "monitor_held": [r.get("held") for r in mon],
    "errors": [r["error"] for r in inj + mon if r.get("error")],
    "send_s": max((r.get("send_secs", 0) for r in inj), default=None),
}
if $scenario == 4:
    ch = inj[0].get("churn") or {}
    last = mon[0].get("last_update_ns")
    # lag: the monitor's last UPDATE after the injector wrote its last batch of changes
    res["churn_lag_s"] = (last - ch["last_batch_ns"]) / 1e9 if last and ch.get("last_batch_ns") else None
    res["churn_cpu_s"] = int(extra.get("churn_cpu_ticks", 0)) / $CLK_TCK
    res["churn_sent"] = sum(p["announced"] + p["withdrawn"] for p in ch.get("per_second", []))
    af = mon[0].get("after_full") or {}
    res["churn_seen"] = af.get("announced", 0) + af.get("withdrawn", 0)
    res["churn_monitor_per_second"] = [p["announced"] + p["withdrawn"] for p in mon[0].get("per_second_after_full", [])]
    res["ok"] = res["ok"] and res["churn_lag_s"] is not None
if $scenario == 5:
    r2 = load("inj1-restarted")
    af = mon[0].get("after_full") or {}
    stable = int(extra.get("stable_ns", 0))
    res["gr_withdrawn"] = af.get("withdrawn")
    res["gr_monitor_updates"] = af.get("updates")
    res["gr_cpu_s"] = int(extra.get("gr_cpu_ticks", 0)) / $CLK_TCK
    res["gr_eor_to_stable_s"] = (stable - r2["sent_ns"]) / 1e9 if stable and r2.get("sent_ns") else None
    res["gr_first_update_to_stable_s"] = (stable - r2["first_update_ns"]) / 1e9 if stable and r2.get("first_update_ns") else None
    res["errors"] += [r2["error"]] if r2.get("error") else []
    res["ok"] = res["ok"] and res["gr_eor_to_stable_s"] is not None
print(json.dumps(res))
PY
    log "$target scenario $scenario rep $rep: $(tail -n 1 "$RESULTS")"
}

# summarize RESULTS.jsonl SIZE: one markdown table per scenario on stdout.
summarize() {
python3 - "$1" "$2" <<'PY'
import json, statistics, sys
path, size = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(path) if l.strip()]
table = {"small": (10_000, 2_000, 2_400), "bar": (1_000_000, 0, 200_000), "full": (1_000_000, 200_000, 360_000)}
v4, v6, sets = table.get(size, (0, 0, 0))
names = {1: "one injector, one monitor", 2: "fan-out: one injector, 10 monitors",
         3: "fan-in: 10 injectors (disjoint tenths), one monitor",
         4: "churn after convergence, one injector, one monitor",
         5: "graceful restart of the injector, one monitor"}
def span(xs, unit=" s"):
    return f"{statistics.median(xs):.2f}{unit} ({min(xs):.2f}–{max(xs):.2f})"
mb = lambda kb: f"{kb / 1024:,.1f} MB"
for s in sorted({r["scenario"] for r in rows}):
    print(f"\n### Scenario {s}: {names.get(s, s)} — {v4:,} IPv4 + {v6:,} IPv6 prefixes, {sets:,} attribute sets ({size})\n")
    print("| target | convergence median (min–max) | CPU s (median) | peak RSS (VmHWM) | idle RSS / VSZ | settled RSS | UPDATEs sent → received by monitor | ok reps |"
          + {4: " churn lag (min–max) | CPU s during churn | changes sent → seen |",
             5: " End-of-RIB → stable (min–max) | withdrawals at monitor | UPDATEs at monitor after restart | CPU s restart → stable |"}.get(s, ""))
    print("| --- " * (8 + {4: 3, 5: 4}.get(s, 0)) + "|")
    order = []
    for r in rows:
        if r["scenario"] == s and r["target"] not in order:
            order.append(r["target"])
    for t in order:
        rs = [r for r in rows if r["scenario"] == s and r["target"] == t]
        if any("skipped" in r for r in rs):
            print(f"| {t} | skipped: not built yet | | | | | | |")
            continue
        good = [r for r in rs if r.get("ok")]
        label = rs[0].get("version") or t
        if not good:
            errs = sorted({e for r in rs for e in r.get("errors", [])})
            print(f"| {label} | failed ({'; '.join(errs)[:120]}) | | | | | | 0/{len(rs)} |")
            continue
        med = lambda k: statistics.median(r[k] for r in good)
        conv = [r["convergence_s"] for r in good]
        recv = statistics.median(statistics.median(r["monitor_updates"]) for r in good)
        line = (f"| {label} | {span(conv)} "
              f"| {med('cpu_s'):.2f} | {mb(med('peak_rss_kb'))} "
              f"| {mb(med('idle_rss_kb'))} / {mb(med('idle_vsz_kb'))} | {mb(med('settled_rss_kb'))} "
              f"| {int(med('updates_sent')):,} → {int(recv):,} | {len(good)}/{len(rs)} |")
        if s == 4:
            line += (f" {span([r['churn_lag_s'] for r in good])} | {med('churn_cpu_s'):.2f} "
                     f"| {int(med('churn_sent')):,} → {int(med('churn_seen')):,} |")
        if s == 5:
            line += (f" {span([r['gr_eor_to_stable_s'] for r in good])} "
                     f"| {', '.join(str(r['gr_withdrawn']) for r in good)} "
                     f"| {', '.join(str(r['gr_monitor_updates']) for r in good)} | {med('gr_cpu_s'):.2f} |")
        print(line)
PY
}

# ------------------------------------------------------------------------ main
if [ -n "$SUMMARIZE" ]; then summarize "$SUMMARIZE" "$SIZE"; exit 0; fi
log "building the load generator (release)"
(cd "$REPO" && cargo build --release --example bgpload --example speaker >&2)
log "work dir $WORK; size $SIZE ($IPV4 IPv4 + $IPV6 IPv6 prefixes, $SETS attribute sets); reps $REPS"

IFS=, read -r -a TARGET_LIST <<<"$TARGETS"
IFS=, read -r -a SCENARIO_LIST <<<"$SCENARIOS"
for s in "${SCENARIO_LIST[@]}"; do
    case "$s" in
        1) NINJ=1;  NMON=1 ;;
        2) NINJ=1;  NMON=10 ;;
        3) NINJ=10; NMON=1 ;;
        4) NINJ=1;  NMON=1 ;;
        5) NINJ=1;  NMON=1 ;;
        *) log "unknown scenario $s"; continue ;;
    esac
    GR=0; [ "$s" = 5 ] && GR=1
    for t in "${TARGET_LIST[@]}"; do
        declare -F "target_start_$t" >/dev/null || { log "unknown target $t"; continue; }
        for r in $(seq 1 "$REPS"); do
            run_once "$t" "$s" "$r" "$NINJ" "$NMON" || log "$t scenario $s rep $r failed"
            [ -n "${TARGET_VERSION[$t]:-}" ] || break   # skipped target: one line is enough
        done
    done
done

summarize "$RESULTS" "$SIZE"
# --check (CI's smoke run): fail unless every run of every target succeeded.
if [ "$CHECK" = 1 ]; then
    if grep -q '"ok": false' "$RESULTS" || ! grep -q '"ok": true' "$RESULTS"; then
        log "check failed: a run did not succeed"
        exit 1
    fi
fi
