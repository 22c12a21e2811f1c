#!/usr/bin/env bash
# Builds wgd and shows it working on the shipped example configs: two wgd instances in two
# network namespaces joined by a veth pair (underlay 198.18.0.0/24), configured from
# configs/wgd-a.conf and configs/wgd-b.conf; a ping over IPv4 and IPv6 inside the tunnel and a
# short TCP transfer (iperf3, if installed). Needs root, iproute2 and iputils-ping.
# Cleans up its namespaces and the processes it started, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "demo.sh needs root (network namespaces and TUN devices): sudo $0" >&2
    exit 1
fi
for tool in ip ping; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install iproute2 iputils-ping)" >&2; exit 1; }
done

echo "== building wgd (release)"
cargo build --release --quiet
WGD="$PWD/target/release/wgd"

NS_A="wgd-demo-a-$$"
NS_B="wgd-demo-b-$$"
PIDS=()
TMP=$(mktemp -d)
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    ip netns del "$NS_A" 2>/dev/null || true
    ip netns del "$NS_B" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

echo "== namespaces $NS_A and $NS_B over veth (198.18.0.1 <-> 198.18.0.2)"
ip netns add "$NS_A"
ip netns add "$NS_B"
ip link add "vdemoa$$" netns "$NS_A" type veth peer name "vdemob$$" netns "$NS_B"
ip -n "$NS_A" addr add 198.18.0.1/24 dev "vdemoa$$"
ip -n "$NS_B" addr add 198.18.0.2/24 dev "vdemob$$"
for ns in "$NS_A" "$NS_B"; do
    ip -n "$ns" link set lo up
done
ip -n "$NS_A" link set "vdemoa$$" up
ip -n "$NS_B" link set "vdemob$$" up

# The interface is named after the config file: wgd-a and wgd-b.
cp configs/wgd-a.conf configs/wgd-b.conf "$TMP/"
echo "== wgd up configs/wgd-a.conf (in $NS_A), wgd up configs/wgd-b.conf (in $NS_B)"
ip netns exec "$NS_A" "$WGD" -v up "$TMP/wgd-a.conf" 2>"$TMP/a.log" &
PIDS+=($!)
ip netns exec "$NS_B" "$WGD" -v up "$TMP/wgd-b.conf" 2>"$TMP/b.log" &
PIDS+=($!)
for _ in $(seq 50); do
    if ip -n "$NS_A" link show wgd-a >/dev/null 2>&1 && ip -n "$NS_B" link show wgd-b >/dev/null 2>&1; then
        break
    fi
    sleep 0.1
done
ip -n "$NS_B" addr show wgd-b

echo "== ping through the tunnel (IPv4 and IPv6)"
ip netns exec "$NS_B" ping -c 3 -W 2 198.19.0.1
ip netns exec "$NS_B" ping -c 3 -W 2 2001:db8:1::1

if command -v iperf3 >/dev/null; then
    echo "== 3 s TCP transfer through the tunnel (iperf3)"
    ip netns exec "$NS_A" iperf3 -s -1 -B 198.19.0.1 >/dev/null &
    PIDS+=($!)
    sleep 0.5
    ip netns exec "$NS_B" iperf3 -c 198.19.0.1 -t 3 | tail -n 4
fi

echo "== logs of wgd-a"
cat "$TMP/a.log"
echo "== demo OK"
