#!/usr/bin/env python3
"""Judges a scripts/soak.sh run from its raw files and writes the whole docs/soak.md.

Raw files (in --raw DIR): meta.tsv, resources.tsv, wgshow.tsv, events.tsv, ping.txt
(ping -D -O), iperf.tsv and iperf-N.json, wgd-a.log and wgd-b.log. Times in the .tsv files are
seconds since the start of traffic (meta t0, Unix time). Exit status 0 = PASS, 1 = FAIL.
Standard library only.
"""

import argparse
import csv
import json
import os
import re
import sys

RSS_LIMIT_KIB = 2048  # RSS growth allowed from the baseline sample to the last one
LOSS_LIMIT_PCT = 1.0  # ping loss allowed outside the event windows
ROAM_WINDOW = (-1, 15)  # seconds around a roam excluded from the loss figure
RESTART_WINDOW = (-1, 30)  # seconds from SIGTERM to (restart done + 30 s)
REKEY_GAP_LIMIT = 120 + 5 + 10  # REKEY_AFTER_TIME + REKEY_TIMEOUT + slack (jitter, sampling)
BASELINE_AFTER = 50  # a process's baseline sample is its first one at least this long after start


def read_tsv(path):
    try:
        with open(path, encoding="utf-8") as f:
            return list(csv.DictReader(f, delimiter="\t"))
    except OSError:
        return []


def read_meta(raw):
    meta = {}
    try:
        with open(os.path.join(raw, "meta.tsv"), encoding="utf-8") as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("\t")
                meta[k] = v
    except OSError:
        pass
    return meta


def to_float(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def parse_ping(path, t0):
    """Returns (list of (seq, t_sent_rel or None, answered)), transmitted count)."""
    replies = {}
    transmitted = None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return [], 0
    for m in re.finditer(r"^\[([0-9.]+)\] \d+ bytes from [^:]+: icmp_seq=(\d+) .*?time=([0-9.]+) ms", text, re.M):
        ts, seq, rtt = float(m.group(1)), int(m.group(2)), float(m.group(3))
        replies.setdefault(seq, ts - rtt / 1000.0 - t0)
    m = re.search(r"(\d+) packets transmitted", text)
    if m:
        transmitted = int(m.group(1))
    unanswered_ts = {}
    for m in re.finditer(r"^\[([0-9.]+)\] no answer yet for icmp_seq=(\d+)", text, re.M):
        unanswered_ts.setdefault(int(m.group(2)), float(m.group(1)) - t0)
    if transmitted is None:
        transmitted = max(list(replies) + list(unanswered_ts) + [0])
    answered_seqs = sorted(replies)
    out = []
    for seq in range(1, transmitted + 1):
        if seq in replies:
            out.append((seq, replies[seq], True))
            continue
        # Estimate the send time from the nearest answered packets (0.2 s apart per seq).
        t = None
        lower = [s for s in answered_seqs if s < seq]
        upper = [s for s in answered_seqs if s > seq]
        if lower and upper:
            a, b = lower[-1], upper[0]
            t = replies[a] + (seq - a) * (replies[b] - replies[a]) / (b - a)
        elif lower:
            t = replies[lower[-1]] + (seq - lower[-1]) * 0.2
        elif upper:
            t = replies[upper[0]] - (upper[0] - seq) * 0.2
        elif seq in unanswered_ts:
            t = unanswered_ts[seq] - 1.0
        out.append((seq, t, False))
    return out, transmitted


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    raw = args.raw
    meta = read_meta(raw)
    t0 = to_float(meta.get("t0")) or 0.0
    t_end = to_float(meta.get("t_end")) or 0.0
    fails = []
    notes = []

    # --- events and windows ---
    events = read_tsv(os.path.join(raw, "events.tsv"))
    windows = []
    roams = []
    restart_begin = restart_done = restarted_pid = None
    for e in events:
        t = to_float(e.get("t"))
        kind = e.get("event", "")
        if t is None:
            continue
        if kind == "roam":
            windows.append(("roam " + e.get("detail", ""), t + ROAM_WINDOW[0], t + ROAM_WINDOW[1]))
            roams.append((t, e.get("detail", "")))
        elif kind == "restart_begin":
            restart_begin = t
        elif kind == "restart_done":
            restart_done = t
            m = re.search(r"PID (\d+)", e.get("detail", ""))
            restarted_pid = m.group(1) if m else None
        elif kind in ("roam_failed", "restart_failed", "restart_stuck"):
            fails.append(f"event {kind}: {e.get('detail', '')}")
        elif kind == "restart_exit" and not e.get("detail", "").endswith("status 0"):
            fails.append(f"A's exit on SIGTERM during the restart: {e.get('detail', '')}")
    if restart_begin is not None:
        end = (restart_done if restart_done is not None else restart_begin) + RESTART_WINDOW[1]
        windows.append(("restart of A", restart_begin + RESTART_WINDOW[0], end))
    expected_roams = 2
    if len(roams) < expected_roams:
        fails.append(f"only {len(roams)} of {expected_roams} roams happened")
    if restart_done is None:
        fails.append("the restart of A did not complete")

    # --- ping ---
    pings, transmitted = parse_ping(os.path.join(raw, "ping.txt"), t0)

    def in_window(t):
        return t is not None and any(lo <= t <= hi for _, lo, hi in windows)

    outside = [p for p in pings if not in_window(p[1])]
    lost_out = sum(1 for p in outside if not p[2])
    lost_all = sum(1 for p in pings if not p[2])
    loss_out = 100.0 * lost_out / len(outside) if outside else None
    loss_all = 100.0 * lost_all / len(pings) if pings else None
    if not pings:
        fails.append("no ping results")
    elif loss_out is None or loss_out >= LOSS_LIMIT_PCT:
        fails.append(f"ping loss outside the event windows {loss_out:.2f}% (limit {LOSS_LIMIT_PCT}%)")
    # Recovery after each event: the first answered ping sent after it.
    event_rows = []
    for name, lo, hi in windows:
        start = lo - ROAM_WINDOW[0] if name.startswith("roam") else lo - RESTART_WINDOW[0]
        # Outage: from the event to the first answered ping after the last lost one in the
        # window (0 if nothing was lost).
        lost = [p for p in pings if p[1] is not None and lo <= p[1] <= hi and not p[2]]
        if lost:
            last_lost = lost[-1][1]
            first_ok = next((p for p in pings if p[1] is not None and p[1] > last_lost and p[2]), None)
            outage = None if first_ok is None else max(0.0, first_ok[1] - start)
            if first_ok is None or first_ok[1] > hi:
                fails.append(f"traffic did not resume within the window after {name}")
        else:
            outage = 0.0
        event_rows.append((name, start, outage, len(lost)))

    # --- endpoint updates at A after each roam ---
    wgshow = read_tsv(os.path.join(raw, "wgshow.tsv"))
    endpoint_rows = []
    for t, detail in roams:
        new = detail.split("->")[-1].strip()
        seen = next((to_float(r["t"]) for r in wgshow
                     if r.get("side") == "A" and to_float(r.get("t")) is not None
                     and to_float(r["t"]) >= t and (r.get("endpoint") or "").startswith(new + ":")), None)
        endpoint_rows.append((detail, t, seen))
        if seen is None:
            fails.append(f"A never showed B's new endpoint {new} after the roam")

    # --- rekeys (B is the initiator) ---
    hs = sorted({int(r["latest_handshake"]) for r in wgshow
                 if r.get("side") == "B" and (r.get("latest_handshake") or "0").isdigit()
                 and int(r["latest_handshake"]) > 0})
    hs_rel = [h - t0 for h in hs]
    if not hs_rel:
        fails.append("no handshake seen at B")
    else:
        bounds = hs_rel + [t_end]
        gaps = [b - a for a, b in zip(bounds, bounds[1:])]
        worst = max(gaps) if gaps else 0
        if worst > REKEY_GAP_LIMIT:
            fails.append(f"a rekey was missed: {worst:.0f} s without a new handshake at B "
                         f"(limit {REKEY_GAP_LIMIT} s)")

    # Natural rekeys: handshakes after the first one, outside the restart window (the
    # restart forces a handshake of its own).
    restart_win = next(((lo, hi) for name, lo, hi in windows if name == "restart of A"), None)
    natural = [h for h in hs_rel[1:] if not (restart_win and restart_win[0] <= h <= restart_win[1])]

    # --- resources ---
    res = read_tsv(os.path.join(raw, "resources.tsv"))
    by_pid = {}
    for r in res:
        by_pid.setdefault((r.get("side"), r.get("pid")), []).append(r)
    res_rows = []
    for (side, pid), rows in by_pid.items():
        started = restart_done if (side == "A" and pid == restarted_pid) else 0.0
        good = [r for r in rows if (r.get("rss_kb") or "").isdigit()]
        base = next((r for r in good if to_float(r["t"]) >= started + BASELINE_AFTER), None)
        last = good[-1] if good else None
        if base is None or last is None or base is last:
            res_rows.append((side, pid, None, None, None, None, "too few samples to judge"))
            continue
        growth = int(last["rss_kb"]) - int(base["rss_kb"])
        span = [int(r["fds"]) for r in good if to_float(r["t"]) >= to_float(base["t"])]
        fd_flat = max(span) == min(span)
        verdict = []
        if growth > RSS_LIMIT_KIB:
            fails.append(f"{side} (PID {pid}) RSS grew {growth} KiB from t={base['t']} s to t={last['t']} s "
                         f"(limit {RSS_LIMIT_KIB} KiB)")
            verdict.append("RSS grew")
        if not fd_flat:
            fails.append(f"{side} (PID {pid}) open fds not flat: {min(span)}..{max(span)}")
            verdict.append("fds changed")
        res_rows.append((side, pid, base["t"], last["t"], growth, f"{min(span)}..{max(span)}",
                         ", ".join(verdict) or "ok"))

    # --- logs and exits ---
    for side in ("a", "b"):
        path = os.path.join(raw, f"wgd-{side}.log")
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            fails.append(f"no log for {side.upper()}")
            continue
        if "panicked" in text or "RUST_BACKTRACE" in text:
            fails.append(f"panic in wgd {side.upper()}'s log")
        n_err = len(re.findall(r"\bERROR\b", text))
        if n_err:
            notes.append(f"{n_err} ERROR lines in wgd {side.upper()}'s log")
    for side in ("A", "B"):
        st = meta.get(f"exit_{side}")
        if st != "0":
            fails.append(f"wgd {side} at the end: exit status {st} after SIGTERM")

    # --- traffic ---
    iperf = read_tsv(os.path.join(raw, "iperf.tsv"))
    runs = failed = 0
    nbytes = 0.0
    for r in iperf:
        runs += 1
        if r.get("rc") != "0":
            failed += 1
    for name in sorted(os.listdir(raw)) if os.path.isdir(raw) else []:
        if re.fullmatch(r"iperf-\d+\.json", name):
            try:
                with open(os.path.join(raw, name), encoding="utf-8") as f:
                    d = json.load(f)
                nbytes += float(d.get("end", {}).get("sum_received", {}).get("bytes") or 0)
            except (OSError, ValueError, AttributeError, TypeError):
                pass

    verdict = "PASS" if not fails else "FAIL"
    md = render(meta, verdict, fails, notes, res, res_rows, event_rows, endpoint_rows, hs_rel, natural,
                pings, loss_all, loss_out, lost_out, len(outside), windows, runs, failed, nbytes)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(md)
    print(f"soak: {verdict}")
    for reason in fails:
        print(f"  - {reason}")
    print(f"  ping loss outside windows: {'—' if loss_out is None else f'{loss_out:.2f}%'} "
          f"({lost_out}/{len(outside)}); overall {'—' if loss_all is None else f'{loss_all:.2f}%'}")
    print(f"  handshakes at B: {len(hs_rel)} at t = " + ", ".join(f"{h:.0f}" for h in hs_rel)
          + f" s ({len(natural)} natural rekeys)")
    for row in res_rows:
        print(f"  {row[0]} PID {row[1]}: RSS growth {row[4]} KiB (t={row[2]}..{row[3]}), fds {row[5]}: {row[6]}")
    print(f"  written: {args.out}")
    return 0 if not fails else 1


def render(meta, verdict, fails, notes, res, res_rows, event_rows, endpoint_rows, hs_rel, natural, pings,
           loss_all, loss_out, lost_out, n_out, windows, runs, failed, nbytes):
    L = []
    L.append("# Soak test")
    L.append("")
    L.append("Generated by `scripts/soak.sh` (do not edit by hand; rerun the script). It is a bounded "
             "soak, not part of `cargo test`.")
    L.append("")
    L.append("## Method")
    L.append("")
    L.append("Two `wgd -f IFACE` daemons in two network namespaces joined by a veth pair (A, the "
             "responder, underlay 198.18.0.1; B, the initiator, underlay 198.18.0.2; tunnel "
             "198.19.0.1 ↔ 198.19.0.2, MTU 1420), configured with `wg setconf`, logs (`-v`) to files. "
             "For the whole run:")
    L.append("")
    L.append("- steady traffic B → A through the tunnel: iperf3 TCP at 50 Mbit/s in 30 s runs, back to back;")
    L.append("- a ping B → A through the tunnel every 0.2 s;")
    L.append("- `wg show latest-handshakes` and `endpoints` of both ends every 5 s (natural rekeys: "
             "REKEY_AFTER_TIME = 120 s);")
    L.append("- each daemon's VmRSS, open fds (`/proc/PID/fd`) and threads every 60 s.")
    L.append("")
    L.append("Events: B's underlay address changes (roaming; the new address is added, then the old "
             "one removed) at 30 % and 60 % of the run; A is stopped with SIGTERM, started again and "
             "reconfigured at 50 %.")
    L.append("")
    L.append("PASS needs all of: "
             f"each daemon's RSS at the end within +{RSS_LIMIT_KIB // 1024} MiB of its baseline (its first "
             f"sample ≥ {BASELINE_AFTER} s after it started: minute 1, or the first minute after the restart); "
             "open fds unchanged from that baseline on; "
             f"ping loss below {LOSS_LIMIT_PCT:g} % outside the event windows (roam: {ROAM_WINDOW[0]}..+{ROAM_WINDOW[1]} s; "
             f"restart: from SIGTERM to {RESTART_WINDOW[1]} s after the restart completed) and replies again "
             "within each window; A showing B's new endpoint after each roam; no handshake gap at B longer "
             f"than {REKEY_GAP_LIMIT} s (REKEY_AFTER_TIME + REKEY_TIMEOUT + slack), up to the end; no panic "
             "in the logs; exit status 0 on every SIGTERM.")
    L.append("")
    L.append("## Last run")
    L.append("")
    L.append(f"Command: `{meta.get('command', '?')}`; started {meta.get('date', '?')}; "
             f"{meta.get('version_wgd', '?')}; {meta.get('version_iperf3', '?')}.")
    L.append("")
    L.append(f"Machine: {meta.get('nproc', '?')} CPUs, {meta.get('cpu_model', '?')}, {meta.get('kernel', '?')}; "
             f"load average before/after {meta.get('load_before', '?')} / {meta.get('load_after', '?')}.")
    L.append("")
    L.append(f"**Result: {verdict}**")
    L.append("")
    for r in fails:
        L.append(f"- FAIL: {r}")
    for n in notes:
        L.append(f"- note: {n}")
    if fails or notes:
        L.append("")
    L.append("### Resources (every 60 s)")
    L.append("")
    L.append("| t (s) | side | PID | VmRSS (KiB) | open fds | threads |")
    L.append("|---|---|---|---|---|---|")
    for r in res:
        L.append(f"| {r.get('t')} | {r.get('side')} | {r.get('pid')} | {r.get('rss_kb') or '—'} | "
                 f"{r.get('fds') or '—'} | {r.get('threads') or '—'} |")
    L.append("")
    L.append("| side | PID | baseline t (s) | last t (s) | RSS growth (KiB) | fds | verdict |")
    L.append("|---|---|---|---|---|---|---|")
    for row in res_rows:
        L.append("| " + " | ".join("—" if x is None else str(x) for x in row) + " |")
    L.append("")
    L.append("### Events and recovery")
    L.append("")
    L.append("| event | at t (s) | outage (s): event to the first reply after the last loss | pings lost in the window |")
    L.append("|---|---|---|---|")
    for name, start, gap, lost in event_rows:
        L.append(f"| {name} | {start:.0f} | {'never' if gap is None else f'{gap:.1f}'} | {lost} |")
    L.append("")
    for detail, t, seen in endpoint_rows:
        L.append(f"- roam {detail} at t={t:.0f} s: A showed the new endpoint "
                 + ("never" if seen is None else f"at t={seen:.0f} s (sampled every 5 s)"))
    L.append("")
    L.append("### Ping and traffic")
    L.append("")
    lo = "—" if loss_out is None else f"{loss_out:.2f} %"
    la = "—" if loss_all is None else f"{loss_all:.2f} %"
    L.append(f"- pings sent: {len(pings)}; loss overall {la}; outside the event windows {lo} "
             f"({lost_out} of {n_out})")
    L.append(f"- iperf3 runs: {runs}, failed: {failed}; received through the tunnel: {nbytes / 1e9:.2f} GB")
    L.append(f"- handshakes seen at B: {len(hs_rel)}, at t = " + ", ".join(f"{h:.0f}" for h in hs_rel)
             + f" s; natural rekeys (not the first handshake, not in the restart window): {len(natural)}")
    L.append("")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
