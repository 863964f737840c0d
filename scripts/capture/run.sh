#!/usr/bin/env bash
# Capture real BGP messages exchanged by FRR, BIRD and GoBGP peering on loopback.
#
# Starts tcpdump on lo, then the three daemons (full eBGP mesh, 4-octet ASNs), waits for the sessions,
# triggers withdrawals, route refreshes, a graceful restart and administrative shutdowns, stops exactly
# what it started (by PID) and runs extract.py to write bgp-testkit/captures/.
#
# Usage: sudo scripts/capture/run.sh            (must be root: port 179, tcpdump)
#   KEEP_PCAP=/path/file.pcap  keep a copy of the raw capture (never commit it)
#   OUT_DIR=dir                output directory (default <repo>/bgp-testkit/captures)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUT_DIR="${OUT_DIR:-$REPO/bgp-testkit/captures}"

FRR_IP=127.0.0.11;   FRR_AS=4200000001
BIRD_IP=127.0.0.12;  BIRD_AS=4200000002
GOBGP_IP=127.0.0.13; GOBGP_AS=4200000003
GOBGP_API_PORT=50051

BGPD=/usr/lib/frr/bgpd
for b in "$BGPD" vtysh bird birdc gobgpd gobgp tcpdump python3; do
    command -v "$b" >/dev/null || { echo "missing: $b" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }

WORK="$(mktemp -d /tmp/bgp-capture.XXXXXX)"
chmod 755 "$WORK"
PCAP="$WORK/bgp.pcap"

TCPDUMP_PID=""; FRR_PID=""; BIRD_PID=""; GOBGP_PID=""

log() { printf '%s [capture] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# Stop one process we started: TERM, wait (bounded), then KILL. Only by PID.
stop_pid() {
    local pid="$1" name="$2" sig="${3:-TERM}" i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    log "stopping $name (pid $pid, SIG$sig)"
    kill "-$sig" "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not exit, SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    set +e
    stop_pid "$GOBGP_PID" gobgpd
    stop_pid "$BIRD_PID" bird
    stop_pid "$FRR_PID" bgpd
    stop_pid "$TCPDUMP_PID" tcpdump INT
    if [ $rc -ne 0 ]; then
        log "failed (rc=$rc); daemon logs:"
        for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "== $f" >&2; tail -n 30 "$f" >&2; }; done
    fi
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_until SECONDS DESCRIPTION COMMAND...: poll every 0.5 s, fail after SECONDS.
wait_until() {
    local secs="$1" what="$2"; shift 2
    local deadline=$(( $(date +%s) + secs ))
    while ! "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            log "timeout (${secs}s) waiting for: $what"
            return 1
        fi
        sleep 0.5
    done
    log "ok: $what"
}

vty()   { vtysh --vty_socket "$WORK/frr" "$@"; }
bcl()   { birdc -s "$WORK/bird.ctl" "$@"; }
gcl()   { gobgp -u "$GOBGP_IP" -p "$GOBGP_API_PORT" "$@"; }

# ---------------------------------------------------------------- configs
mkdir -p "$WORK/frr"
chmod 777 "$WORK/frr"

write_frr_conf() {
local peer
cat > "$WORK/frr/bgpd.conf" <<CONF
frr defaults traditional
hostname frr-capture
domainname capture.example
log file $WORK/frr.log informational
!
bgp community-list standard CL permit 65000:1
!
route-map ORIG-A permit 10
 set origin igp
 set metric 10
 set community 65000:11 no-llgr
 set large-community $FRR_AS:1:1
 set extcommunity rt 65000:100 $FRR_AS:200
 set as-path prepend $FRR_AS $FRR_AS
!
route-map ORIG-B permit 10
 set origin igp
 set metric 20
 set community 65000:12 65000:13
 set large-community $FRR_AS:2:2 $FRR_AS:3:3
 set extcommunity rt 65000:101
!
route-map ORIG-C permit 10
 set origin incomplete
 set metric 30
 set local-preference 200
 set large-community $FRR_AS:4:4
!
! FRR never advertises a route carrying no-export over eBGP, so no-export is added on the way out
ip prefix-list NOEXP4 seq 5 permit 198.51.100.64/26
route-map OUT4 permit 5
 match ip address prefix-list NOEXP4
 set ip next-hop 198.18.0.1
 set community 65000:14 no-export additive
route-map OUT4 permit 10
 set ip next-hop 198.18.0.1
!
route-map OUT6 permit 10
 set ipv6 next-hop global 2001:db8:ffff::1
!
router bgp $FRR_AS
 bgp router-id 10.0.0.11
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 no bgp network import-check
 bgp graceful-restart
 bgp graceful-restart restart-time 120
 bgp graceful-restart preserve-fw-state
 bgp long-lived-graceful-restart stale-time 300
CONF
for peer in "$BIRD_IP $BIRD_AS" "$GOBGP_IP $GOBGP_AS"; do
set -- $peer
cat >> "$WORK/frr/bgpd.conf" <<CONF
 neighbor $1 remote-as $2
 neighbor $1 update-source $FRR_IP
 neighbor $1 ebgp-multihop 2
 neighbor $1 advertisement-interval 0
 neighbor $1 timers connect 2
 neighbor $1 local-role peer
CONF
done
{
echo " address-family ipv4 unicast"
echo "  network 0.0.0.0/0 route-map ORIG-C"
echo "  network 198.51.100.0/26 route-map ORIG-A"
echo "  network 198.51.100.64/26"
for i in $(seq 1 10); do echo "  network 100.64.$i.0/24 route-map ORIG-B"; done
for i in $(seq 11 18); do echo "  network 100.64.$i.0/24 route-map ORIG-C"; done
echo "  network 100.64.128.0/17 route-map ORIG-C"
echo "  network 100.64.64.0/23"
echo "  network 100.64.200.1/32 route-map ORIG-B"
echo "  network 100.64.200.2/31"
echo "  aggregate-address 100.64.0.0/19"
for p in $BIRD_IP $GOBGP_IP; do
  echo "  neighbor $p activate"
  echo "  neighbor $p addpath-tx-all-paths"
  echo "  neighbor $p route-map OUT4 out"
done
echo " exit-address-family"
echo " address-family ipv6 unicast"
echo "  network ::/0 route-map ORIG-C"
echo "  network 2001:db8:11::/48 route-map ORIG-A"
for i in $(seq 1 8); do echo "  network 2001:db8:11:$i::/64 route-map ORIG-B"; done
for i in $(seq 9 12); do echo "  network 2001:db8:11:$i::/64 route-map ORIG-C"; done
echo "  network 2001:db8:11:ff::1/128"
echo "  network 2001:db8:11:fe::/127 route-map ORIG-B"
echo "  network 2001:db8:1100::/40"
echo "  aggregate-address 2001:db8:11::/60"
for p in $BIRD_IP $GOBGP_IP; do
  echo "  neighbor $p activate"
  echo "  neighbor $p addpath-tx-all-paths"
  echo "  neighbor $p route-map OUT6 out"
done
echo " exit-address-family"
echo "!"
} >> "$WORK/frr/bgpd.conf"
}

write_bird_conf() {
# $1: 1 = include the route that is later withdrawn
local with_extra="$1" i
cat > "$WORK/bird.conf" <<CONF
log "$WORK/bird.log" all;
router id 10.0.0.12;
protocol device { }
ipv4 table igp4;
ipv6 table igp6;
protocol static st4 {
  ipv4;
  route 203.0.113.0/26 blackhole;
  route 203.0.113.64/26 blackhole;
  route 203.0.113.128/25 blackhole;
  route 100.65.0.0/16 blackhole;
  route 100.65.255.255/32 blackhole;
CONF
for i in $(seq 1 20); do echo "  route 100.65.$i.0/24 blackhole;" >> "$WORK/bird.conf"; done
[ "$with_extra" = 1 ] && echo "  route 100.65.99.0/24 blackhole;" >> "$WORK/bird.conf"
echo "  route 100.65.250.0/24 blackhole;" >> "$WORK/bird.conf"
cat >> "$WORK/bird.conf" <<CONF
}
protocol static st6 {
  ipv6;
  route 2001:db8:12::/48 blackhole;
  route 2001:db8:12:ffff::/120 blackhole;
CONF
for i in $(seq 1 12); do echo "  route 2001:db8:12:$i::/64 blackhole;" >> "$WORK/bird.conf"; done
[ "$with_extra" = 1 ] && echo "  route 2001:db8:12:99::/64 blackhole;" >> "$WORK/bird.conf"
cat >> "$WORK/bird.conf" <<CONF
}
filter bgp_out {
  if source = RTS_STATIC then {
    bgp_origin = ORIGIN_IGP;
    bgp_med = 20;
    bgp_community.add((65000,12));
    bgp_large_community.add(($BIRD_AS,1,1));
    bgp_ext_community.add((rt,65000,100));
    if net = 203.0.113.0/26 || net = 2001:db8:12::/48 then {
      bgp_community.add((65535,65281));
      bgp_path.prepend($BIRD_AS);
      bgp_path.prepend($BIRD_AS);
    }
    if net = 100.65.250.0/24 then {
      # 400 large communities = 4800 bytes: only fits in an extended (RFC 8654) message.
      # no-export keeps FRR from trying to pass it on to GoBGP (no extended messages there).
      bgp_community.add((65535,65281));
$(for i in $(seq 1 400); do echo "      bgp_large_community.add(($BIRD_AS,9,$i));"; done)
    }
    if net ~ [ 100.65.0.0/16{24,24} ] then {
      bgp_med = 5;
      bgp_community.add((65000,1));
      bgp_community.add((65000,2));
      bgp_large_community.add(($BIRD_AS,2,2));
      bgp_ext_community.add((rt,$BIRD_AS,200));
    }
  }
  accept;
}
template bgp mesh {
  local $BIRD_IP as $BIRD_AS;
  multihop 2;
  strict bind yes;
  connect retry time 2;
  graceful restart on;
  long lived graceful restart on;
  enable extended messages on;
  local role peer;
  ipv4 {
    import all;
    export filter bgp_out;
    igp table igp4;
    add paths on;
    next hop address 198.18.0.2;
  };
  ipv6 {
    import all;
    export filter bgp_out;
    igp table igp6;
    add paths on;
    next hop address 2001:db8:ffff::2;
  };
}
protocol bgp frr from mesh { neighbor $FRR_IP as $FRR_AS; }
protocol bgp gobgp from mesh { neighbor $GOBGP_IP as $GOBGP_AS; }
CONF
}

write_gobgp_conf() {
local ip as
cat > "$WORK/gobgpd.toml" <<CONF
[global.config]
  as = $GOBGP_AS
  router-id = "10.0.0.13"
  port = 179
  local-address-list = ["$GOBGP_IP"]
  [global.apply-policy.config]
    export-policy-list = ["nexthop"]
    default-export-policy = "accept-route"
    default-import-policy = "accept-route"

[[defined-sets.prefix-sets]]
  prefix-set-name = "all-v4"
  [[defined-sets.prefix-sets.prefix-list]]
    ip-prefix = "0.0.0.0/0"
    masklength-range = "0..32"
[[defined-sets.prefix-sets]]
  prefix-set-name = "all-v6"
  [[defined-sets.prefix-sets.prefix-list]]
    ip-prefix = "::/0"
    masklength-range = "0..128"

[[policy-definitions]]
  name = "nexthop"
  [[policy-definitions.statements]]
    name = "v4"
    [policy-definitions.statements.conditions.match-prefix-set]
      prefix-set = "all-v4"
    [policy-definitions.statements.actions]
      route-disposition = "accept-route"
    [policy-definitions.statements.actions.bgp-actions]
      set-next-hop = "198.18.0.3"
  [[policy-definitions.statements]]
    name = "v6"
    [policy-definitions.statements.conditions.match-prefix-set]
      prefix-set = "all-v6"
    [policy-definitions.statements.actions]
      route-disposition = "accept-route"
    [policy-definitions.statements.actions.bgp-actions]
      set-next-hop = "2001:db8:ffff::3"
CONF
for peer in "$FRR_IP $FRR_AS" "$BIRD_IP $BIRD_AS"; do
set -- $peer
cat >> "$WORK/gobgpd.toml" <<CONF

[[neighbors]]
  [neighbors.config]
    neighbor-address = "$1"
    peer-as = $2
  [neighbors.transport.config]
    local-address = "$GOBGP_IP"
  [neighbors.timers.config]
    connect-retry = 2
  [neighbors.ebgp-multihop.config]
    enabled = true
    multihop-ttl = 2
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 120
    long-lived-enabled = true
CONF
for fam in ipv4-unicast ipv6-unicast; do
cat >> "$WORK/gobgpd.toml" <<CONF
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "$fam"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
    [neighbors.afi-safis.long-lived-graceful-restart.config]
      enabled = true
      restart-time = 300
    [neighbors.afi-safis.add-paths.config]
      receive = true
      send-max = 4
CONF
done
done
}

write_frr_conf
write_bird_conf 1
write_gobgp_conf

# ---------------------------------------------------------------- start
start_frr() {
    "$BGPD" -f "$WORK/frr/bgpd.conf" -i "$WORK/frr/bgpd.pid" -Z -S -l "$FRR_IP" -p 179 \
        --vty_socket "$WORK/frr" -P 0 "$@" >>"$WORK/frr.stdout.log" 2>&1 &
    FRR_PID=$!
    log "bgpd pid $FRR_PID $*"
}
start_bird() {
    bird -f -c "$WORK/bird.conf" -s "$WORK/bird.ctl" -P "$WORK/bird.pid" "$@" \
        >>"$WORK/bird.stdout.log" 2>&1 &
    BIRD_PID=$!
    log "bird pid $BIRD_PID $*"
}
start_gobgp() {
    gobgpd -f "$WORK/gobgpd.toml" -t toml --api-hosts "$GOBGP_IP:$GOBGP_API_PORT" --pprof-disable "$@" \
        >>"$WORK/gobgpd.log" 2>&1 &
    GOBGP_PID=$!
    log "gobgpd pid $GOBGP_PID $*"
}

# GoBGP originated routes (API, after start). Two paths for one prefix (identifier 1 and 2) so
# ADD-PATH sends both.
gobgp_routes() {
    local i
    gcl global rib -a ipv4 add 198.51.100.128/26 nexthop 198.18.0.3 origin igp med 40 \
        community 65000:31,no-export large-community $GOBGP_AS:1:1 rt 65000:100 \
        aspath "$GOBGP_AS $GOBGP_AS"
    gcl global rib -a ipv4 add 198.51.100.192/26 nexthop 198.18.0.3 med 41 identifier 1
    gcl global rib -a ipv4 add 198.51.100.192/26 nexthop 198.18.0.3 med 42 identifier 2 \
        community 65000:32
    for i in $(seq 1 12); do
        gcl global rib -a ipv4 add 100.66.$i.0/24 nexthop 198.18.0.3 origin igp med 50 \
            community 65000:33,65000:34 large-community $GOBGP_AS:2:2,$GOBGP_AS:3:3 rt $GOBGP_AS:300
    done
    for i in $(seq 13 20); do
        gcl global rib -a ipv4 add 100.66.$i.0/24 nexthop 198.18.0.3 origin incomplete
    done
    gcl global rib -a ipv4 add 100.66.128.0/18 nexthop 198.18.0.3 origin egp med 0
    gcl global rib -a ipv4 add 100.66.254.7/32 nexthop 198.18.0.3
    gcl global rib -a ipv4 add 100.66.250.0/24 nexthop 198.18.0.3 aspath "64512 {64513,64514}" \
        aggregator $GOBGP_AS:10.0.0.13 community planned-shut,blackhole
    gcl global rib -a ipv4 add 100.66.251.0/24 nexthop 198.18.0.3 aigp metric 100 \
        community no-advertise
    gcl global rib -a ipv6 add 2001:db8:13::/48 nexthop 2001:db8:ffff::3 origin igp med 40 \
        community 65000:31,no-export large-community $GOBGP_AS:1:1 rt 65000:100
    for i in $(seq 1 10); do
        gcl global rib -a ipv6 add 2001:db8:13:$i::/64 nexthop 2001:db8:ffff::3 med 50 \
            community 65000:33 large-community $GOBGP_AS:2:2 rt $GOBGP_AS:300
    done
    gcl global rib -a ipv6 add 2001:db8:13:ffff::1/128 nexthop 2001:db8:ffff::3
}

# ---------------------------------------------------------------- state checks
frr_established() {  # all FRR neighbours Established
    vty -c 'show bgp neighbors json' | python3 -c '
import json,sys
d=json.load(sys.stdin)
sys.exit(0 if len(d)==2 and all(v.get("bgpState")=="Established" for v in d.values()) else 1)'
}
bird_established() {
    [ "$(bcl show protocols 2>/dev/null | grep -c Established)" = 2 ]
}
gobgp_established() {
    [ "$(gcl neighbor 2>/dev/null | grep -c Establ)" = 2 ]
}
all_established() { frr_established && bird_established && gobgp_established; }
# FRR has received IPv4 and IPv6 prefixes from both peers.
frr_has_routes() {
    vty -c 'show bgp neighbors json' | python3 -c '
import json,sys
d=json.load(sys.stdin)
ok=len(d)==2
for v in d.values():
    af=v.get("addressFamilyInfo",{})
    for fam in ("ipv4Unicast","ipv6Unicast"):
        ok = ok and af.get(fam,{}).get("acceptedPrefixCounter",0)>0
sys.exit(0 if ok else 1)'
}
gobgp_has_routes() {  # GoBGP sees BIRD and FRR routes (v4 and v6)
    local r4 r6
    r4="$(gcl global rib -a ipv4 2>/dev/null)"; r6="$(gcl global rib -a ipv6 2>/dev/null)"
    grep -q 100.64.1.0/24 <<<"$r4" && grep -q 100.65.1.0/24 <<<"$r4" \
        && grep -q 2001:db8:11:1::/64 <<<"$r6" && grep -q 2001:db8:12:1::/64 <<<"$r6"
}
bird_has_routes() {
    bcl show route 2>/dev/null | grep -q 100.64.1.0/24 && bcl show route 2>/dev/null | grep -q 100.66.1.0/24
}
all_have_routes() { frr_has_routes && gobgp_has_routes && bird_has_routes; }

# ---------------------------------------------------------------- run
log "work dir $WORK"
tcpdump -i lo -U -s 0 -w "$PCAP" 'tcp port 179' >"$WORK/tcpdump.log" 2>&1 &
TCPDUMP_PID=$!
wait_until 10 "tcpdump listening" grep -q 'listening on' "$WORK/tcpdump.log"

start_frr
start_bird
start_gobgp
wait_until 15 "gobgpd API up" gcl global
gobgp_routes
wait_until 60 "all sessions Established" all_established
wait_until 60 "routes exchanged" all_have_routes
sleep 3

log "phase: withdrawals"
gcl global rib -a ipv4 del 100.66.20.0/24
gcl global rib -a ipv4 del 198.51.100.192/26 identifier 2
gcl global rib -a ipv6 del 2001:db8:13:10::/64
vty -c 'configure terminal' -c "router bgp $FRR_AS" -c 'address-family ipv4 unicast' \
    -c 'no network 100.64.18.0/24 route-map ORIG-C' -c 'exit-address-family' \
    -c 'address-family ipv6 unicast' -c 'no network 2001:db8:11:12::/64 route-map ORIG-C'
write_bird_conf 0
bcl configure | tee -a "$WORK/birdc.log" | grep -q 'Reconfigured'
sleep 3

log "phase: route refresh"
vty -c "clear bgp ipv4 unicast $BIRD_IP soft in"
vty -c "clear bgp ipv6 unicast $GOBGP_IP soft in"
bcl reload in frr | tee -a "$WORK/birdc.log"
bcl reload in gobgp | tee -a "$WORK/birdc.log"
gcl neighbor "$FRR_IP" softresetin
gcl neighbor "$BIRD_IP" softresetin -a ipv6
sleep 3

log "phase: graceful restart of BIRD (SIGKILL, then bird -R)"
kill -KILL "$BIRD_PID"; wait "$BIRD_PID" 2>/dev/null || true; BIRD_PID=""
rm -f "$WORK/bird.ctl"
sleep 2
start_bird -R
wait_until 60 "all sessions Established after BIRD restart" all_established
wait_until 60 "routes exchanged after BIRD restart" all_have_routes
sleep 3

log "phase: graceful restart of GoBGP (SIGKILL, then gobgpd -r)"
kill -KILL "$GOBGP_PID"; wait "$GOBGP_PID" 2>/dev/null || true; GOBGP_PID=""
sleep 2
start_gobgp -r
wait_until 15 "gobgpd API up" gcl global
gobgp_routes
wait_until 60 "all sessions Established after GoBGP restart" all_established
wait_until 60 "routes exchanged after GoBGP restart" all_have_routes
sleep 3

log "phase: administrative shutdowns with shutdown communication"
vty -c 'configure terminal' -c "router bgp $FRR_AS" \
    -c "neighbor $GOBGP_IP shutdown message capture: FRR planned maintenance"
bcl disable frr '"capture: BIRD planned maintenance"' | tee -a "$WORK/birdc.log"
sleep 2
    # "disable" ignores --reason in GoBGP 3.10; the deprecated "shutdown" sends it
    gcl neighbor "$BIRD_IP" shutdown --reason "capture: GoBGP planned maintenance"
sleep 3
vty -c 'configure terminal' -c "router bgp $FRR_AS" -c "no neighbor $GOBGP_IP shutdown"
bcl enable frr | tee -a "$WORK/birdc.log"
gcl neighbor "$BIRD_IP" enable
wait_until 60 "all sessions Established again" all_established
sleep 3

log "phase: stop daemons with SIGTERM, one by one (whatever each sends when it shuts down)"
stop_pid "$BIRD_PID" bird;    BIRD_PID=""
sleep 1
stop_pid "$GOBGP_PID" gobgpd; GOBGP_PID=""
sleep 1
stop_pid "$FRR_PID" bgpd;     FRR_PID=""
sleep 1
stop_pid "$TCPDUMP_PID" tcpdump INT; TCPDUMP_PID=""
cat "$WORK/tcpdump.log" >&2

if [ -n "${KEEP_PCAP:-}" ]; then cp "$PCAP" "$KEEP_PCAP"; log "pcap kept at $KEEP_PCAP"; fi
mkdir -p "$OUT_DIR"
python3 "$HERE/extract.py" --pcap "$PCAP" --out "$OUT_DIR" \
    --header "$HERE/manifest-header.md" --name "$FRR_IP=frr" --name "$BIRD_IP=bird" --name "$GOBGP_IP=gobgp"
log "done: $OUT_DIR"
