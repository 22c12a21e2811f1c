#!/usr/bin/env python3
"""Turns the raw files of scripts/bench.sh into results.json, results.csv, a markdown section
(between markers in the --out file, so reruns replace it) and, if matplotlib is importable and
--plot is given, a bar chart of the medians.

Raw layout (written by bench.sh in --raw DIR):
  meta.tsv                      key<TAB>value (command, date, machine, versions, skip_IMPL)
  cpu.tsv                       round impl test cpu_a_ticks cpu_b_ticks wall_s rc
  rR_IMPL_TEST.json             iperf3 --json client output (TEST: tcp1_fwd, tcp1_rev, tcp4_fwd,
                                tcp4_rev, udp64, udpN)
  rR_IMPL_ping_idle.txt         ping output, idle tunnel
  rR_IMPL_ping_load.txt         ping output during tcp1_fwd
Anything missing or unparsable becomes a missing value (None), never an error.
Standard library only, except matplotlib for the chart.
"""

import argparse
import csv
import json
import math
import os
import re
import statistics
import sys

BEGIN = "<!-- BEGIN scripts/bench.sh results (generated: rerun the script to update) -->"
END = "<!-- END scripts/bench.sh results -->"
TCP_TESTS = ["tcp1_fwd", "tcp1_rev", "tcp4_fwd", "tcp4_rev"]


def metric_defs(udp_big):
    """(key, label, unit, better, decimals)"""
    return [
        ("tcp1_fwd", "TCP, 1 stream, B→A", "Mbit/s", "higher", 0),
        ("tcp1_rev", "TCP, 1 stream, A→B (-R)", "Mbit/s", "higher", 0),
        ("tcp4_fwd", "TCP, 4 streams, B→A", "Mbit/s", "higher", 0),
        ("tcp4_rev", "TCP, 4 streams, A→B (-R)", "Mbit/s", "higher", 0),
        ("udp64_pps", "UDP 64 B payload, received", "packets/s", "higher", 0),
        ("udp64_loss", "UDP 64 B payload, loss", "%", "lower", 1),
        (f"udp{udp_big}_pps", f"UDP {udp_big} B payload, received", "packets/s", "higher", 0),
        (f"udp{udp_big}_loss", f"UDP {udp_big} B payload, loss", "%", "lower", 1),
        ("ping_idle_ms", "ping RTT, idle (median of 20)", "ms", "lower", 3),
        ("ping_idle_loss", "ping loss, idle", "%", "lower", 1),
        ("ping_load_ms", "ping RTT during TCP 1 stream B→A (median)", "ms", "lower", 3),
        ("ping_load_loss", "ping loss during TCP 1 stream", "%", "lower", 1),
        ("cpu_s_per_gb", "CPU time of both daemons per GB (TCP tests)", "s/GB", "lower", 2),
    ]


def read_meta(raw):
    meta = {}
    try:
        with open(os.path.join(raw, "meta.tsv"), encoding="utf-8") as f:
            for line in f:
                key, _, value = line.rstrip("\n").partition("\t")
                meta[key] = value
    except OSError:
        pass
    return meta


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("error"):
        return None
    return data


def num(x):
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    if math.isnan(x) or math.isinf(x):
        return None
    return float(x)


def iperf_tcp(path):
    """(received Mbit/s, received bytes) or (None, None)."""
    data = read_json(path)
    if data is None:
        return None, None
    s = data.get("end", {}).get("sum_received", {})
    bps, nbytes = num(s.get("bits_per_second")), num(s.get("bytes"))
    if bps is None or not nbytes:
        return None, None
    return bps / 1e6, nbytes


def iperf_udp(path):
    """(received packets/s, loss %) or (None, None)."""
    data = read_json(path)
    if data is None:
        return None, None
    end = data.get("end", {})
    s = end.get("sum_received") or end.get("sum") or {}
    packets, lost, secs = num(s.get("packets")), num(s.get("lost_packets")), num(s.get("seconds"))
    if packets is None or lost is None or not secs or packets <= 0:
        return None, None
    return (packets - lost) / secs, 100.0 * lost / packets


def ping(path):
    """(median RTT ms, loss %) or (None, None)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None, None
    rtts = [float(m) for m in re.findall(r"time=([0-9.]+) ms", text)]
    m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
    loss = None
    if m and int(m.group(1)) > 0:
        loss = 100.0 * (int(m.group(1)) - int(m.group(2))) / int(m.group(1))
    return (statistics.median(rtts) if rtts else None), loss


def read_cpu(raw):
    rows = {}
    try:
        with open(os.path.join(raw, "cpu.tsv"), encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                rows[(row.get("round"), row.get("impl"), row.get("test"))] = row
    except OSError:
        pass
    return rows


def to_int(s):
    try:
        return int(s)
    except (TypeError, ValueError):
        return None


def collect(raw, meta, impls, rounds, udp_big):
    cpu = read_cpu(raw)
    clk = to_int(meta.get("clk_tck")) or 100
    values = {impl: {} for impl in impls}
    for impl in impls:
        v = values[impl]
        for r in range(1, rounds + 1):
            base = os.path.join(raw, f"r{r}_{impl}_")

            def put(key, x):
                v.setdefault(key, []).append(x)

            cpu_s = 0.0
            gbytes = 0.0
            cpu_ok = impl != "veth"
            for test in TCP_TESTS:
                mbps, nbytes = iperf_tcp(base + test + ".json")
                put(test, mbps)
                row = cpu.get((str(r), impl, test), {})
                da, db = to_int(row.get("cpu_a_ticks")), to_int(row.get("cpu_b_ticks"))
                if nbytes is None or da is None or db is None or row.get("rc") != "0":
                    cpu_ok = False
                else:
                    cpu_s += (da + db) / clk
                    gbytes += nbytes / 1e9
            put("cpu_s_per_gb", cpu_s / gbytes if cpu_ok and gbytes > 0 else None)
            for size in (64, udp_big):
                pps, loss = iperf_udp(base + f"udp{size}.json")
                put(f"udp{size}_pps", pps)
                put(f"udp{size}_loss", loss)
            for kind in ("idle", "load"):
                rtt, loss = ping(base + f"ping_{kind}.txt")
                put(f"ping_{kind}_ms", rtt)
                put(f"ping_{kind}_loss", loss)
    return values


def summarize(xs):
    present = [x for x in xs if x is not None]
    if not present:
        return {"median": None, "min": None, "max": None, "n": 0, "of": len(xs)}
    return {
        "median": statistics.median(present),
        "min": min(present),
        "max": max(present),
        "n": len(present),
        "of": len(xs),
    }


def fmt(x, decimals):
    if x is None:
        return "—"
    if decimals == 0:
        return f"{x:,.0f}"
    return f"{x:.{decimals}f}"


def cell(s, decimals):
    if s["median"] is None:
        return "missing"
    text = fmt(s["median"], decimals)
    if s["of"] > 1:
        text += f" ({fmt(s['min'], decimals)}–{fmt(s['max'], decimals)})"
    if s["n"] < s["of"]:
        text += f" [{s['n']}/{s['of']}]"
    return text


def markdown(meta, impls, defs, summary, ratios, skipped, png_rel, res_rel):
    lines = [BEGIN, ""]
    lines.append(f"### Results of {meta.get('date', '?')}")
    lines.append("")
    lines.append(f"Command: `{meta.get('command', '?')}` "
                 f"({meta.get('rounds', '?')} interleaved round(s), {meta.get('duration_s', '?')} s per test).")
    lines.append("")
    lines.append(f"Machine: {meta.get('nproc', '?')} CPUs, {meta.get('cpu_model', '?')}; "
                 f"kernel {meta.get('kernel', '?')}; {meta.get('os', '?')}; "
                 f"load average before/after: {meta.get('load_before', '?')} / {meta.get('load_after', '?')}.")
    lines.append("")
    versions = [meta.get(k) for k in ("version_wgd", "version_wireguard-go", "version_boringtun",
                                      "version_gotatun", "version_iperf3", "version_ping")]
    lines.append("Versions: " + "; ".join(v for v in versions if v) + ".")
    lines.append("")
    for impl, reason in skipped.items():
        lines.append(f"- **{impl} skipped**: {reason}")
    if skipped:
        lines.append("")
    lines.append("Median over rounds (min–max); `[n/m]`: only n of m rounds gave a value. "
                 "A is the responder/server namespace, B the initiator/client.")
    lines.append("")
    lines.append("| metric | unit | better | " + " | ".join(impls) + " |")
    lines.append("|---|---|---|" + "---|" * len(impls))
    for key, label, unit, better, dec in defs:
        row = [label, unit, better] + [cell(summary[i][key], dec) for i in impls]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    others = [i for i in impls if i != "wgd"]
    if "wgd" in impls and others:
        lines.append("Ratio of medians, wgd / other (above 1 is better for wgd where higher is "
                     "better, below 1 where lower is better):")
        lines.append("")
        lines.append("| metric | better | " + " | ".join(f"wgd / {o}" for o in others) + " |")
        lines.append("|---|---|" + "---|" * len(others))
        for key, label, _unit, better, _dec in defs:
            if key.endswith("_loss"):
                continue
            row = [label, better] + [
                "—" if ratios[o][key] is None else f"{ratios[o][key]:.2f}" for o in others
            ]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    if png_rel:
        lines.append(f"![medians, min–max bars]({png_rel})")
        lines.append("")
    lines.append(f"Raw results: [{res_rel}/results.json]({res_rel}/results.json), "
                 f"[{res_rel}/results.csv]({res_rel}/results.csv).")
    lines.append("")
    lines.append(END)
    return "\n".join(lines) + "\n"


def write_section(out, section):
    try:
        with open(out, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = "# Benchmarks\n\n"
    b, e = text.find(BEGIN), text.find(END)
    if b != -1 and e != -1 and e > b:
        rest = text[e + len(END):].lstrip("\n")
        text = text[:b] + section + ("\n" + rest if rest else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)


def plot(path, impls, summary, udp_big):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report.py: matplotlib not available, no chart", file=sys.stderr)
        return False
    groups = [
        ("TCP throughput (Gbit/s)", TCP_TESTS, ["1 stream\nB→A", "1 stream\nA→B", "4 streams\nB→A", "4 streams\nA→B"], 1e-3),
        ("UDP received (kpackets/s)", ["udp64_pps", f"udp{udp_big}_pps"], ["64 B", f"{udp_big} B"], 1e-3),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [2, 1]})
    width = 0.8 / max(1, len(impls))
    for ax, (title, keys, labels, scale) in zip(axes, groups):
        for j, impl in enumerate(impls):
            xs, ys, lo, hi = [], [], [], []
            for k, key in enumerate(keys):
                s = summary[impl][key]
                if s["median"] is None:
                    continue
                xs.append(k + (j - (len(impls) - 1) / 2) * width)
                ys.append(s["median"] * scale)
                lo.append((s["median"] - s["min"]) * scale)
                hi.append((s["max"] - s["median"]) * scale)
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=impl)
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels(labels)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    fig.suptitle("wgd benchmark: medians over rounds, bars min–max")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--plot")
    args = ap.parse_args()

    meta = read_meta(args.raw)
    rounds = to_int(meta.get("rounds")) or 1
    udp_big = to_int(meta.get("udp_big_payload")) or 1392
    requested = [i for i in meta.get("impls", "").split(",") if i]
    active = [i for i in meta.get("active", "").split(",") if i]
    skipped = {i: meta[f"skip_{i}"] for i in requested if f"skip_{i}" in meta}
    impls = [i for i in requested if i in active]
    defs = metric_defs(udp_big)

    values = collect(args.raw, meta, impls, rounds, udp_big)
    summary = {i: {d[0]: summarize(values[i].get(d[0], [])) for d in defs} for i in impls}
    ratios = {}
    for other in impls:
        if other == "wgd":
            continue
        ratios[other] = {}
        for key, *_ in defs:
            a = summary.get("wgd", {}).get(key, {}).get("median")
            b = summary[other][key]["median"]
            ratios[other][key] = a / b if a is not None and b else None

    os.makedirs(args.results, exist_ok=True)
    result = {
        "meta": meta,
        "skipped": skipped,
        "metrics": [
            {"key": k, "label": label, "unit": u, "better": b} for k, label, u, b, _ in defs
        ],
        "values": values,
        "summary": summary,
        "ratios_wgd_over": ratios,
    }
    with open(os.path.join(args.results, "results.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(args.results, "results.csv"), "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["round", "impl", "metric", "unit", "value"])
        for impl in impls:
            for key, _label, unit, _b, _d in defs:
                for r, x in enumerate(values[impl].get(key, []), start=1):
                    w.writerow([r, impl, key, unit, "" if x is None else f"{x:.6g}"])

    png_rel = None
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if args.plot and impls and plot(args.plot, impls, summary, udp_big):
        png_rel = os.path.relpath(os.path.abspath(args.plot), out_dir)
    res_rel = os.path.relpath(os.path.abspath(args.results), out_dir)
    write_section(args.out, markdown(meta, impls, defs, summary, ratios, skipped, png_rel, res_rel))

    # A short summary on stdout for the person running the script.
    for key, label, unit, _b, dec in defs:
        print(f"{label:48s} " + "  ".join(f"{i}={cell(summary[i][key], dec)}" for i in impls) + f"  {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
