#!/usr/bin/env bash
# A/B of wgd's own data-path settings, interleaved: each argument is one variant, given as the
# environment for both daemons (e.g. "WGD_CRYPTO_THREADS=1", "WGD_NO_TUN_OFFLOAD=1", or
# "DEFAULT=1" for the defaults). Two wgd in two namespaces from configs/wgd-{a,b}.conf, an
# iperf3 TCP single stream B -> A per variant and round; prints Gbit/s and the CPU seconds both
# daemons spent per GB received, and each daemon's peak RSS (VmHWM, KiB). Needs root, iperf3;
# builds the release binary. A variant "WGD_BIN=/path/to/wgd" runs that binary instead (an A/B of
# two builds: e.g. the previous commit's release binary against this one).
# --perf DIR: also samples both daemons with `perf record` (software clock, 499 Hz, no call
# graph) during each iperf3 run and writes DIR/<variant>-<round>.txt, the flat profile by symbol.
#
#   sudo scripts/bench-variants.sh [--rounds N] [--time S] [--perf DIR] VARIANT...
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3
T=4
PERF_DIR=
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --time) T=$2; shift 2 ;;
        --perf) PERF_DIR=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--rounds N] [--time S] VARIANT..." >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
if [ -n "$PERF_DIR" ] && ! command -v perf >/dev/null; then
    echo "--perf needs perf (Debian: linux-perf)" >&2
    exit 1
fi
cargo build --release --quiet
WGD="$PWD/target/release/wgd"
NS_A="wgdv-a-$$"
NS_B="wgdv-b-$$"
TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    ip netns del "$NS_A" 2>/dev/null || true
    ip netns del "$NS_B" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$NS_A"
ip netns add "$NS_B"
ip link add "vva$$" netns "$NS_A" type veth peer name "vvb$$" netns "$NS_B"
ip -n "$NS_A" addr add 198.18.0.1/24 dev "vva$$"
ip -n "$NS_B" addr add 198.18.0.2/24 dev "vvb$$"
for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up; done
ip -n "$NS_A" link set "vva$$" up
ip -n "$NS_B" link set "vvb$$" up
cp configs/wgd-a.conf configs/wgd-b.conf "$TMP/"
ip netns exec "$NS_A" iperf3 -s >/dev/null 2>&1 &
PIDS+=($!)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
echo "variant,round,gbit_s,cpu_s_per_gb,hwm_a_kib,hwm_b_kib"
for r in $(seq "$ROUNDS"); do
    for v in "$@"; do
        bin="$WGD"
        case "$v" in WGD_BIN=*) bin="${v#WGD_BIN=}" ;; esac
        ip netns exec "$NS_A" env "$v" "$bin" up "$TMP/wgd-a.conf" 2>"$TMP/a.log" &
        A=$!
        ip netns exec "$NS_B" env "$v" "$bin" up "$TMP/wgd-b.conf" 2>"$TMP/b.log" &
        B=$!
        for _ in $(seq 50); do
            if ip -n "$NS_A" link show wgd-a >/dev/null 2>&1 && ip -n "$NS_B" link show wgd-b >/dev/null 2>&1; then break; fi
            sleep 0.1
        done
        sleep 0.3
        ip netns exec "$NS_B" ping -c 1 -W 3 198.19.0.1 >/dev/null 2>&1 || true
        a0=$(cpu "$A"); b0=$(cpu "$B")
        P=
        if [ -n "$PERF_DIR" ]; then
            data="$TMP/perf.data"
            perf record -q -F 499 -p "$A,$B" -o "$data" -- sleep "$T" >/dev/null 2>&1 &
            P=$!
            PIDS+=("$P")
        fi
        out=$(timeout $((T + 15)) ip netns exec "$NS_B" iperf3 -c 198.19.0.1 -t "$T" -J 2>/dev/null || true)
        a1=$(cpu "$A"); b1=$(cpu "$B")
        ha=$(hwm "$A"); hb=$(hwm "$B")
        if [ -n "$P" ]; then
            wait "$P" || true
            perf report -i "$data" --no-children --sort symbol --percent-limit 0.5 --stdio \
                >"$PERF_DIR/${v//[^A-Za-z0-9_=]/_}-$r.txt" 2>/dev/null || true
        fi
        python3 - "$v" "$r" "$out" $((a1 - a0 + b1 - b0)) "$hz" "$ha" "$hb" <<'EOF'
import json, sys
v, r, out, ticks, hz = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
hwm = f"{sys.argv[6]},{sys.argv[7]}"
try:
    s = json.loads(out)["end"]["sum_received"]
    gb = s["bytes"] / 1e9
    print(f"{v},{r},{s['bits_per_second'] / 1e9:.3f},{ticks / hz / gb:.2f},{hwm}")
except Exception as e:
    print(f"{v},{r},missing,missing,{hwm}  # {e}")
EOF
        kill "$A" "$B" 2>/dev/null || true
        wait "$A" "$B" 2>/dev/null || true
    done
done
