#!/usr/bin/env bash
# Tunnel benchmark: wgd against the stock userspace WireGuard implementations, each tunnel
# between two network namespaces over a veth pair, same implementation on both ends.
#
#   sudo scripts/bench.sh [--quick] [--rounds N] [--duration S]
#                         [--impls wgd,wireguard-go,boringtun,gotatun] [--out docs/benchmarks.md]
#                         [--raw DIR] [--no-plot] [--no-build]
#
# Rounds are interleaved (A B C A B C ...). Per round and implementation: ping RTT idle, iperf3
# TCP 1 stream each direction (ping RTT under load measured during the forward stream), TCP 4
# streams each direction, UDP packets/s at 64- and 1392-byte payloads, and the CPU time both
# daemons spent per GB moved by the TCP tests. Writes medians and min-max, ratios wgd / other,
# machine and versions as a section of the --out markdown file (between markers, so a rerun
# replaces it), raw results (results.json, results.csv) and a bar chart (throughput.png) into
# bench-results/ next to it. docs/benchmarks.md explains the method.
#
# Needs root (namespaces, TUN). Installs what is missing: wireguard-tools, wireguard-go, iperf3,
# iputils-ping (apt, --no-install-recommends), boringtun-cli and gotatun-cli (cargo install into
# /opt/wgd-ci), matplotlib (pip, in a venv under ~/.cache/wgd-bench). An implementation that cannot
# be installed or started is skipped with the reason; a failed measurement is recorded as missing.
# Only PIDs this script started are ever signalled; its namespaces are deleted on exit.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
SELF="scripts/bench.sh"
CMDLINE="sudo $SELF $*"

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }

QUICK=0
ROUNDS=""
DURATION=""
IMPLS="wgd,wireguard-go,boringtun,gotatun"
OUT="docs/benchmarks.md"
RAW=""
PLOT=1
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --rounds) ROUNDS=${2:?--rounds needs a number}; shift ;;
        --duration) DURATION=${2:?--duration needs seconds}; shift ;;
        --impls) IMPLS=${2:?--impls needs a list}; shift ;;
        --out) OUT=${2:?--out needs a path}; shift ;;
        --raw) RAW=${2:?--raw needs a directory}; shift ;;
        --no-plot) PLOT=0 ;;
        --no-build) BUILD=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then
    ROUNDS=${ROUNDS:-1}
    DURATION=${DURATION:-2}
else
    ROUNDS=${ROUNDS:-3}
    DURATION=${DURATION:-5}
fi
case "$ROUNDS" in ''|*[!0-9]*|0) echo "--rounds must be a positive integer" >&2; exit 2 ;; esac
case "$DURATION" in ''|*[!0-9]*|0) echo "--duration must be a positive integer (seconds)" >&2; exit 2 ;; esac

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces and TUN devices): sudo $SELF"
[ -e /dev/net/tun ] || die "/dev/net/tun does not exist"

# ---------------------------------------------------------------------------------------------
# State and cleanup: every PID we start goes into PIDS; namespaces and sockets are ours by name.
PIDS=()
NS_A="wgdbench-a-$$"
NS_B="wgdbench-b-$$"
IFACES=()
WORK=$(mktemp -d /tmp/wgd-bench.XXXXXX)
chmod 700 "$WORK"
[ -n "$RAW" ] || RAW="$WORK/raw"
mkdir -p "$RAW"

stop_pid() { # PID: SIGTERM, wait up to 3 s, then SIGKILL; only for PIDs we started.
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

cleanup() {
    local pid ifc
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    timeout 10 ip netns del "$NS_A" 2>/dev/null
    timeout 10 ip netns del "$NS_B" 2>/dev/null
    for ifc in "${IFACES[@]}"; do rm -f "/var/run/wireguard/$ifc.sock"; done
    rm -rf "$WORK/conf"
    if [ "$RAW" = "$WORK/raw" ] && [ "${KEEP_WORK:-0}" != 1 ]; then
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Tools and implementations.
APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null || { log "apt-get not found; install $* by hand"; return 1; }
    if [ "$APT_UPDATED" = 0 ]; then
        timeout 300 apt-get update -qq >/dev/null 2>&1 || log "apt-get update failed"
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "$@" \
        >"$WORK/apt.log" 2>&1 || { log "apt-get install $* failed (see below)"; tail -n 5 "$WORK/apt.log" >&2; return 1; }
}

need=()
command -v ip >/dev/null || need+=(iproute2)
command -v ss >/dev/null || need+=(iproute2)
command -v wg >/dev/null || need+=(wireguard-tools)
command -v iperf3 >/dev/null || need+=(iperf3)
command -v ping >/dev/null || need+=(iputils-ping)
command -v python3 >/dev/null || need+=(python3)
command -v git >/dev/null || need+=(git)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt_install "${need[@]}" || die "missing tools: ${need[*]}"
fi

# cargo: under sudo the invoking user's ~/.cargo/bin is not in PATH.
find_cargo() {
    local c
    for c in "$(command -v cargo 2>/dev/null)" "$HOME/.cargo/bin/cargo" \
        ${SUDO_USER:+"$(getent passwd "$SUDO_USER" | cut -d: -f6)/.cargo/bin/cargo"}; do
        [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
    done
    return 1
}
CARGO=$(find_cargo) || CARGO=""

IFS=, read -r -a IMPL_LIST <<<"$IMPLS"
declare -A PROG SKIP
for impl in "${IMPL_LIST[@]}"; do
    case "$impl" in
        wgd|wireguard-go|boringtun|gotatun|veth) ;;
        *) die "unknown implementation '$impl' (wgd, wireguard-go, boringtun, gotatun, veth)" ;;
    esac
done

find_prog() { # NAME: in PATH or /opt/wgd-ci/bin
    if command -v "$1" >/dev/null; then command -v "$1"; return 0; fi
    [ -x "/opt/wgd-ci/bin/$1" ] && { echo "/opt/wgd-ci/bin/$1"; return 0; }
    return 1
}

cargo_install() { # CRATE BINARY: cargo install into /opt/wgd-ci (can take minutes)
    [ -n "$CARGO" ] || { echo "cargo not found"; return 1; }
    log "cargo install $1 --locked --root /opt/wgd-ci (may take several minutes)"
    if ! nice -n 10 timeout 3600 "$CARGO" install "$1" --locked --root /opt/wgd-ci \
        >"$WORK/cargo-install-$1.log" 2>&1; then
        echo "cargo install $1 failed: $(grep -m1 -E '^error' "$WORK/cargo-install-$1.log" || tail -n 1 "$WORK/cargo-install-$1.log")"
        return 1
    fi
    [ -x "/opt/wgd-ci/bin/$2" ] || { echo "cargo install $1 did not produce /opt/wgd-ci/bin/$2"; return 1; }
}

for impl in "${IMPL_LIST[@]}"; do
    case "$impl" in
        wgd)
            if [ "$BUILD" = 1 ]; then
                [ -n "$CARGO" ] || die "cargo not found (needed to build wgd; or pass --no-build)"
                log "building wgd (cargo build --release)"
                if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && [ "$(stat -c %U "$ROOT")" = "$SUDO_USER" ]; then
                    # Build as the owner of the tree so target/ does not become root's.
                    timeout 3600 sudo -u "$SUDO_USER" -H "$CARGO" build --release --quiet \
                        || die "cargo build --release failed"
                else
                    timeout 3600 "$CARGO" build --release --quiet || die "cargo build --release failed"
                fi
            fi
            [ -x "$ROOT/target/release/wgd" ] || die "target/release/wgd not found"
            PROG[wgd]="$ROOT/target/release/wgd"
            ;;
        wireguard-go)
            if ! PROG[wireguard-go]=$(find_prog wireguard-go); then
                apt_install wireguard-go || true
                PROG[wireguard-go]=$(find_prog wireguard-go) || SKIP[wireguard-go]="wireguard-go not installed (apt-get install wireguard-go failed)"
            fi
            ;;
        boringtun)
            if ! PROG[boringtun]=$(find_prog boringtun-cli); then
                if reason=$(cargo_install boringtun-cli boringtun-cli); then
                    PROG[boringtun]=/opt/wgd-ci/bin/boringtun-cli
                else
                    SKIP[boringtun]=$reason
                fi
            fi
            ;;
        gotatun)
            if ! PROG[gotatun]=$(find_prog gotatun); then
                if reason=$(cargo_install gotatun-cli gotatun); then
                    PROG[gotatun]=/opt/wgd-ci/bin/gotatun
                else
                    SKIP[gotatun]=$reason
                fi
            fi
            ;;
        veth) PROG[veth]=none ;;
    esac
    [ -n "${SKIP[$impl]:-}" ] && log "skipping $impl: ${SKIP[$impl]}"
done

# ---------------------------------------------------------------------------------------------
# Metadata: machine, versions, command.
META="$RAW/meta.tsv"
meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }
: >"$META"
meta command "$CMDLINE"
meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta rounds "$ROUNDS"
meta duration_s "$DURATION"
meta impls "$IMPLS"
meta nproc "$(nproc)"
meta cpu_model "$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
meta kernel "$(uname -srm)"
meta os "$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-}")"
meta load_before "$(cut -d' ' -f1-3 /proc/loadavg)"
rev=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || rev="$rev+dirty"
meta version_wgd "wgd $rev"
for impl in "${IMPL_LIST[@]}"; do
    [ -n "${SKIP[$impl]:-}" ] && continue
    case "$impl" in
        wireguard-go) meta version_wireguard-go "$(timeout 10 "${PROG[$impl]}" --version 2>&1 | head -n1)" ;;
        boringtun) meta version_boringtun "$(timeout 10 "${PROG[$impl]}" --version 2>&1 | head -n1)" ;;
        gotatun) meta version_gotatun "$(timeout 10 "${PROG[$impl]}" --version 2>&1 | head -n1)" ;;
    esac
done
meta version_iperf3 "$(iperf3 --version 2>&1 | head -n1)"
meta version_ping "$(ping -V 2>&1 | head -n1)"
CLK_TCK=$(getconf CLK_TCK)
meta clk_tck "$CLK_TCK"

# ---------------------------------------------------------------------------------------------
# Namespaces, veth, tunnels.
ip_t() { timeout 30 ip "$@"; }
in_a() { ip netns exec "$NS_A" "$@"; }
in_b() { ip netns exec "$NS_B" "$@"; }

log "namespaces $NS_A, $NS_B over veth (198.18.0.1 <-> 198.18.0.2)"
ip_t netns add "$NS_A" || die "ip netns add failed"
ip_t netns add "$NS_B" || die "ip netns add failed"
ip_t link add "vba$$" netns "$NS_A" type veth peer name "vbb$$" netns "$NS_B" || die "veth failed"
ip_t -n "$NS_A" addr add 198.18.0.1/24 dev "vba$$" || die "address failed"
ip_t -n "$NS_B" addr add 198.18.0.2/24 dev "vbb$$" || die "address failed"
for ns in "$NS_A" "$NS_B"; do ip_t -n "$ns" link set lo up || die "lo up failed"; done
ip_t -n "$NS_A" link set "vba$$" up || die "link up failed"
ip_t -n "$NS_B" link set "vbb$$" up || die "link up failed"
timeout 10 ip netns exec "$NS_B" ping -c 1 -W 5 198.18.0.1 >/dev/null || die "veth does not answer ping"

declare -A PID_A PID_B ADDR_A IFACE_A IFACE_B
mkdir -p "$WORK/conf"
chmod 700 "$WORK/conf"

STARTED=""
start_daemon() { # IMPL NS IFACE -> PID in $STARTED (our child: ip netns exec execs the daemon)
    local impl=$1 ns=$2 ifc=$3 prog=${PROG[$1]} pid i
    local -a args
    case "$impl" in
        wgd|wireguard-go) args=("$prog" -f "$ifc") ;;
        boringtun|gotatun) args=("$prog" -f --disable-drop-privileges "$ifc") ;;
    esac
    env -u RUST_LOG -u LOG_LEVEL WG_PROCESS_FOREGROUND=1 \
        ip netns exec "$ns" "${args[@]}" >"$RAW/daemon-$ifc.log" 2>&1 </dev/null &
    pid=$!
    PIDS+=("$pid")
    STARTED=$pid
    for i in $(seq 100); do
        [ -S "/var/run/wireguard/$ifc.sock" ] && kill -0 "$pid" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    log "$impl did not create /var/run/wireguard/$ifc.sock; log: $(tail -n 3 "$RAW/daemon-$ifc.log" | tr '\n' ' ')"
    return 1
}

configure() { # NS IFACE PRIV PORT PEERPUB ALLOWED ENDPOINT ADDR
    local ns=$1 ifc=$2 conf="$WORK/conf/$2.conf"
    {
        printf '[Interface]\nPrivateKey = %s\nListenPort = %s\n\n[Peer]\nPublicKey = %s\nAllowedIPs = %s\n' \
            "$3" "$4" "$5" "$6"
        [ -n "$7" ] && printf 'Endpoint = %s\n' "$7"
    } >"$conf"
    chmod 600 "$conf"
    timeout 10 ip netns exec "$ns" wg setconf "$ifc" "$conf" || return 1
    ip_t -n "$ns" addr add "$8" dev "$ifc" || return 1
    ip_t -n "$ns" link set "$ifc" mtu 1420 up || return 1
}

setup_impl() { # IMPL INDEX
    local impl=$1 i=$2 ka kb pa pb port=$((51820 + $2))
    if [ "$impl" = veth ]; then
        ADDR_A[$impl]=198.18.0.1
        return 0
    fi
    IFACE_A[$impl]="wb$$-${i}a"
    IFACE_B[$impl]="wb$$-${i}b"
    IFACES+=("${IFACE_A[$impl]}" "${IFACE_B[$impl]}")
    ADDR_A[$impl]="198.19.$i.1"
    ka=$(wg genkey) && kb=$(wg genkey) && pa=$(wg pubkey <<<"$ka") && pb=$(wg pubkey <<<"$kb") \
        || { SKIP[$impl]="wg genkey failed"; return 1; }
    # Responder (A) first: started and configured before the initiator exists.
    start_daemon "$impl" "$NS_A" "${IFACE_A[$impl]}" \
        || { SKIP[$impl]="$impl did not start (see $RAW/daemon-${IFACE_A[$impl]}.log)"; return 1; }
    PID_A[$impl]=$STARTED
    configure "$NS_A" "${IFACE_A[$impl]}" "$ka" "$port" "$pb" "198.19.$i.2/32" "" "198.19.$i.1/24" \
        || { SKIP[$impl]="configuring $impl (A) failed"; return 1; }
    start_daemon "$impl" "$NS_B" "${IFACE_B[$impl]}" \
        || { SKIP[$impl]="$impl did not start (see $RAW/daemon-${IFACE_B[$impl]}.log)"; return 1; }
    PID_B[$impl]=$STARTED
    configure "$NS_B" "${IFACE_B[$impl]}" "$kb" "$port" "$pa" "198.19.$i.1/32" "198.18.0.1:$port" "198.19.$i.2/24" \
        || { SKIP[$impl]="configuring $impl (B) failed"; return 1; }
    if ! timeout 15 ip netns exec "$NS_B" ping -c 1 -w 10 "198.19.$i.1" >/dev/null; then
        SKIP[$impl]="no ping through the $impl tunnel within 10 s"
        return 1
    fi
}

IDX=0
ACTIVE=()
for impl in "${IMPL_LIST[@]}"; do
    IDX=$((IDX + 1))
    [ -n "${SKIP[$impl]:-}" ] && continue
    log "starting $impl <-> $impl"
    if setup_impl "$impl" "$IDX"; then
        ACTIVE+=("$impl")
    else
        log "skipping $impl: ${SKIP[$impl]}"
    fi
done
for impl in "${IMPL_LIST[@]}"; do
    [ -n "${SKIP[$impl]:-}" ] && meta "skip_$impl" "${SKIP[$impl]}"
done
[ ${#ACTIVE[@]} -gt 0 ] || die "no implementation could be started"

# ---------------------------------------------------------------------------------------------
# Measurements. Each writes raw files under $RAW; python parses them afterwards (missing or
# broken files become missing values).
cpu_ticks() { # PID -> utime+stime of the whole process (all threads), in clock ticks
    local stat rest
    local -a f
    [ -r "/proc/$1/stat" ] || { echo -1; return; }
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo -1; return; }
    rest=${stat##*) }
    # After "pid (comm) ": state is field 3, so utime (14) and stime (15) are words 12 and 13.
    read -r -a f <<<"$rest"
    echo $(( f[11] + f[12] ))
}
CPU_TSV="$RAW/cpu.tsv"
printf 'round\timpl\ttest\tcpu_a_ticks\tcpu_b_ticks\twall_s\trc\n' >"$CPU_TSV"

wait_listen() { # PORT: until iperf3 listens in A (bounded 5 s)
    local i
    for i in $(seq 50); do
        [ -n "$(in_a ss -Hltn "sport = :$1" 2>/dev/null)" ] && return 0
        sleep 0.1
    done
    return 1
}

iperf_test() { # ROUND IMPL INDEX TEST [iperf3 client args...]
    local r=$1 impl=$2 i=$3 test=$4 port=$((5200 + $3)) spid rc=0 t0 t1 a0 a1 b0 b1 ppid=""
    shift 4
    local out="$RAW/r${r}_${impl}_${test}.json"
    ip netns exec "$NS_A" iperf3 -s -1 -B "${ADDR_A[$impl]}" -p "$port" >"$RAW/r${r}_${impl}_${test}.server.log" 2>&1 </dev/null &
    spid=$!
    PIDS+=("$spid")
    if ! wait_listen "$port"; then
        log "  $test: iperf3 server did not listen"
        stop_pid "$spid"
        printf '%s\t%s\t%s\t\t\t\t%s\n' "$r" "$impl" "$test" "server" >>"$CPU_TSV"
        return 1
    fi
    if [ "$test" = tcp1_fwd ]; then
        # Ping RTT under load: 10 pings/s through the tunnel during this stream.
        (sleep 0.5; exec timeout $((DURATION + 10)) ip netns exec "$NS_B" \
            ping -n -c $(( (DURATION - 1) * 10 > 5 ? (DURATION - 1) * 10 : 5 )) -i 0.1 -W 2 "${ADDR_A[$impl]}") \
            >"$RAW/r${r}_${impl}_ping_load.txt" 2>&1 &
        ppid=$!
        PIDS+=("$ppid")
    fi
    a0=$(cpu_ticks "${PID_A[$impl]:-0}"); b0=$(cpu_ticks "${PID_B[$impl]:-0}")
    t0=$(date +%s.%N)
    timeout $((DURATION + 20)) ip netns exec "$NS_B" iperf3 -c "${ADDR_A[$impl]}" -p "$port" \
        -t "$DURATION" --connect-timeout 5000 --json "$@" >"$out" 2>"$out.err" </dev/null || rc=$?
    t1=$(date +%s.%N)
    # iperf3 3.12 exits 0 after some errors with --json: the JSON's "error" key tells.
    [ "$rc" = 0 ] && grep -q '"error":' "$out" 2>/dev/null && rc=error
    a1=$(cpu_ticks "${PID_A[$impl]:-0}"); b1=$(cpu_ticks "${PID_B[$impl]:-0}")
    [ -n "$ppid" ] && { timeout $((DURATION + 15)) tail --pid="$ppid" -f /dev/null; stop_pid "$ppid"; }
    stop_pid "$spid"
    local da="" db=""
    [ "$a0" -ge 0 ] && [ "$a1" -ge 0 ] && da=$((a1 - a0))
    [ "$b0" -ge 0 ] && [ "$b1" -ge 0 ] && db=$((b1 - b0))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$impl" "$test" "$da" "$db" \
        "$(echo "$t1 - $t0" | awk '{print $1 - $3}')" "$rc" >>"$CPU_TSV"
    [ "$rc" = 0 ] || log "  $test: iperf3 failed ($rc): $(grep -m1 '"error":' "$out" 2>/dev/null | tr -s '\t ' ' ')$(head -c 200 "$out.err" | tr '\n' ' ')"
    return 0
}

UDP_BIG=1392 # largest UDP payload in one 1420-byte IPv4 packet (1420 - 20 IP - 8 UDP)
run_round_impl() { # ROUND IMPL INDEX
    local r=$1 impl=$2 i=$3
    log "round $r/$ROUNDS: $impl"
    timeout 20 ip netns exec "$NS_B" ping -n -c 20 -i 0.05 -W 1 "${ADDR_A[$impl]}" \
        >"$RAW/r${r}_${impl}_ping_idle.txt" 2>&1 </dev/null
    iperf_test "$r" "$impl" "$i" tcp1_fwd
    iperf_test "$r" "$impl" "$i" tcp1_rev -R
    iperf_test "$r" "$impl" "$i" tcp4_fwd -P 4
    iperf_test "$r" "$impl" "$i" tcp4_rev -P 4 -R
    iperf_test "$r" "$impl" "$i" udp64 -u -b 0 -l 64
    iperf_test "$r" "$impl" "$i" "udp$UDP_BIG" -u -b 0 -l "$UDP_BIG"
    # A daemon that died is a failed measurement from here on, not a crash of the script.
    if [ "$impl" != veth ]; then
        kill -0 "${PID_A[$impl]}" 2>/dev/null || log "  $impl daemon A (PID ${PID_A[$impl]}) is gone"
        kill -0 "${PID_B[$impl]}" 2>/dev/null || log "  $impl daemon B (PID ${PID_B[$impl]}) is gone"
    fi
}
meta udp_big_payload "$UDP_BIG"

declare -A INDEX
IDX=0
for impl in "${IMPL_LIST[@]}"; do IDX=$((IDX + 1)); INDEX[$impl]=$IDX; done
for r in $(seq "$ROUNDS"); do
    for impl in "${ACTIVE[@]}"; do
        run_round_impl "$r" "$impl" "${INDEX[$impl]}"
    done
done
meta load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
meta active "$(IFS=,; echo "${ACTIVE[*]}")"

# ---------------------------------------------------------------------------------------------
# Report: markdown section, results.json/csv, chart.
OUT_DIR=$(dirname "$OUT")
RES_DIR="$OUT_DIR/bench-results"
mkdir -p "$RES_DIR"
PY=python3
if [ "$PLOT" = 1 ]; then
    VENV="${XDG_CACHE_HOME:-$HOME/.cache}/wgd-bench/venv"
    if ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
        log "setting up matplotlib in $VENV"
        if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
            rm -rf "$VENV"
            apt_install python3-venv && python3 -m venv "$VENV" >/dev/null 2>&1
        fi
        if [ ! -x "$VENV/bin/pip" ]; then
            log "no python3 venv: no chart"
        elif ! timeout 900 "$VENV/bin/pip" install --quiet --disable-pip-version-check matplotlib >"$WORK/pip.log" 2>&1; then
            log "pip install matplotlib failed: no chart ($(tail -n 1 "$WORK/pip.log"))"
        fi
    fi
    "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null && PY="$VENV/bin/python"
fi
plot_arg=(--plot "$RES_DIR/throughput.png")
[ "$PLOT" = 1 ] || plot_arg=()
timeout 120 "$PY" "$ROOT/scripts/bench/report.py" --raw "$RAW" --out "$OUT" --results "$RES_DIR" "${plot_arg[@]}" \
    || die "report.py failed (raw results kept in $RAW)"
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    chown "$SUDO_USER": "$OUT" "$RES_DIR" "$RES_DIR"/results.json "$RES_DIR"/results.csv 2>/dev/null
    [ -e "$RES_DIR/throughput.png" ] && chown "$SUDO_USER": "$RES_DIR/throughput.png"
fi
log "done: $OUT, $RES_DIR/results.json, $RES_DIR/results.csv"
