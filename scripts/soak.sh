#!/usr/bin/env bash
# Soak test of wgd as a hub with many spokes (issues #6 and #10 item 5; not part of `cargo test`):
#
#   sudo scripts/soak.sh [--minutes 60] [--peers 100] [--out docs/soak.md] [--raw DIR] [--no-build]
#
# A hub: one `wgd up HUB.conf` (target/release/wgd; built with `cargo build --release` unless
# --no-build) in a namespace of its own, its file listing the N spokes as peers (PublicKey and the
# spoke's tunnel /32, no endpoint). N spokes: one `wgd up SPOKE.conf` each, each in a namespace of
# its own, reaching the hub over a veth attached to a bridge in the hub's namespace (underlay
# 198.18.0.0/16, hub 198.18.0.1; tunnel 198.19.0.0/16, hub 198.19.0.1), the hub as their one peer
# with Endpoint and PersistentKeepalive = 25. For the whole run:
# - every 10 s a different tenth of the spokes pings the hub's tunnel address (3 packets each);
# - one spoke at a time runs iperf3 TCP to the hub at 20 Mbit/s for 20 s, rotating;
# - `wg show HUB dump` (handshakes, endpoints, allowed IPs) every 10 s;
# - the hub's (and spokes 1-3's) VmRSS, open fds, threads and CPU time every 60 s (after a
#   warm-up: spokes 1-3 run iperf3 at full speed to and from the hub for 3 s each way first).
# Events, spread over the run (every 5/7/9/11/13 min from --minutes 14 on; each once below):
# SIGHUP to the hub after rewriting its file (one spoke's /32 moves and the spoke takes the new
# address; one spoke removed, re-added at the next SIGHUP); a spoke restarting (SIGTERM, the hub
# pinging it meanwhile and getting ICMP port unreachable, started again 10 s later); a spoke
# roaming (its underlay address changes); the hub's underlay address removed and re-added 10 s
# later; a spoke's veth down for 10 s. Spokes 1-3 take no events (their RSS is sampled).
# At the end, PASS or FAIL with reasons (scripts/bench/soak_report.py; criteria in docs/soak.md),
# and the whole of --out is generated. Only PIDs this script started are signalled; its
# namespaces are deleted on exit.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
SELF="scripts/soak.sh"
CMDLINE="sudo $SELF $*"

MINUTES=60
PEERS=100
OUT="docs/soak.md"
RAW=""
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) MINUTES=${2:?--minutes needs a number}; shift ;;
        --peers) PEERS=${2:?--peers needs a number}; shift ;;
        --out) OUT=${2:?--out needs a path}; shift ;;
        --raw) RAW=${2:?--raw needs a directory}; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
case "$MINUTES" in ''|*[!0-9]*|0|1) echo "--minutes must be an integer >= 2" >&2; exit 2 ;; esac
case "$PEERS" in ''|*[!0-9]*) echo "--peers must be an integer from 5 to 1000" >&2; exit 2 ;; esac
[ "$PEERS" -ge 5 ] && [ "$PEERS" -le 1000 ] || { echo "--peers must be an integer from 5 to 1000" >&2; exit 2; }
N=$PEERS
TOTAL=$((MINUTES * 60))

log() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces and TUN devices): sudo $SELF"
for tool in ip wg iperf3 ping python3 timeout; do
    command -v "$tool" >/dev/null || die "missing $tool (apt-get install --no-install-recommends iproute2 wireguard-tools iperf3 iputils-ping python3)"
done

# --- names and addresses -------------------------------------------------------------------------
# Interface names must be unique machine-wide (the UAPI sockets share /var/run/wireguard), and
# at most 15 characters: "ws" PID "h" / "ws" PID "s" INDEX.
NS_HUB="wgdsoak-$$-hub"
IF_HUB="ws$$h"
BR="wsbr"
declare -a NS IF VS VH UNDER TUN PRIV PUB SPID BUSY_UNTIL REMOVED
sub() { # BASE INDEX(1-based) -> "x.y": 250 hosts per /24 from BASE.0 on
    printf '%s.%s' $(( $1 + ($2 - 1) / 250 )) $(( ($2 - 1) % 250 + 2 ))
}
for ((i = 1; i <= N; i++)); do
    NS[i]="wgdsoak-$$-s$i"
    IF[i]="ws$$s$i"
    VS[i]="v$$s$i"   # spoke end of the veth (in the spoke's namespace)
    VH[i]="v$$h$i"   # hub end (in the hub's namespace, a port of the bridge)
    UNDER[i]="198.18.$(sub 1 "$i")"
    TUN[i]="198.19.$(sub 1 "$i")"
    BUSY_UNTIL[i]=0
    REMOVED[i]=0
done
HUB_UNDER=198.18.0.1
HUB_TUN=198.19.0.1

WORK=$(mktemp -d /tmp/wgd-soak.XXXXXX)
chmod 700 "$WORK"
CONF="$WORK/conf"
mkdir -p "$CONF" && chmod 700 "$CONF"
[ -n "$RAW" ] || RAW="$WORK/raw"
mkdir -p "$RAW" && rm -f "$RAW"/*.tsv "$RAW"/*.log "$RAW"/iperf-*.json

# --- processes: only our own children are ever signalled ------------------------------------------
# pid_max may be small (32768 here) and bash reaps background children as they exit, so a
# remembered PID may belong to someone else later: check that it is still our child first.
declare -A LIVE
child_of() { # PID PARENT: is PID alive and a child of PARENT?
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    set -- "$1" "$2" $st
    [ "$4" = "$2" ]
}
ours() { child_of "$1" "$$"; }
alive() { ours "$1" && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
stop_pid() { # PID [tenths of a second before SIGKILL]: SIGTERM, wait; sets STOP_RC
    local pid=$1 n=${2:-100}
    STOP_RC=""
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null
        for ((k = 0; k < n; k++)); do alive "$pid" || break; sleep 0.1; done
        if alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null
            STOP_RC=killed
        fi
    fi
    wait "$pid" 2>/dev/null
    local rc=$?
    [ -n "$STOP_RC" ] || STOP_RC=$rc
    unset "LIVE[$pid]"
}
cleanup() {
    local pid i
    trap - EXIT INT TERM
    for pid in "${!LIVE[@]}"; do ours "$pid" && kill -TERM "$pid" 2>/dev/null; done
    for _ in $(seq 50); do
        local any=0
        for pid in "${!LIVE[@]}"; do alive "$pid" && any=1; done
        [ "$any" = 0 ] && break
        sleep 0.1
    done
    for pid in "${!LIVE[@]}"; do ours "$pid" && kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    for ((i = 1; i <= N; i++)); do
        timeout 10 ip netns del "${NS[i]}" 2>/dev/null
        rm -f "/var/run/wireguard/${IF[i]}.sock"
    done
    timeout 10 ip netns del "$NS_HUB" 2>/dev/null
    rm -f "/var/run/wireguard/$IF_HUB.sock"
    rm -rf "$CONF"
    [ "$RAW" = "$WORK/raw" ] && [ "${KEEP_WORK:-0}" != 1 ] && rm -rf "$WORK"
    [ -d "$WORK" ] && rmdir "$WORK" 2>/dev/null
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
mem_avail() { awk '/^MemAvailable:/ {print $2}' /proc/meminfo; }
: >"$META"
meta command "$CMDLINE"
meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta minutes "$MINUTES"
meta peers "$N"
meta nproc "$(nproc)"
meta cpu_model "$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
meta mem_total_kb "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
meta kernel "$(uname -srm)"
rev=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || rev="$rev+dirty"
meta version_wgd "wgd $rev"
meta version_wg "$(wg --version 2>&1 | head -n1)"
meta version_iperf3 "$(iperf3 --version 2>&1 | head -n1)"
meta load_before "$(cut -d' ' -f1-3 /proc/loadavg)"
meta mem_avail_before_kb "$(mem_avail)"

# --- namespaces, bridge, veths ---------------------------------------------------------------------
ip_t() { timeout 30 ip "$@"; }
SETUP0=$EPOCHSECONDS
log "creating $((N + 1)) namespaces: hub $NS_HUB ($HUB_UNDER on bridge $BR) and $N spokes"
ip_t netns add "$NS_HUB" || die "ip netns add $NS_HUB failed"
{
    echo "link set lo up"
    echo "link add $BR type bridge"
    echo "addr add $HUB_UNDER/16 dev $BR"
    echo "link set $BR up"
} | ip_t -n "$NS_HUB" -batch - || die "bridge setup failed"
for ((i = 1; i <= N; i++)); do
    ip_t netns add "${NS[i]}" || die "ip netns add ${NS[i]} failed (after $((i - 1)) spokes)"
    ip_t link add "${VS[i]}" netns "${NS[i]}" type veth peer name "${VH[i]}" netns "$NS_HUB" \
        || die "veth for spoke $i failed"
    printf 'link set %s master %s up\n' "${VH[i]}" "$BR"
    printf '%s\n' "link set lo up" "addr add ${UNDER[i]}/16 dev ${VS[i]}" "link set ${VS[i]} up" \
        | ip_t -n "${NS[i]}" -batch - || die "addresses of spoke $i failed"
done | ip_t -n "$NS_HUB" -batch - || die "attaching the veths to the bridge failed"
# Underlay check from every spoke (bridge ports forward at once: no STP).
for ((i = 1; i <= N; i++)); do
    timeout 10 ip netns exec "${NS[i]}" ping -n -q -c 1 -W 5 "$HUB_UNDER" >/dev/null \
        || die "spoke $i does not reach $HUB_UNDER over the underlay"
done
meta setup_netns_s "$((EPOCHSECONDS - SETUP0))"

# --- keys and configuration files -----------------------------------------------------------------
umask 077
HUB_PRIV=$(wg genkey) && HUB_PUB=$(wg pubkey <<<"$HUB_PRIV") || die "wg genkey failed"
printf 'spoke\tpublic_key\ttunnel\tunderlay\tnamespace\tiface\n' >"$RAW/spokes.tsv"
for ((i = 1; i <= N; i++)); do
    PRIV[i]=$(wg genkey) && PUB[i]=$(wg pubkey <<<"${PRIV[i]}") || die "wg genkey failed"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$i" "${PUB[i]}" "${TUN[i]}" "${UNDER[i]}" "${NS[i]}" "${IF[i]}" >>"$RAW/spokes.tsv"
done
umask 022
meta hub_public_key "$HUB_PUB"
meta hub_iface "$IF_HUB"

write_spoke_conf() { # INDEX
    (umask 077; printf '[Interface]\nPrivateKey = %s\nAddress = %s/32\n\n[Peer]\nPublicKey = %s\nAllowedIPs = %s/32\nEndpoint = %s:51820\nPersistentKeepalive = 25\n' \
        "${PRIV[$1]}" "${TUN[$1]}" "$HUB_PUB" "$HUB_TUN" "$HUB_UNDER" >"$CONF/${IF[$1]}.conf")
}
write_hub_conf() { # the whole file from PUB, TUN and REMOVED; replaced atomically
    local i
    (
        umask 077
        printf '[Interface]\nPrivateKey = %s\nListenPort = 51820\nAddress = %s/16\n' "$HUB_PRIV" "$HUB_TUN"
        for ((i = 1; i <= N; i++)); do
            [ "${REMOVED[i]}" = 1 ] && continue
            printf '\n[Peer]\n# spoke %s\nPublicKey = %s\nAllowedIPs = %s/32\n' "$i" "${PUB[i]}" "${TUN[i]}"
        done
    ) >"$CONF/$IF_HUB.conf.new" && mv -f "$CONF/$IF_HUB.conf.new" "$CONF/$IF_HUB.conf"
}
for ((i = 1; i <= N; i++)); do write_spoke_conf "$i"; done
write_hub_conf

# --- daemons ---------------------------------------------------------------------------------------
start_hub() {
    env -u RUST_LOG ip netns exec "$NS_HUB" "$WGD" -v up "$CONF/$IF_HUB.conf" >>"$RAW/hub.log" 2>&1 </dev/null &
    HUB_PID=$!
    LIVE[$HUB_PID]=1
}
start_spoke() { # INDEX
    env -u RUST_LOG ip netns exec "${NS[$1]}" "$WGD" -v up "$CONF/${IF[$1]}.conf" >>"$RAW/spoke-$1.log" 2>&1 </dev/null &
    SPID[$1]=$!
    LIVE[$!]=1
}
ready() { # NS IFACE PID ROUTE [tenths]: UAPI socket, and the route wgd up adds last
    local k
    for ((k = 0; k < ${5:-100}; k++)); do
        if [ -S "/var/run/wireguard/$2.sock" ] && [ -n "$(ip -n "$1" route show "$4" dev "$2" 2>/dev/null)" ]; then
            return 0
        fi
        ours "$3" || return 1
        sleep 0.1
    done
    return 1
}
start_hub
ready "$NS_HUB" "$IF_HUB" "$HUB_PID" 198.19.0.0/16 || die "the hub did not start ($(tail -n 3 "$RAW/hub.log"))"
log "hub up (PID $HUB_PID); starting $N spokes"
for ((i = 1; i <= N; i++)); do start_spoke "$i"; done
for ((i = 1; i <= N; i++)); do
    ready "${NS[i]}" "${IF[i]}" "${SPID[i]}" "$HUB_TUN" 300 || die "spoke $i did not start ($(tail -n 3 "$RAW/spoke-$i.log"))"
done
# Every spoke's session up: a handshake at the hub for all N, then one ping through each.
for _ in $(seq 120); do
    n=$(timeout 5 wg show "$IF_HUB" latest-handshakes 2>/dev/null | awk '$2 > 0' | wc -l)
    [ "$n" -ge "$N" ] && break
    sleep 0.5
done
[ "$n" -ge "$N" ] || die "only $n of $N spokes have a handshake with the hub after 60 s"
for ((i = 1; i <= N; i++)); do
    timeout 15 ip netns exec "${NS[i]}" ping -n -q -c 1 -w 10 "$HUB_TUN" >/dev/null \
        || die "spoke $i: no ping through the tunnel"
done
# Warm-up: a daemon's first fast burst raises its RSS once (the data path's buffers reach their
# high-water mark, then stay: measured at +6 MiB, and about nothing for every later burst), so the
# hub and spokes 1-3 get one before the baseline at minute 1.
log "warm-up: spokes 1-3 to and from the hub at full speed, 3 s each way"
ip netns exec "$NS_HUB" iperf3 -s -p 5299 >/dev/null 2>&1 </dev/null &
WARM_SRV=$!
LIVE[$WARM_SRV]=1
sleep 0.5
for i in 1 2 3; do
    for dir in "" -R; do
        timeout 30 ip netns exec "${NS[i]}" iperf3 -c "$HUB_TUN" -p 5299 -t 3 $dir --connect-timeout 3000 \
            >/dev/null 2>&1 </dev/null || die "warm-up: iperf3 $dir from spoke $i failed"
    done
done
stop_pid "$WARM_SRV" 30
meta warmup "spokes 1-3: iperf3 TCP at full speed to and from the hub, 3 s each way"
meta setup_total_s "$((EPOCHSECONDS - SETUP0))"
meta mem_avail_after_setup_kb "$(mem_avail)"
log "hub and $N spokes up, every session established ($(( EPOCHSECONDS - SETUP0 )) s)"

# --- the schedule ----------------------------------------------------------------------------------
# Long runs: every 5 (SIGHUP), 7 (restart), 9 (roam), 11 (hub address), 13 (veth) minutes, none
# in the last minute; short runs: each once, SIGHUP twice (the second re-adds the removed spoke).
# Events less than 30 s apart (12 s in short runs) are pushed back so that their windows stay apart.
GAP=30
[ "$MINUTES" -ge 14 ] || GAP=12
sched=$(
    if [ "$MINUTES" -ge 14 ]; then
        for p in "300 sighup" "420 restart" "540 roam" "660 hubaddr" "780 linkdown"; do
            set -- $p
            for ((t = $1; t <= TOTAL - 60; t += $1)); do echo "$t $2"; done
        done
    else
        for p in "10 sighup" "24 restart" "38 roam" "50 hubaddr" "62 linkdown" "74 sighup"; do
            set -- $p
            echo "$((TOTAL * $1 / 100)) $2"
        done
    fi | sort -s -n -k1,1 | awk -v gap="$GAP" 'BEGIN {last = -1000} { t = $1; if (t < last + gap) t = last + gap; last = t; print t, $2 }' \
       | awk -v end=$((TOTAL - 40)) '$1 <= end'
)
EV_T=(); EV_K=()
while read -r t k; do [ -n "$t" ] && EV_T+=("$t") && EV_K+=("$k"); done <<<"$sched"
printf 't\tevent\n' >"$RAW/schedule.tsv"
for j in "${!EV_T[@]}"; do printf '%s\t%s\n' "${EV_T[j]}" "${EV_K[j]}" >>"$RAW/schedule.tsv"; done
N_SIGHUP=$(grep -c sighup <<<"$sched")

# --- traffic ---------------------------------------------------------------------------------------
T0=$EPOCHSECONDS
meta t0 "$T0"
printf 't\tspoke\tsent\treceived\trc\n' >"$RAW/pings.tsv"
printf 'run\tt_start\tt_end\tspoke\trc\n' >"$RAW/iperf.tsv"

# Every 10 s a different tenth of the spokes (rotating) pings the hub: 3 packets each.
ping_loop() {
    local k=0 j i t per=$(( (N + 9) / 10 ))
    trap 'exit 0' TERM
    while :; do
        t=$((EPOCHSECONDS - T0))
        [ "$t" -ge $((TOTAL - 10)) ] && break
        for ((j = 0; j < per; j++)); do
            i=$(( (k * per + j) % N + 1 ))
            (
                out=$(timeout 10 ip netns exec "${NS[i]}" ping -n -q -c 3 -i 0.2 -W 2 "$HUB_TUN" 2>&1)
                rc=$?
                tx=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' <<<"$out")
                rx=$(sed -n 's/.*transmitted, \([0-9]*\) received.*/\1/p' <<<"$out")
                printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$i" "${tx:-0}" "${rx:-0}" "$rc" >>"$RAW/pings.tsv"
            ) &
        done
        wait
        k=$((k + 1))
        while [ "$EPOCHSECONDS" -lt $((T0 + 10 * k)) ]; do sleep 0.5; done
    done
}
# One spoke at a time (rotating) runs iperf3 TCP to the hub at 20 Mbit/s for 20 s; a fresh
# one-shot server in the hub's namespace for each run.
iperf_loop() {
    local r=0 i ts rc spid="" cpid=""
    trap 'for p in $cpid $spid; do child_of "$p" "$BASHPID" && kill "$p" 2>/dev/null; done; exit 0' TERM
    while [ $((EPOCHSECONDS - T0)) -lt $((TOTAL - 30)) ]; do
        r=$((r + 1))
        i=$(( (r - 1) % N + 1 ))
        ip netns exec "$NS_HUB" iperf3 -s -1 -p 5299 >/dev/null 2>&1 </dev/null &
        spid=$!
        sleep 0.3
        ts=$((EPOCHSECONDS - T0))
        timeout 40 ip netns exec "${NS[i]}" iperf3 -c "$HUB_TUN" -p 5299 -b 20M -t 20 --connect-timeout 3000 \
            --json >"$RAW/iperf-$r.json" 2>/dev/null </dev/null &
        cpid=$!
        wait "$cpid"
        rc=$?
        cpid=""
        printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$ts" "$((EPOCHSECONDS - T0))" "$i" "$rc" >>"$RAW/iperf.tsv"
        child_of "$spid" "$BASHPID" && kill "$spid" 2>/dev/null
        wait "$spid" 2>/dev/null
        spid=""
        sleep 2
    done
}
ping_loop &
PING_LOOP=$!
LIVE[$PING_LOOP]=1
iperf_loop &
IPERF_LOOP=$!
LIVE[$IPERF_LOOP]=1

# --- measurements ----------------------------------------------------------------------------------
printf 't\twho\tpid\trss_kb\trss_anon_kb\trss_file_kb\tfds\tthreads\tcpu_ticks\theap_kb\theap_rss_kb\n' >"$RAW/resources.tsv"
printf 't\tpublic_key\tendpoint\tallowed_ips\tlatest_handshake\trx\ttx\n' >"$RAW/wgdump.tsv"
printf 't\tevent\tspoke\tdetail\n' >"$RAW/events.tsv"
printf 't\tspokes_running\tspokes_rss_kb\tmem_avail_kb\tload1\n' >"$RAW/machine.tsv"
now() { echo $((EPOCHSECONDS - T0)); }
event() { # KIND SPOKE|all DETAIL
    printf '%s\t%s\t%s\t%s\n' "$(now)" "$1" "$2" "$3" >>"$RAW/events.tsv"
    if [ "$2" = all ]; then log "event: $1 $3"; else log "event: $1 spoke $2: $3"; fi
}
proc_line() { # WHO PID
    local t=$1 who=$2 pid=$3 mem fds cpu st rss anon file thr heap
    if ours "$pid" && [ -r "/proc/$pid/status" ]; then
        # VmRSS, RssAnon, RssFile (the binary's pages mapped in), Threads
        mem=$(awk '/^(VmRSS|RssAnon|RssFile|Threads):/ {v[$1] = $2}
                   END {printf "%s\t%s\t%s\t%s", v["VmRSS:"], v["RssAnon:"], v["RssFile:"], v["Threads:"]}' \
                  "/proc/$pid/status" 2>/dev/null)
        fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
        st=$(cat "/proc/$pid/stat" 2>/dev/null); st=${st##*) }
        cpu=$(awk '{print $12 + $13}' <<<"$st")
        IFS=$'\t' read -r rss anon file thr <<<"$mem"
        # The malloc heap (brk): its size and the part of it resident.
        heap=$(awk '/^[0-9a-f]+-[0-9a-f]+ / {h = ($NF == "[heap]")} h && /^Size:/ {s = $2} h && /^Rss:/ {r = $2}
                    END {printf "%s\t%s", s, r}' "/proc/$pid/smaps" 2>/dev/null)
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$who" "$pid" "$rss" "$anon" "$file" "$fds" "$thr" "$cpu" "$heap" >>"$RAW/resources.tsv"
    else
        printf '%s\t%s\t%s\t\t\t\t\t\t\t\t\n' "$t" "$who" "$pid" >>"$RAW/resources.tsv"
    fi
}
sample_resources() {
    local t i total=0 running=0 r
    t=$(now)
    proc_line "$t" hub "$HUB_PID"
    for i in 1 2 3; do proc_line "$t" "spoke$i" "${SPID[i]}"; done
    for ((i = 1; i <= N; i++)); do
        [ -n "${SPID[i]}" ] && ours "${SPID[i]}" || continue
        r=$(awk '/^VmRSS:/ {print $2}' "/proc/${SPID[i]}/status" 2>/dev/null)
        [ -n "$r" ] && total=$((total + r)) && running=$((running + 1))
    done
    printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$running" "$total" "$(mem_avail)" "$(cut -d' ' -f1 /proc/loadavg)" >>"$RAW/machine.tsv"
}
sample_wg() { # the hub's view of every peer (the interface line, with the private key, is skipped)
    local t
    t=$(now)
    timeout 5 wg show "$IF_HUB" dump 2>/dev/null | tail -n +2 \
        | awk -v t="$t" 'BEGIN {OFS = "\t"} {print t, $1, $3, $4, $5, $6, $7}' >>"$RAW/wgdump.tsv"
}
icmp_unreach() { # the hub namespace's IcmpInDestUnreachs
    ip netns exec "$NS_HUB" cat /proc/net/snmp 2>/dev/null \
        | awk '$1 == "Icmp:" { if (!c) { for (k = 1; k <= NF; k++) if ($k == "InDestUnreachs") c = k } else { print $c; exit } }'
}

# --- events ----------------------------------------------------------------------------------------
PICKED=""
pick() { # STRIDE OFFSET COUNTER [EXCLUDED]: a spoke from 4..N not busy now -> PICKED
    local j i t
    t=$(now)
    for ((j = 0; j < N - 3; j++)); do
        i=$(( 4 + ($3 * $1 + $2 + j) % (N - 3) ))
        [ "${BUSY_UNTIL[i]}" -le "$t" ] && [ "$i" != "${4:-0}" ] && { PICKED=$i; return 0; }
    done
    return 1
}
busy() { BUSY_UNTIL[$1]=$2; }
N_HUP=0; N_MOVE=0; N_RESTART=0; N_ROAM=0; N_HUBADDR=0; N_LINK=0
REMOVED_SPOKE=""
MOVE_SPOKE=""; MOVE_OLD=""; END_MOVE=""
RESTART_SPOKE=""; END_RESTART=""; ICMP_BEFORE=""; HUB_PING_PID=""
END_HUBADDR=""
LINK_SPOKE=""; END_LINK=""

ev_sighup() {
    local t detail="" readd="" removed="" m old new ok=1 shown
    t=$(now)
    N_HUP=$((N_HUP + 1))
    if [ -n "$REMOVED_SPOKE" ]; then
        readd=$REMOVED_SPOKE
        REMOVED[readd]=0
        REMOVED_SPOKE=""
    fi
    # One spoke's /32 moves: it takes the new address first, drops the old one after the reload.
    if pick 13 0 "$N_HUP" && m=$PICKED; then
        N_MOVE=$((N_MOVE + 1))
        old=${TUN[m]}
        new="198.19.$(sub 128 "$N_MOVE")"
        if ip_t -n "${NS[m]}" addr add "$new/32" dev "${IF[m]}"; then
            TUN[m]=$new
            write_spoke_conf "$m"
            MOVE_SPOKE=$m; MOVE_OLD=$old; END_MOVE=$((t + 2))
            busy "$m" $((t + 20))
            event sighup_move "$m" "AllowedIPs $old/32 -> $new/32"
        else
            event sighup_move_failed "$m" "ip addr add $new/32 failed"
        fi
    fi
    # One spoke removed (re-added at the next SIGHUP), if there is one.
    if [ "$N_HUP" -lt "$N_SIGHUP" ] && pick 17 5 "$N_HUP" "${MOVE_SPOKE:-0}"; then
        removed=$PICKED
        REMOVED[removed]=1
        REMOVED_SPOKE=$removed
        busy "$removed" 999999
        event sighup_remove "$removed" "peer ${PUB[removed]} left out of the hub's file"
    fi
    write_hub_conf
    ours "$HUB_PID" && kill -HUP "$HUB_PID"
    event sighup all "SIGHUP $N_HUP to the hub (PID $HUB_PID)"
    if [ -n "$readd" ]; then
        busy "$readd" $((t + 60))
        event sighup_readd "$readd" "peer ${PUB[readd]} back in the hub's file"
    fi
    # What the hub shows after the reload.
    sleep 1
    shown=$(timeout 5 wg show "$IF_HUB" allowed-ips 2>/dev/null)
    [ -n "$m" ] && { grep -qF "${PUB[m]}"$'\t'"${TUN[m]}/32" <<<"$shown" || { ok=0; detail+=" spoke $m not at ${TUN[m]}/32;"; }; }
    [ -n "$removed" ] && { grep -qF "${PUB[removed]}" <<<"$shown" && { ok=0; detail+=" spoke $removed still present;"; }; }
    [ -n "$readd" ] && { grep -qF "${PUB[readd]}"$'\t'"${TUN[readd]}/32" <<<"$shown" || { ok=0; detail+=" spoke $readd not back;"; }; }
    [ "$(wc -l <<<"$shown")" -eq $((N - (${removed:+1}+0))) ] || { ok=0; detail+=" $(wc -l <<<"$shown") peers shown;"; }
    if [ "$ok" = 1 ]; then event sighup_check all "the hub shows the new peer set"; else event sighup_check_failed all "$detail"; fi
}
end_move() {
    ip_t -n "${NS[MOVE_SPOKE]}" addr del "$MOVE_OLD/32" dev "${IF[MOVE_SPOKE]}" \
        || event sighup_move_failed "$MOVE_SPOKE" "ip addr del $MOVE_OLD/32 failed"
    END_MOVE=""; MOVE_SPOKE=""
}

ev_restart() {
    local s t
    pick 7 1 "$N_RESTART" || { event restart_skipped all "no spoke free"; return; }
    s=$PICKED
    N_RESTART=$((N_RESTART + 1))
    t=$(now)
    busy "$s" $((t + 60))
    ICMP_BEFORE=$(icmp_unreach)
    event restart_begin "$s" "SIGTERM to spoke $s (PID ${SPID[s]})"
    stop_pid "${SPID[s]}" 100
    SPID[s]=""
    event restart_exit "$s" "exit status $STOP_RC"
    # Meanwhile the hub sends to the spoke's old endpoint (its session is still valid): the
    # spoke's namespace answers ICMP port unreachable.
    ip netns exec "$NS_HUB" ping -n -q -c 8 -i 0.5 -W 1 "${TUN[s]}" >/dev/null 2>&1 </dev/null &
    HUB_PING_PID=$!
    LIVE[$HUB_PING_PID]=1
    RESTART_SPOKE=$s
    END_RESTART=$((t + 10))
}
end_restart() {
    local s=$RESTART_SPOKE after
    stop_pid "$HUB_PING_PID" 50
    after=$(icmp_unreach)
    event restart_icmp "$s" "hub IcmpInDestUnreachs +$((after - ICMP_BEFORE))"
    start_spoke "$s"
    if ready "${NS[s]}" "${IF[s]}" "${SPID[s]}" "$HUB_TUN" 100; then
        event restart_done "$s" "spoke $s started again (PID ${SPID[s]})"
    else
        event restart_failed "$s" "spoke $s did not come back: $(tail -n 2 "$RAW/spoke-$s.log" | tr '\n' ' ')"
    fi
    END_RESTART=""; RESTART_SPOKE=""
}

ev_roam() {
    local s t old new
    pick 11 2 "$N_ROAM" || { event roam_skipped all "no spoke free"; return; }
    s=$PICKED
    N_ROAM=$((N_ROAM + 1))
    t=$(now)
    busy "$s" $((t + 45))
    old=${UNDER[s]}
    new="198.18.$(sub 128 "$N_ROAM")"
    # The old address is primary: keep the new (secondary) one when it goes.
    timeout 10 ip netns exec "${NS[s]}" sysctl -qw "net.ipv4.conf.${VS[s]}.promote_secondaries=1" >/dev/null
    if ip_t -n "${NS[s]}" addr add "$new/16" dev "${VS[s]}" && ip_t -n "${NS[s]}" addr del "$old/16" dev "${VS[s]}"; then
        UNDER[s]=$new
        event roam "$s" "$old -> $new"
    else
        event roam_failed "$s" "$old -> $new"
    fi
}

ev_hubaddr() {
    N_HUBADDR=$((N_HUBADDR + 1))
    if ip_t -n "$NS_HUB" addr del "$HUB_UNDER/16" dev "$BR"; then
        event hubaddr_del all "$HUB_UNDER/16 removed from the hub's bridge"
        END_HUBADDR=$(( $(now) + 10 ))
    else
        event hubaddr_failed all "ip addr del $HUB_UNDER/16 failed"
    fi
}
end_hubaddr() {
    if ip_t -n "$NS_HUB" addr add "$HUB_UNDER/16" dev "$BR"; then
        event hubaddr_add all "$HUB_UNDER/16 back"
    else
        event hubaddr_failed all "ip addr add $HUB_UNDER/16 failed"
    fi
    END_HUBADDR=""
}

ev_linkdown() {
    local s t
    pick 5 3 "$N_LINK" || { event link_skipped all "no spoke free"; return; }
    s=$PICKED
    N_LINK=$((N_LINK + 1))
    t=$(now)
    busy "$s" $((t + 60))
    if ip_t -n "${NS[s]}" link set "${VS[s]}" down; then
        event link_down "$s" "${VS[s]} down"
        LINK_SPOKE=$s
        END_LINK=$((t + 10))
    else
        event link_failed "$s" "ip link set ${VS[s]} down failed"
    fi
}
end_linkdown() {
    if ip_t -n "${NS[LINK_SPOKE]}" link set "${VS[LINK_SPOKE]}" up; then
        event link_up "$LINK_SPOKE" "${VS[LINK_SPOKE]} up"
    else
        event link_failed "$LINK_SPOKE" "ip link set up failed"
    fi
    END_LINK=""; LINK_SPOKE=""
}

# --- the run ---------------------------------------------------------------------------------------
log "running for $MINUTES min with $N spokes; schedule: $(tr '\n' ' ' <<<"$sched")"
sample_wg
next_ev=0; last_wg=0; last_res=0
while :; do
    t=$(now)
    [ "$t" -ge "$TOTAL" ] && break
    while [ "$next_ev" -lt "${#EV_T[@]}" ] && [ "${EV_T[next_ev]}" -le "$t" ]; do
        case "${EV_K[next_ev]}" in
            sighup) ev_sighup ;;
            restart) [ -z "$END_RESTART" ] && ev_restart ;;
            roam) ev_roam ;;
            hubaddr) [ -z "$END_HUBADDR" ] && ev_hubaddr ;;
            linkdown) [ -z "$END_LINK" ] && ev_linkdown ;;
        esac
        next_ev=$((next_ev + 1))
    done
    t=$(now)
    [ -n "$END_MOVE" ] && [ "$t" -ge "$END_MOVE" ] && end_move
    [ -n "$END_RESTART" ] && [ "$t" -ge "$END_RESTART" ] && end_restart
    [ -n "$END_HUBADDR" ] && [ "$t" -ge "$END_HUBADDR" ] && end_hubaddr
    [ -n "$END_LINK" ] && [ "$t" -ge "$END_LINK" ] && end_linkdown
    t=$(now)
    if [ $((t - last_wg)) -ge 10 ]; then sample_wg; last_wg=$((t / 10 * 10)); fi
    # Resources at 60 s, 120 s, ... and at the very end (below).
    if [ "$t" -ge 60 ] && [ $((t - last_res)) -ge 60 ]; then sample_resources; last_res=$((t / 60 * 60)); fi
    sleep 1
done
[ -n "$END_MOVE" ] && end_move
[ -n "$END_RESTART" ] && end_restart
[ -n "$END_HUBADDR" ] && end_hubaddr
[ -n "$END_LINK" ] && end_linkdown
sample_wg
sample_resources
meta t_end "$(now)"
meta load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
meta events_planned "${#EV_T[@]}"

# Traffic stops, then every daemon gets SIGTERM (all at once; a clean exit, status 0, expected).
stop_pid "$PING_LOOP" 150
stop_pid "$IPERF_LOOP" 150
for ((i = 1; i <= N; i++)); do ours "${SPID[i]}" && kill -TERM "${SPID[i]}" 2>/dev/null; done
ours "$HUB_PID" && kill -TERM "$HUB_PID" 2>/dev/null
printf 'who\tpid\texit\n' >"$RAW/exits.tsv"
for ((i = 1; i <= N; i++)); do
    stop_pid "${SPID[i]}" 100
    printf 'spoke%s\t%s\t%s\n' "$i" "${SPID[i]}" "$STOP_RC" >>"$RAW/exits.tsv"
done
stop_pid "$HUB_PID" 100
printf 'hub\t%s\t%s\n' "$HUB_PID" "$STOP_RC" >>"$RAW/exits.tsv"

timeout 300 python3 "$ROOT/scripts/bench/soak_report.py" --raw "$RAW" --out "$OUT"
rc=$?
log "raw files: $RAW$([ "$RAW" = "$WORK/raw" ] && [ "${KEEP_WORK:-0}" != 1 ] && echo ' (deleted; KEEP_WORK=1 or --raw DIR keeps them)')"
exit "$rc"
