#!/usr/bin/env bash
# Bounded soak test of wgd (issue #6; not part of `cargo test`):
#
#   sudo scripts/soak.sh [--minutes 10] [--out docs/soak.md] [--raw DIR] [--no-build]
#
# Two `wgd -f` daemons in two network namespaces over a veth pair, configured with `wg setconf`
# (A: responder, 198.18.0.1; B: initiator, 198.18.0.2), MTU 1420. For the whole run:
# - steady traffic B -> A through the tunnel: iperf3 TCP at 50 Mbit/s in 30 s runs, back to back;
# - a ping B -> A through the tunnel every 0.2 s (timestamped, lost replies reported);
# - `wg show latest-handshakes` and `endpoints` of both ends every 5 s (natural rekeys:
#   REKEY_AFTER_TIME is 120 s, so about 4 in 10 minutes);
# - every 60 s each daemon's VmRSS, open fds and threads (from /proc).
# Events: B's underlay address changes (roaming) at 30% and 60% of the run; A is stopped with
# SIGTERM and restarted (and reconfigured) at 50%.
# At the end, PASS or FAIL with reasons (see docs/soak.md for the criteria), and the figures are
# written to --out (the whole file is generated).
# Only PIDs this script started are signalled; its namespaces are deleted on exit.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
SELF="scripts/soak.sh"
CMDLINE="sudo $SELF $*"

MINUTES=10
OUT="docs/soak.md"
RAW=""
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) MINUTES=${2:?--minutes needs a number}; shift ;;
        --out) OUT=${2:?--out needs a path}; shift ;;
        --raw) RAW=${2:?--raw needs a directory}; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
case "$MINUTES" in ''|*[!0-9]*|0|1) echo "--minutes must be an integer >= 2" >&2; exit 2 ;; esac
TOTAL=$((MINUTES * 60))
T_ROAM1=$((TOTAL * 3 / 10))
T_RESTART=$((TOTAL / 2))
T_ROAM2=$((TOTAL * 6 / 10))

log() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces and TUN devices): sudo $SELF"
for tool in ip wg iperf3 ping python3 timeout; do
    command -v "$tool" >/dev/null || die "missing $tool (apt-get install --no-install-recommends iproute2 wireguard-tools iperf3 iputils-ping python3)"
done

PIDS=()
NS_A="wgdsoak-a-$$"
NS_B="wgdsoak-b-$$"
IF_A="ws$$a"
IF_B="ws$$b"
VA="vsa$$"
VB="vsb$$"
WORK=$(mktemp -d /tmp/wgd-soak.XXXXXX)
chmod 700 "$WORK"
[ -n "$RAW" ] || RAW="$WORK/raw"
mkdir -p "$RAW"

stop_pid() { # PID [grace tenths]: SIGTERM, wait, then SIGKILL; only PIDs we started
    local pid=$1 n=${2:-30}
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq "$n"); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}
cleanup() {
    local pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    timeout 10 ip netns del "$NS_A" 2>/dev/null
    timeout 10 ip netns del "$NS_B" 2>/dev/null
    rm -f "/var/run/wireguard/$IF_A.sock" "/var/run/wireguard/$IF_B.sock"
    rm -rf "$WORK/conf"
    [ "$RAW" = "$WORK/raw" ] && [ "${KEEP_WORK:-0}" != 1 ] && rm -rf "$WORK"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

if [ "$BUILD" = 1 ]; then
    CARGO=$(command -v cargo || echo "$HOME/.cargo/bin/cargo")
    [ -x "$CARGO" ] || die "cargo not found (or pass --no-build)"
    log "building wgd (cargo build --release)"
    timeout 3600 "$CARGO" build --release --quiet || die "cargo build --release failed"
fi
WGD="$ROOT/target/release/wgd"
[ -x "$WGD" ] || die "$WGD not found"

META="$RAW/meta.tsv"
meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }
: >"$META"
meta command "$CMDLINE"
meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta minutes "$MINUTES"
meta nproc "$(nproc)"
meta cpu_model "$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
meta kernel "$(uname -srm)"
rev=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || rev="$rev+dirty"
meta version_wgd "wgd $rev"
meta version_iperf3 "$(iperf3 --version 2>&1 | head -n1)"
meta load_before "$(cut -d' ' -f1-3 /proc/loadavg)"
meta t_roam1 "$T_ROAM1"
meta t_restart "$T_RESTART"
meta t_roam2 "$T_ROAM2"

# --- namespaces and tunnel ---------------------------------------------------------------------
ip_t() { timeout 30 ip "$@"; }
log "namespaces $NS_A (198.18.0.1), $NS_B (198.18.0.2) over veth"
ip_t netns add "$NS_A" && ip_t netns add "$NS_B" || die "ip netns add failed"
# Roaming deletes B's primary address: keep the secondary (the new one) instead of flushing it.
timeout 10 ip netns exec "$NS_B" sysctl -qw net.ipv4.conf.all.promote_secondaries=1 \
    net.ipv4.conf.default.promote_secondaries=1 || die "sysctl promote_secondaries failed"
ip_t link add "$VA" netns "$NS_A" type veth peer name "$VB" netns "$NS_B" || die "veth failed"
ip_t -n "$NS_A" addr add 198.18.0.1/24 dev "$VA" && ip_t -n "$NS_B" addr add 198.18.0.2/24 dev "$VB" \
    || die "address failed"
for ns in "$NS_A" "$NS_B"; do ip_t -n "$ns" link set lo up || die "lo up failed"; done
ip_t -n "$NS_A" link set "$VA" up && ip_t -n "$NS_B" link set "$VB" up || die "link up failed"
timeout 10 ip netns exec "$NS_B" ping -c 1 -W 5 198.18.0.1 >/dev/null || die "veth does not answer"

mkdir -p "$WORK/conf" && chmod 700 "$WORK/conf"
KA=$(wg genkey) && KB=$(wg genkey) && PA=$(wg pubkey <<<"$KA") && PB=$(wg pubkey <<<"$KB") || die "wg genkey failed"
umask 077
printf '[Interface]\nPrivateKey = %s\nListenPort = 51820\n\n[Peer]\nPublicKey = %s\nAllowedIPs = 198.19.0.2/32\n' \
    "$KA" "$PB" >"$WORK/conf/a.conf"
printf '[Interface]\nPrivateKey = %s\nListenPort = 51821\n\n[Peer]\nPublicKey = %s\nAllowedIPs = 198.19.0.1/32\nEndpoint = 198.18.0.1:51820\n' \
    "$KB" "$PA" >"$WORK/conf/b.conf"
umask 022

PID_A=""
PID_B=""
A_GEN=0
start_wgd() { # NS IFACE CONF ADDR LOGNAME -> PID in STARTED
    local ns=$1 ifc=$2
    env -u RUST_LOG ip netns exec "$ns" "$WGD" -v -f "$ifc" >>"$RAW/$5.log" 2>&1 </dev/null &
    STARTED=$!
    PIDS+=("$STARTED")
    for _ in $(seq 100); do
        [ -S "/var/run/wireguard/$ifc.sock" ] && break
        kill -0 "$STARTED" 2>/dev/null || return 1
        sleep 0.1
    done
    [ -S "/var/run/wireguard/$ifc.sock" ] || return 1
    timeout 10 ip netns exec "$ns" wg setconf "$ifc" "$3" || return 1
    ip_t -n "$ns" addr add "$4" dev "$ifc" || return 1
    ip_t -n "$ns" link set "$ifc" mtu 1420 up || return 1
}
start_wgd "$NS_A" "$IF_A" "$WORK/conf/a.conf" 198.19.0.1/24 wgd-a || die "wgd A did not start ($(tail -n 3 "$RAW/wgd-a.log"))"
PID_A=$STARTED
start_wgd "$NS_B" "$IF_B" "$WORK/conf/b.conf" 198.19.0.2/24 wgd-b || die "wgd B did not start ($(tail -n 3 "$RAW/wgd-b.log"))"
PID_B=$STARTED
timeout 15 ip netns exec "$NS_B" ping -c 1 -w 10 198.19.0.1 >/dev/null || die "no ping through the tunnel"
log "tunnel up (A PID $PID_A, B PID $PID_B)"

# --- traffic -----------------------------------------------------------------------------------
T0=$(date +%s)
meta t0 "$T0"
# Ping every 0.2 s, timestamped (-D), unanswered ones reported (-O). Bounded by -w.
timeout $((TOTAL + 30)) ip netns exec "$NS_B" ping -n -D -O -i 0.2 -W 1 -w $((TOTAL + 5)) 198.19.0.1 \
    >"$RAW/ping.txt" 2>&1 </dev/null &
PING_PID=$!
PIDS+=("$PING_PID")

# iperf3 at 50 Mbit/s in 30 s runs, back to back; a fresh server (our child) for each run, bound
# to the wildcard address so that it outlives A's tunnel interface being recreated.
traffic_loop() {
    local n=0 spid cpid rc
    trap '[ -n "${cpid:-}" ] && kill "$cpid" 2>/dev/null; [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null; exit 0' TERM
    while [ $(( $(date +%s) - T0 )) -lt $((TOTAL - 5)) ]; do
        n=$((n + 1))
        ip netns exec "$NS_A" iperf3 -s -1 -p 5299 >/dev/null 2>&1 </dev/null &
        spid=$!
        sleep 0.3
        timeout 60 ip netns exec "$NS_B" iperf3 -c 198.19.0.1 -p 5299 -b 50M -t 30 --connect-timeout 3000 \
            --json >"$RAW/iperf-$n.json" 2>/dev/null </dev/null &
        cpid=$!
        wait "$cpid"
        rc=$?
        printf '%s\t%s\t%s\n' "$n" "$(date +%s)" "$rc" >>"$RAW/iperf.tsv"
        cpid=""
        kill "$spid" 2>/dev/null
        wait "$spid" 2>/dev/null
        spid=""
        sleep 0.5
    done
}
printf 'n\tt\trc\n' >"$RAW/iperf.tsv"
traffic_loop &
TRAFFIC_PID=$!
PIDS+=("$TRAFFIC_PID")

# --- monitoring and events ---------------------------------------------------------------------
printf 't\tside\tpid\trss_kb\tfds\tthreads\n' >"$RAW/resources.tsv"
printf 't\tside\tlatest_handshake\tendpoint\n' >"$RAW/wgshow.tsv"
printf 't\tevent\tdetail\n' >"$RAW/events.tsv"
event() { printf '%s\t%s\t%s\n' "$(( $(date +%s) - T0 ))" "$1" "$2" >>"$RAW/events.tsv"; log "event: $1 $2"; }

sample_resources() {
    local t=$(( $(date +%s) - T0 )) side pid rss thr fds
    for side in A B; do
        [ "$side" = A ] && pid=$PID_A || pid=$PID_B
        if [ -r "/proc/$pid/status" ]; then
            rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
            thr=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
            fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$side" "$pid" "$rss" "$fds" "$thr" >>"$RAW/resources.tsv"
        else
            printf '%s\t%s\t%s\t\t\t\n' "$t" "$side" "$pid" >>"$RAW/resources.tsv"
        fi
    done
}
sample_wg() {
    local t=$1 hs ep
    hs=$(timeout 5 ip netns exec "$NS_B" wg show "$IF_B" latest-handshakes 2>/dev/null | awk '{print $2}')
    ep=$(timeout 5 ip netns exec "$NS_B" wg show "$IF_B" endpoints 2>/dev/null | awk '{print $2}')
    printf '%s\tB\t%s\t%s\n' "$t" "${hs:-}" "${ep:-}" >>"$RAW/wgshow.tsv"
    hs=$(timeout 5 ip netns exec "$NS_A" wg show "$IF_A" latest-handshakes 2>/dev/null | awk '{print $2}')
    ep=$(timeout 5 ip netns exec "$NS_A" wg show "$IF_A" endpoints 2>/dev/null | awk '{print $2}')
    printf '%s\tA\t%s\t%s\n' "$t" "${hs:-}" "${ep:-}" >>"$RAW/wgshow.tsv"
}
B_ADDR=198.18.0.2
roam() { # NEW_ADDR: add the new underlay address on B, then remove the old one
    local old=$B_ADDR
    ip_t -n "$NS_B" addr add "$1/24" dev "$VB" || { event roam_failed "$old -> $1"; return; }
    ip_t -n "$NS_B" addr del "$old/24" dev "$VB" || event roam_failed "del $old"
    B_ADDR=$1
    event roam "$old -> $1"
}
restart_a() {
    local old=$PID_A rc
    event restart_begin "SIGTERM to A (PID $old)"
    kill -TERM "$old" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$old" 2>/dev/null; then
        event restart_stuck "A (PID $old) still running 10 s after SIGTERM: SIGKILL"
        kill -KILL "$old" 2>/dev/null
    fi
    wait "$old"
    rc=$?
    event restart_exit "A exited with status $rc"
    A_GEN=$((A_GEN + 1))
    if start_wgd "$NS_A" "$IF_A" "$WORK/conf/a.conf" 198.19.0.1/24 wgd-a; then
        PID_A=$STARTED
        event restart_done "A restarted (PID $PID_A) and reconfigured"
    else
        PID_A=$STARTED
        event restart_failed "A did not come back ($(tail -n 2 "$RAW/wgd-a.log" | tr '\n' ' '))"
    fi
}

log "running for $MINUTES min: roam at ${T_ROAM1}s and ${T_ROAM2}s, restart of A at ${T_RESTART}s"
done_roam1=0; done_roam2=0; done_restart=0; last_wg=-5; last_res=-60
while :; do
    t=$(( $(date +%s) - T0 ))
    [ "$t" -ge "$TOTAL" ] && break
    if [ "$done_roam1" = 0 ] && [ "$t" -ge "$T_ROAM1" ]; then roam 198.18.0.12; done_roam1=1; fi
    if [ "$done_restart" = 0 ] && [ "$t" -ge "$T_RESTART" ]; then restart_a; done_restart=1; fi
    if [ "$done_roam2" = 0 ] && [ "$t" -ge "$T_ROAM2" ]; then roam 198.18.0.22; done_roam2=1; fi
    if [ $((t - last_wg)) -ge 5 ]; then sample_wg "$t"; last_wg=$t; fi
    # Resources at 60 s, 120 s, ... and at the very end (below).
    if [ "$t" -ge 60 ] && [ $((t - last_res)) -ge 60 ]; then sample_resources; last_res=$((t / 60 * 60)); fi
    sleep 1
done
t=$(( $(date +%s) - T0 ))
sample_wg "$t"
sample_resources
meta t_end "$t"
meta load_after "$(cut -d' ' -f1-3 /proc/loadavg)"

# Stop traffic and the daemons (SIGTERM, clean exit expected), then judge.
stop_pid "$TRAFFIC_PID"
stop_pid "$PING_PID"
for side in A B; do
    [ "$side" = A ] && pid=$PID_A || pid=$PID_B
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        meta "exit_$side" "still running 10 s after SIGTERM"
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    else
        wait "$pid" 2>/dev/null
        meta "exit_$side" "$?"
    fi
done

timeout 120 python3 "$ROOT/scripts/bench/soak_report.py" --raw "$RAW" --out "$OUT"
rc=$?
log "raw files: $RAW$([ "$RAW" = "$WORK/raw" ] && [ "${KEEP_WORK:-0}" != 1 ] && echo ' (deleted; KEEP_WORK=1 or --raw DIR keeps them)')"
exit "$rc"
