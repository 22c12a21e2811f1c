#!/usr/bin/env python3
"""Judges a scripts/soak.sh run (a wgd hub with N spokes) from its raw files and writes the whole
docs/soak.md.

Raw files (in --raw DIR): meta.tsv, spokes.tsv, schedule.tsv, events.tsv, pings.tsv, iperf.tsv and
iperf-N.json, wgdump.tsv (the hub's `wg show dump` every 10 s), resources.tsv, machine.tsv,
exits.tsv, hub.log and spoke-N.log. Times in the .tsv files are seconds since the start of the
run (meta t0, Unix time). Exit status 0 = PASS, 1 = FAIL. Standard library only.
"""

import argparse
import csv
import glob
import json
import os
import re
import statistics
import sys

RSS_LIMIT_KIB = 4096  # RSS growth allowed from minute 1 to the end (hub and the sampled spokes)
REKEY_AFTER_TIME = 120
REJECT_AFTER_TIME = 180
REKEY_TIMEOUT = 5
KEEPALIVE = 25  # the spokes' PersistentKeepalive
SLACK = 10
# How long a session may go without a new handshake depends on who initiated it (only the
# initiator rekeys on time). A spoke that initiated rekeys on the first packet it sends once the
# session is REKEY_AFTER_TIME old; idle, it sends only its persistent keepalives, 25 s after the
# last packet either way, and the hub's passive keepalives (KEEPALIVE_TIMEOUT after data it
# received, then one more) count: that packet comes by 120 + 2 * 10 + 25 = 165 s, and a lost
# initiation is retried after REKEY_TIMEOUT: 170 s, plus slack 10: 180 s = REJECT_AFTER_TIME, the
# session must be rekeyed before it expires. (Under steady traffic the bound is REKEY_AFTER_TIME +
# REKEY_TIMEOUT + SLACK = 135 s; the gaps over that are counted.) A session the hub initiated (its
# 15-s new-handshake timer: it sent data and heard nothing back, e.g. while its address was gone)
# is rekeyed by the hub when a packet arrives on it after REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT -
# REKEY_TIMEOUT = 165 s, or, when no keepalive lands in 165..180 s, by the spoke on its first
# packet after the session expired: REJECT_AFTER_TIME + KEEPALIVE + REKEY_TIMEOUT + SLACK = 220 s.
# As in the kernel.
GAP_LIMIT = REJECT_AFTER_TIME  # 180 s: the spoke initiated
GAP_LIMIT_HUB = REJECT_AFTER_TIME + KEEPALIVE + REKEY_TIMEOUT + SLACK  # 220 s: the hub initiated
GAP_TRAFFIC = REKEY_AFTER_TIME + REKEY_TIMEOUT + SLACK  # 135 s
# Event windows (seconds before the event, after its end) in which a spoke's losses are excused.
WIN_BEFORE = 1
WIN_SHORT = 15  # a roam, an AllowedIPs move
WIN_AFTER = 30  # after a restart, a re-add, the hub's address back, a veth up
ROAM_SEEN_LIMIT = 45  # the hub shows a roamed spoke's new endpoint (keepalive 25 s + sampling 10 s)
RESUME_LIMIT = 60  # traffic from a spoke reaches the hub again after a fault ends


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


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def inum(x):
    try:
        return int(x)
    except (TypeError, ValueError):
        return None


def mib(kib):
    return f"{kib / 1024:.1f}"


class Windows:
    """Event windows per spoke (None = every spoke)."""

    def __init__(self):
        self.w = []  # (spoke or None, lo, hi, name)

    def add(self, spoke, lo, hi, name):
        self.w.append((spoke, lo, hi, name))

    def of(self, spoke):
        return [x for x in self.w if x[0] is None or x[0] == spoke]

    def overlaps(self, spoke, a, b):
        return any(lo <= b and a <= hi for _, lo, hi, _ in self.of(spoke))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    raw = args.raw
    meta = read_meta(raw)
    t0 = num(meta.get("t0")) or 0.0
    t_end = num(meta.get("t_end")) or 0.0
    minutes = inum(meta.get("minutes")) or 0
    n = inum(meta.get("peers")) or 0
    fails, notes = [], []
    R = {"meta": meta, "fails": fails, "notes": notes}

    spokes = read_tsv(os.path.join(raw, "spokes.tsv"))
    key_of = {int(s["spoke"]): s["public_key"] for s in spokes}
    spoke_of = {v: k for k, v in key_of.items()}

    # --- events and their windows ---
    events = read_tsv(os.path.join(raw, "events.tsv"))
    for e in events:
        e["t"] = num(e.get("t"))
        e["s"] = inum(e.get("spoke"))
    W = Windows()
    open_begin = {}
    ev_rows = []  # (t, kind, spoke, detail, outcome)
    counts = {}
    icmp_total = 0
    for e in events:
        t, kind, s, detail = e["t"], e.get("event", ""), e["s"], e.get("detail", "")
        if t is None:
            continue
        counts[kind] = counts.get(kind, 0) + 1
        if kind.endswith("_failed"):
            fails.append(f"event {kind} at t={t:.0f} s{'' if s is None else f' (spoke {s})'}: {detail}")
        elif kind.endswith("_skipped"):
            notes.append(f"event {kind} at t={t:.0f} s: {detail}")
        if kind == "sighup_move" or kind == "roam":
            W.add(s, t - WIN_BEFORE, t + WIN_SHORT, f"{kind} {s}")
        elif kind in ("sighup_remove", "restart_begin", "link_down", "hubaddr_del"):
            open_begin[(kind, s)] = t
        elif kind in ("sighup_readd", "restart_done", "restart_failed", "link_up", "hubaddr_add"):
            begin = {"sighup_readd": "sighup_remove", "restart_done": "restart_begin",
                     "restart_failed": "restart_begin", "link_up": "link_down",
                     "hubaddr_add": "hubaddr_del"}[kind]
            b = open_begin.pop((begin, s), None)
            if b is not None:
                W.add(s, b - WIN_BEFORE, t + WIN_AFTER, f"{begin} {s}")
        if kind == "restart_exit" and detail != "exit status 0":
            fails.append(f"spoke {s} on SIGTERM (restart at t={t:.0f} s): {detail}")
        if kind == "restart_icmp":
            m = re.search(r"\+(-?\d+)", detail)
            k = int(m.group(1)) if m else 0
            icmp_total += max(k, 0)
            if k <= 0:
                fails.append(f"restart of spoke {s} at t={t:.0f} s: no ICMP port unreachable reached the hub "
                             "(the fault was not injected)")
    for (begin, s), b in open_begin.items():
        W.add(s, b - WIN_BEFORE, t_end + 1, f"{begin} {s} (open at the end)")
        if begin != "sighup_remove":
            fails.append(f"{begin} of {'every spoke' if s is None else f'spoke {s}'} at t={b:.0f} s never ended")
    R["counts"] = counts
    R["icmp_total"] = icmp_total
    sched = read_tsv(os.path.join(raw, "schedule.tsv"))
    R["schedule"] = sched

    # --- the hub's view every 10 s ---
    dump = read_tsv(os.path.join(raw, "wgdump.tsv"))
    per = {}  # spoke -> list of (t, endpoint, allowed, hs_rel or None, rx)
    tx_of = {}  # (spoke, t) -> tx
    sample_ts = sorted({num(r["t"]) for r in dump if num(r.get("t")) is not None})
    for r in dump:
        s = spoke_of.get(r.get("public_key"))
        t = num(r.get("t"))
        if s is None or t is None:
            continue
        hs = inum(r.get("latest_handshake")) or 0
        per.setdefault(s, []).append((t, r.get("endpoint", ""), r.get("allowed_ips", ""),
                                      hs - t0 if hs > 0 else None, inum(r.get("rx")) or 0))
        tx_of[(s, t)] = inum(r.get("tx")) or 0
    R["dump_samples"] = len(sample_ts)

    # Who initiated each handshake, from the hub's byte counters over the 10 s in which its time
    # changed: transport messages are multiples of 16 bytes, an initiation is 148 (4 mod 16) and a
    # response 92 (12 mod 16). Sent 4 and received 12: the hub initiated; the reverse: the spoke.
    # Anything else (retries, counters reset by a re-add): unknown, judged with the longer bound.
    who = {}  # (spoke, handshake time) -> "spoke" | "hub" | "unknown"
    for s, rows in per.items():
        for prev, cur in zip(rows, rows[1:]):
            if cur[3] is None or cur[3] == prev[3]:
                continue
            drx, dtx = cur[4] - prev[4], tx_of[(s, cur[0])] - tx_of[(s, prev[0])]
            if drx < 0 or dtx < 0:
                c = "unknown"
            elif (dtx % 16, drx % 16) == (4, 12):
                c = "hub"
            elif (dtx % 16, drx % 16) == (12, 4):
                c = "spoke"
            else:
                c = "unknown"
            who.setdefault((s, cur[3]), c)
        if rows and rows[0][3] is not None:
            who.setdefault((s, rows[0][3]), "spoke")  # at set-up: the hub has no endpoint yet

    # Handshakes and gaps per spoke.
    gaps_all, gaps_excused, over_traffic, natural = [], [], [], 0
    init_count = {"spoke": 0, "hub": 0, "unknown": 0}
    handshakes_total = 0
    stuck = []
    for s in range(1, n + 1):
        rows = per.get(s, [])
        hs = sorted({h for _, _, _, h, _ in rows if h is not None})
        handshakes_total += len(hs)
        if not hs:
            fails.append(f"spoke {s}: no handshake ever seen at the hub")
            continue
        # Natural rekeys: handshakes after the first, outside this spoke's windows.
        natural += sum(1 for h in hs[1:] if not W.overlaps(s, h, h))
        for h in hs:
            init_count[who.get((s, h), "unknown")] += 1
        bounds = hs + [t_end]
        for a, b in zip(bounds, bounds[1:]):
            g = b - a
            c = who.get((s, a), "unknown")
            limit = GAP_LIMIT if c == "spoke" else GAP_LIMIT_HUB
            wins = [w for w in W.of(s) if w[1] <= b and a <= w[2]]
            excused = bool(wins) and b <= max(w[2] for w in wins) + limit
            if excused:
                gaps_excused.append((s, a, b))
                continue
            gaps_all.append((s, a, b, g, c))
            if g > limit:
                stuck.append((s, a, b, g, c, limit))
            elif g > GAP_TRAFFIC:
                over_traffic.append((s, a, b, g, c))
    for s, a, b, g, c, limit in stuck[:20]:
        fails.append(f"spoke {s}: {g:.0f} s without a handshake at the hub (t={a:.0f}..{b:.0f} s; the "
                     f"{c} initiated the session; limit {limit} s)")
    if len(stuck) > 20:
        fails.append(f"... and {len(stuck) - 20} more stuck sessions")
    closed = [g for _, a, b, g, c in gaps_all if b < t_end]
    by_class = {}
    for _, a, b, g, c in gaps_all:
        if b < t_end:
            by_class.setdefault(c, []).append(g)
    # Where the hub started initiating: its handshakes that do not follow one of its own.
    hub_origins = []
    for s in range(1, n + 1):
        hs = sorted({h for _, _, _, h, _ in per.get(s, []) if h is not None})
        for prev, h in zip([None] + hs, hs):
            if who.get((s, h)) == "hub" and (prev is None or who.get((s, prev)) != "hub"):
                hub_origins.append((h, s))
    R["hs"] = {
        "total": handshakes_total, "natural": natural,
        "gap_max": max(closed) if closed else None,
        "gap_median": statistics.median(closed) if closed else None,
        "gap_p95": sorted(closed)[int(0.95 * (len(closed) - 1))] if closed else None,
        "gaps": len(closed), "over_traffic": over_traffic, "stuck": stuck, "excused": len(gaps_excused),
        "hist": histogram(closed), "init": init_count,
        "by_class": {c: (len(v), max(v), sum(1 for g in v if g > GAP_TRAFFIC)) for c, v in by_class.items()},
        "hub_origins": sorted(hub_origins),
    }

    # --- events: what the hub showed afterwards ---
    def first_sample(s, t_from, pred):
        for t, ep, al, h, rx in per.get(s, []):
            if t >= t_from and pred(t, ep, al, h, rx):
                return t
        return None

    def rx_at(s, t):
        best = None
        for tt, ep, al, h, rx in per.get(s, []):
            if tt <= t:
                best = rx
        return best

    for e in events:
        t, kind, s, detail = e["t"], e.get("event", ""), e["s"], e.get("detail", "")
        if t is None:
            continue
        outcome = ""
        if kind == "roam":
            new = detail.split("->")[-1].strip()
            seen = first_sample(s, t, lambda tt, ep, al, h, rx: ep.startswith(new + ":"))
            outcome = "hub never showed the new endpoint" if seen is None else \
                f"new endpoint at the hub by t={seen:.0f} s (+{seen - t:.0f} s)"
            if seen is None or seen - t > ROAM_SEEN_LIMIT:
                fails.append(f"roam of spoke {s} at t={t:.0f} s: {outcome}")
        elif kind == "restart_done":
            seen = first_sample(s, t, lambda tt, ep, al, h, rx: h is not None and h >= t - 1)
            outcome = "no new handshake at the hub" if seen is None else f"new handshake seen by t={seen:.0f} s"
            if seen is None or seen - t > RESUME_LIMIT:
                fails.append(f"restart of spoke {s}: {outcome}")
        elif kind == "sighup_readd":
            seen = first_sample(s, t, lambda tt, ep, al, h, rx: h is not None and h >= t - 1)
            outcome = "no handshake at the hub after the re-add" if seen is None else \
                f"handshake again by t={seen:.0f} s (+{seen - t:.0f} s)"
            if seen is None or seen - t > RESUME_LIMIT:
                fails.append(f"re-added spoke {s} at t={t:.0f} s: {outcome}")
        elif kind == "sighup_move":
            new = detail.split("->")[-1].strip()
            seen = first_sample(s, t, lambda tt, ep, al, h, rx: al == new)
            outcome = "hub never showed it" if seen is None else f"hub shows {new} by t={seen:.0f} s"
            if seen is None:
                fails.append(f"AllowedIPs move of spoke {s} at t={t:.0f} s: {outcome}")
        elif kind == "link_up":
            base = rx_at(s, t)
            seen = first_sample(s, t, lambda tt, ep, al, h, rx: base is not None and rx > base)
            outcome = "nothing from the spoke afterwards" if seen is None else \
                f"spoke's traffic at the hub again by t={seen:.0f} s"
            if seen is None or seen - t > RESUME_LIMIT:
                fails.append(f"veth of spoke {s} up at t={t:.0f} s: {outcome}")
        elif kind == "hubaddr_add":
            late = []
            for sp in range(1, n + 1):
                base = rx_at(sp, t)
                if base is None or any(w[0] == sp and w[1] <= t <= w[2] for w in W.w):
                    continue  # not at the hub now, or in an event of its own
                seen = first_sample(sp, t, lambda tt, ep, al, h, rx, base=base: rx > base)
                if seen is None or seen - t > RESUME_LIMIT:
                    late.append(sp)
            outcome = "traffic from every spoke again within 60 s" if not late else \
                f"no traffic within {RESUME_LIMIT} s from spokes {late[:10]}"
            if late:
                fails.append(f"hub address back at t={t:.0f} s: {outcome}")
        elif kind == "restart_exit" or kind == "restart_icmp":
            outcome = detail
        ev_rows.append((t, kind, s, detail, outcome))
    R["ev_rows"] = ev_rows

    # SIGHUPs: one "reloaded" log line each, no failed reload.
    hub_log = read_text(os.path.join(raw, "hub.log"))
    reloaded = len(re.findall(r"SIGHUP: reloaded", hub_log))
    n_hup = counts.get("sighup", 0)
    if reloaded != n_hup:
        fails.append(f"{n_hup} SIGHUPs sent, {reloaded} 'SIGHUP: reloaded' lines in the hub's log")
    if "reload failed" in hub_log:
        fails.append("a SIGHUP reload failed (hub log)")
    R["reloaded"] = reloaded

    # --- pings ---
    pings = read_tsv(os.path.join(raw, "pings.tsv"))
    p_out = p_out_bad = p_in = p_in_bad = 0
    sent = recv = 0
    bad_list = []
    rounds = set()
    for p in pings:
        t, s = num(p.get("t")), inum(p.get("spoke"))
        tx, rx = inum(p.get("sent")) or 0, inum(p.get("received")) or 0
        if t is None or s is None:
            continue
        rounds.add(t)
        sent += tx
        recv += rx
        ok = tx >= 3 and rx == tx
        if W.overlaps(s, t, t + 5):
            p_in += 1
            p_in_bad += not ok
        else:
            p_out += 1
            if not ok:
                p_out_bad += 1
                bad_list.append((t, s, tx, rx))
    for t, s, tx, rx in bad_list[:10]:
        fails.append(f"ping batch of spoke {s} at t={t:.0f} s (outside event windows): {rx} of {tx} answered")
    if len(bad_list) > 10:
        fails.append(f"... and {len(bad_list) - 10} more unanswered ping batches outside event windows")
    if not pings:
        fails.append("no ping results")
    R["ping"] = {"rounds": len(rounds), "batches": len(pings), "sent": sent, "recv": recv,
                 "out": p_out, "out_bad": p_out_bad, "in": p_in, "in_bad": p_in_bad}

    # --- iperf3 ---
    iperf = read_tsv(os.path.join(raw, "iperf.tsv"))
    i_fail_out, i_fail_in, nbytes = [], 0, 0.0
    for r in iperf:
        s, a, b = inum(r.get("spoke")), num(r.get("t_start")), num(r.get("t_end"))
        if r.get("rc") != "0":
            if s is not None and a is not None and b is not None and W.overlaps(s, a, b):
                i_fail_in += 1
            else:
                i_fail_out.append((r.get("run"), s, a, r.get("rc")))
    for f in sorted(glob.glob(os.path.join(raw, "iperf-*.json"))):
        try:
            with open(f, encoding="utf-8") as fh:
                d = json.load(fh)
            nbytes += float(d.get("end", {}).get("sum_received", {}).get("bytes") or 0)
        except (OSError, ValueError, AttributeError, TypeError):
            pass
    for run, s, a, rc in i_fail_out:
        fails.append(f"iperf3 run {run} (spoke {s}, t={a} s, outside event windows) failed: exit {rc}")
    R["iperf"] = {"runs": len(iperf), "fail_out": len(i_fail_out), "fail_in": i_fail_in, "bytes": nbytes}

    # --- resources ---
    res = read_tsv(os.path.join(raw, "resources.tsv"))
    by_who = {}
    for r in res:
        by_who.setdefault(r.get("who"), []).append(r)
    marks = [60, 60 * max(1, round(minutes / 2)), int(t_end)]
    R["marks"] = marks
    figures = {}
    for who, rows in by_who.items():
        good = [r for r in rows if (r.get("rss_kb") or "").isdigit() and num(r["t"]) >= 55]
        if len(good) < 2:
            fails.append(f"{who}: too few resource samples")
            continue
        pick = [min(good, key=lambda r: abs(num(r["t"]) - m)) for m in marks]
        figures[who] = pick
        first, last = good[0], good[-1]
        growth = int(last["rss_kb"]) - int(first["rss_kb"])
        g_anon = (inum(last.get("rss_anon_kb")) or 0) - (inum(first.get("rss_anon_kb")) or 0)
        g_file = (inum(last.get("rss_file_kb")) or 0) - (inum(first.get("rss_file_kb")) or 0)
        fds = [int(r["fds"]) for r in good]
        thr = [int(r["threads"]) for r in good]
        if growth > RSS_LIMIT_KIB:
            fails.append(f"{who} RSS grew {growth} KiB from t={first['t']} s to t={last['t']} s "
                         f"(limit {RSS_LIMIT_KIB} KiB; RssAnon {g_anon:+d}, RssFile {g_file:+d})")
        if min(fds) != max(fds):
            fails.append(f"{who} open fds not flat: {min(fds)}..{max(fds)} from minute 1 on")
        if min(thr) != max(thr):
            notes.append(f"{who} threads varied: {min(thr)}..{max(thr)}")
        if len({r["pid"] for r in good}) > 1:
            fails.append(f"{who} changed PID during the run")
        R.setdefault("res_summary", []).append(
            (who, first["t"], int(first["rss_kb"]), last["t"], int(last["rss_kb"]), growth,
             f"{min(fds)}..{max(fds)}", f"{min(thr)}..{max(thr)}", g_anon, g_file))
    R["figures"] = figures
    R["res"] = by_who
    R["machine"] = read_tsv(os.path.join(raw, "machine.tsv"))

    # --- logs and exits ---
    logs = [os.path.join(raw, "hub.log")] + sorted(glob.glob(os.path.join(raw, "spoke-*.log")))
    panics, errors, warns = [], 0, {}
    for path in logs:
        text = read_text(path)
        name = os.path.basename(path)
        if "panicked" in text or "RUST_BACKTRACE" in text:
            panics.append(name)
        errors += len(re.findall(r"\bERROR\b", text))
        for m in re.finditer(r"\bWARN\b[^\n]*?: (.*)$", text, re.M):
            msg = re.sub(r"\d+(\.\d+)*", "N", m.group(1))[:140]
            warns[msg] = warns.get(msg, 0) + 1
    if panics:
        fails.append(f"panic in {', '.join(panics[:10])}")
    if errors:
        notes.append(f"{errors} ERROR lines in the logs")
    for msg, k in sorted(warns.items(), key=lambda x: -x[1])[:8]:
        notes.append(f"{k}× WARN in the logs: {msg}")
    R["logs"] = len(logs)
    exits = read_tsv(os.path.join(raw, "exits.tsv"))
    bad_exit = [(r["who"], r["exit"]) for r in exits if r.get("exit") != "0"]
    for who, st in bad_exit[:10]:
        fails.append(f"{who} at the end: exit status {st} after SIGTERM")
    if len(exits) != n + 1:
        fails.append(f"{len(exits)} exit statuses recorded for {n + 1} daemons")
    restarts = counts.get("restart_exit", 0)
    R["exits"] = (len(exits), len(exits) - len(bad_exit), restarts)

    verdict = "PASS" if not fails else "FAIL"
    R["verdict"] = verdict
    md = render(R)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(md)
    print(f"soak: {verdict}")
    for reason in fails:
        print(f"  - {reason}")
    for note in notes:
        print(f"  note: {note}")
    hsr = R["hs"]
    print(f"  handshakes at the hub: {hsr['total']} (initiated by the spoke {hsr['init']['spoke']}, by the hub "
          f"{hsr['init']['hub']}, unknown {hsr['init']['unknown']}), natural rekeys {hsr['natural']}; gap median "
          f"{fmt(hsr['gap_median'])} s, max {fmt(hsr['gap_max'])} s; {len(hsr['over_traffic'])} gaps over "
          f"{GAP_TRAFFIC} s within their limit; by initiator (count, max, over {GAP_TRAFFIC} s): {hsr['by_class']}")
    pr = R["ping"]
    print(f"  ping batches: {pr['batches']} ({pr['out']} outside windows, {pr['out_bad']} not fully answered; "
          f"{pr['in']} inside, {pr['in_bad']} not fully answered)")
    for row in R.get("res_summary", []):
        print(f"  {row[0]}: RSS {row[2]} KiB at t={row[1]} -> {row[4]} KiB at t={row[3]} ({row[5]:+d}), "
              f"[anon {row[8]:+d}, file {row[9]:+d}], fds {row[6]}, threads {row[7]}")
    print(f"  events: {', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}")
    print(f"  written: {args.out}")
    return 0 if not fails else 1


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def fmt(x, d=0):
    return "—" if x is None else f"{x:.{d}f}"


def histogram(gaps):
    edges = [0, 100, 115, 120, 125, 130, 135, 140, 145, 150, 160, 10 ** 9]
    out = []
    for lo, hi in zip(edges, edges[1:]):
        k = sum(1 for g in gaps if lo <= g < hi)
        out.append((lo, hi, k))
    return out


EVENT_TEXT = {
    "sighup": "SIGHUP to the hub",
    "sighup_check": "hub's peer set after the SIGHUP",
    "sighup_move": "AllowedIPs move (SIGHUP)",
    "sighup_remove": "peer removed (SIGHUP)",
    "sighup_readd": "peer re-added (SIGHUP)",
    "restart_begin": "spoke restart: SIGTERM",
    "restart_exit": "spoke restart: exit",
    "restart_icmp": "spoke restart: hub pings it while down",
    "restart_done": "spoke restart: started again",
    "roam": "spoke roams",
    "hubaddr_del": "hub's underlay address removed",
    "hubaddr_add": "hub's underlay address back",
    "link_down": "spoke's veth down",
    "link_up": "spoke's veth up",
}


def render(R):
    meta, fails, notes = R["meta"], R["fails"], R["notes"]
    n = meta.get("peers", "?")
    minutes = meta.get("minutes", "?")
    L = []
    a = L.append
    a("# Soak test")
    a("")
    a("Generated by `scripts/soak.sh` (do not edit by hand; rerun the script). A bounded soak of one "
      "wgd serving many peers, not part of `cargo test`.")
    a("")
    a("## Method")
    a("")
    a(f"A hub and {n} spokes, each a `wgd -v up FILE` daemon (the release build) in a network namespace of "
      "its own. The spokes' veths are ports of a bridge in the hub's namespace: underlay 198.18.0.0/16 "
      "(hub 198.18.0.1, spoke *i* 198.18.1.*i+1*), tunnel 198.19.0.0/16 (hub 198.19.0.1/16, spoke *i* "
      "198.19.1.*i+1*/32), MTU 1420. The hub's file lists every spoke as a peer (PublicKey, AllowedIPs = the "
      "spoke's /32, no endpoint); each spoke has the hub as its one peer with Endpoint 198.18.0.1:51820 and "
      "PersistentKeepalive = 25, so every session stays up and is rekeyed by its spoke (the initiator) "
      "once it is REKEY_AFTER_TIME (120 s) old. For the whole run:")
    a("")
    a("- every 10 s a different tenth of the spokes (rotating: each spoke every 100 s) pings the hub's "
      "tunnel address, 3 packets 0.2 s apart, 2 s timeout;")
    a("- one spoke at a time (rotating) runs iperf3 TCP to the hub at 20 Mbit/s for 20 s, 2 s apart;")
    a("- `wg show HUB dump` (stock `wg` over the UAPI socket) every 10 s: every spoke's latest handshake, "
      "endpoint, AllowedIPs and transfer counters as the hub sees them;")
    a("- the VmRSS (and its RssAnon, RssFile and malloc `[heap]` parts), open fds (`/proc/PID/fd`), threads "
      "and CPU time of the hub and of spokes 1–3 (which take no events) every 60 s, and the sum of all "
      "spokes' VmRSS.")
    a("")
    a("Before minute 0 (and so before the baseline at minute 1), a warm-up: spokes 1–3 each run iperf3 "
      "TCP at full speed to the hub and back for 3 s each way. A daemon's first fast burst raises its "
      "RSS once, by about 6 MiB (its data path's buffers reach their high-water mark in the malloc heap, "
      "and stay there: later bursts add almost nothing); without the warm-up the first catch-up burst "
      "of an iperf3 flow stalled by an event showed up in the middle of the run as growth.")
    a("")
    a("Events (spokes chosen in rotation among 4..N, never one already in an event; from `--minutes 14` "
      "on at these periods, none in the last minute, pushed back to stay 30 s apart; shorter runs have "
      "each once):")
    a("")
    a("- every 5 min, **SIGHUP** to the hub after its file was rewritten (`wg syncconf` semantics): one "
      "spoke's AllowedIPs /32 moves to a new address, which the spoke adds before the SIGHUP and drops "
      "2 s after; one spoke is left out of the file, and put back at the next SIGHUP; the hub's "
      "`wg show allowed-ips` is checked after each;")
    a("- every 7 min, a spoke **restarts**: SIGTERM (exit status recorded), the hub pings the spoke's "
      "tunnel address meanwhile, so its packets go to the dead endpoint and the spoke's namespace "
      "answers ICMP port unreachable (the hub namespace's `IcmpInDestUnreachs` is counted), started "
      "again 10 s after the SIGTERM (a new random listen port);")
    a("- every 9 min, a spoke **roams**: a new underlay address is added to its veth and the old one "
      "removed;")
    a("- every 11 min, the hub's **underlay address is removed** from its bridge, and added back 10 s later;")
    a("- every 13 min, a spoke's **veth goes down**, and up again 10 s later.")
    a("")
    a("### PASS criteria")
    a("")
    a(f"- the hub's VmRSS at the end within +{RSS_LIMIT_KIB // 1024} MiB of minute 1 (after the warm-up), its open fds equal in "
      "every sample from minute 1 on, its PID unchanged (the same for spokes 1–3);")
    a(f"- no session stuck: at the hub, no spoke goes without a new handshake for longer than the protocol "
      "allows, up to the end, except in a gap overlapping that spoke's own event window (or an event of "
      "every spoke) and ending within the bound after it. Only a session's initiator rekeys on time, so "
      "the bound depends on who initiated (told from the hub's byte counters: an initiation is 148 bytes, "
      "a response 92, transport messages multiples of 16). A session the spoke initiated must be rekeyed "
      f"before it expires: **{GAP_LIMIT} s** (REJECT_AFTER_TIME). The spoke rekeys on the first packet it "
      "sends once the session is 120 s old (REKEY_AFTER_TIME); idle, it sends only its keepalives, "
      f"{KEEPALIVE} s after the last packet either way, and the hub's passive keepalives (10 s after data "
      "it received, then one more) count, so that packet comes by 165 s, 170 s with one initiation lost "
      f"and retried; under steady traffic the bound would be {GAP_TRAFFIC} s (REKEY_AFTER_TIME + "
      "REKEY_TIMEOUT + slack), and the gaps over it are counted below. A session the hub initiated (its "
      "new-handshake timer: it sent data and heard nothing back for 15 s, as when its address was gone): "
      "the hub rekeys it when a packet arrives after 165 s (REJECT_AFTER_TIME − KEEPALIVE_TIMEOUT − "
      "REKEY_TIMEOUT), or, if no keepalive lands in 165..180 s, the spoke does on its first packet after "
      f"the session expired: **{GAP_LIMIT_HUB} s** = REJECT_AFTER_TIME + PersistentKeepalive + "
      "REKEY_TIMEOUT + 10 s slack; the same for the few handshakes whose "
      "initiator is unknown. The Linux kernel behaves the same way;")
    a(f"- every ping batch outside the event windows fully answered (windows: from {WIN_BEFORE} s before an "
      f"event to {WIN_SHORT} s after a roam or an AllowedIPs move, {WIN_AFTER} s after a restart, a re-add, "
      "the hub's address coming back or a veth up; the hub's address windows cover every spoke); every "
      "iperf3 run outside them completed;")
    a(f"- after each event: a roamed spoke's new endpoint shown by the hub within {ROAM_SEEN_LIMIT} s, a "
      f"restarted or re-added spoke handshaking again within {RESUME_LIMIT} s, traffic from every spoke "
      f"again within {RESUME_LIMIT} s of a veth up or of the hub's address coming back, the moved "
      "AllowedIPs shown, one `SIGHUP: reloaded` log line per SIGHUP, ICMP port unreachable received "
      "during each restart;")
    a("- no `panicked` in any log; exit status 0 on every SIGTERM (the restarts, and all daemons at the end).")
    a("")
    a("## Last run")
    a("")
    a(f"Command: `{meta.get('command', '?')}`; started {meta.get('date', '?')}; {meta.get('version_wgd', '?')}; "
      f"{meta.get('version_wg', '?')}; {meta.get('version_iperf3', '?')}.")
    a("")
    mem_total = inum(meta.get("mem_total_kb")) or 0
    before = inum(meta.get("mem_avail_before_kb")) or 0
    after = inum(meta.get("mem_avail_after_setup_kb")) or 0
    a(f"Machine: {meta.get('nproc', '?')} CPUs, {meta.get('cpu_model', '?')}, {mem_total / 1048576:.0f} GiB, "
      f"{meta.get('kernel', '?')}; load average before/after {meta.get('load_before', '?')} / "
      f"{meta.get('load_after', '?')} (other work shared the machine).")
    a("")
    machine = R["machine"]
    last_m = machine[-1] if machine else {}
    a(f"Scale: {int(n) + 1} namespaces, {n} veths on one bridge and {int(n) + 1} daemons were set up in "
      f"{meta.get('setup_netns_s', '?')} s (namespaces and links) and {meta.get('setup_total_s', '?')} s "
      f"(every session up and pinged); MemAvailable went from {before / 1024:.0f} to {after / 1024:.0f} MiB; "
      f"at the end the {last_m.get('spokes_running', '?')} spokes held {mib(inum(last_m.get('spokes_rss_kb')) or 0)} MiB "
      "of RSS together. The machine takes one namespace per spoke without trouble.")
    a("")
    a(f"**Result: {R['verdict']}** ({minutes} minutes, {n} spokes)")
    a("")
    for r in fails:
        a(f"- FAIL: {r}")
    for x in notes:
        a(f"- note: {x}")
    if fails or notes:
        a("")
    a("### Resources")
    a("")
    marks = R["marks"]
    a(f"At minutes {', '.join(str(m // 60) for m in marks)} (VmRSS = RssAnon + RssFile, in KiB; RssFile "
      "is the binary's and libraries' pages mapped in):")
    a("")
    a("| process | " + " | ".join(f"minute {m // 60}: VmRSS (anon + file) / fds / threads" for m in marks)
      + " | VmRSS change |")
    a("|---|" + "---|" * len(marks) + "---|")
    for who in sorted(R["figures"], key=lambda w: (w != "hub", w)):
        pick = R["figures"][who]
        cells = [f"{r['rss_kb']} ({r.get('rss_anon_kb') or '?'} + {r.get('rss_file_kb') or '?'}) / {r['fds']} / "
                 f"{r['threads']}" for r in pick]
        growth = int(pick[-1]["rss_kb"]) - int(pick[0]["rss_kb"])
        a(f"| {who} (PID {pick[0]['pid']}) | " + " | ".join(cells) + f" | {growth:+d} KiB |")
    a("")
    hub = [r for r in R["res"].get("hub", []) if (r.get("rss_kb") or "").isdigit()]
    sp = {w: {r["t"]: r for r in R["res"].get(w, [])} for w in ("spoke1", "spoke2", "spoke3")}
    mach = {r["t"]: r for r in machine}
    tck = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    a("Every minute (hub CPU = user + system time since it started):")
    a("")
    a("| t (s) | hub VmRSS (KiB) | hub RssAnon | hub RssFile | hub [heap] size / resident | hub fds | "
      "hub threads | hub CPU (s) | spoke 1 / 2 / 3 VmRSS (KiB) | all spokes VmRSS (MiB) | MemAvailable (MiB) | load |")
    a("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in hub:
        t = r["t"]
        cpu = (inum(r.get("cpu_ticks")) or 0) / tck
        spokes_rss = " / ".join((sp[w].get(t) or {}).get("rss_kb") or "—" for w in sp)
        m = mach.get(t, {})
        a(f"| {t} | {r['rss_kb']} | {r.get('rss_anon_kb') or '—'} | {r.get('rss_file_kb') or '—'} | "
          f"{r.get('heap_kb') or '—'} / {r.get('heap_rss_kb') or '—'} | {r['fds']} | "
          f"{r['threads']} | {cpu:.1f} | {spokes_rss} | "
          f"{mib(inum(m.get('spokes_rss_kb')) or 0)} | {(inum(m.get('mem_avail_kb')) or 0) / 1024:.0f} | "
          f"{m.get('load1', '—')} |")
    a("")
    a("### Sessions and rekeys")
    a("")
    hs = R["hs"]
    a(f"- `wg show dump` samples: {R['dump_samples']}; handshakes seen at the hub: {hs['total']} over {n} "
      f"spokes; natural rekeys (every handshake after a spoke's first, outside its event windows): "
      f"**{hs['natural']}**;")
    a(f"- time between a spoke's handshakes outside event windows: median {fmt(hs['gap_median'])} s, 95th "
      f"percentile {fmt(hs['gap_p95'])} s, max {fmt(hs['gap_max'])} s over {hs['gaps']} gaps; "
      f"{hs['excused']} gaps overlapped an event window; over {GAP_TRAFFIC} s but within the bound: "
      f"{len(hs['over_traffic'])}; over the bound (stuck): {len(hs['stuck'])};")
    a(f"- who initiated the handshakes: the spoke {hs['init']['spoke']}, the hub {hs['init']['hub']}, unknown "
      f"{hs['init']['unknown']}; gaps after each kind (count, longest, over {GAP_TRAFFIC} s): "
      + "; ".join(f"{c}: {k}, {mx:.0f} s, {o}" for c, (k, mx, o) in sorted(hs["by_class"].items())) + ";")
    origins = {}
    for h, s in hs["hub_origins"]:
        origins.setdefault(int(h // 10 * 10), []).append(s)
    a("- where the hub began initiating (t rounded down to 10 s: spokes): "
      + ("; ".join(f"{t}: {', '.join(str(x) for x in sorted(v))}" for t, v in sorted(origins.items())) or "never")
      + ".")
    a("")
    a("| gap (s) | " + " | ".join(f"{lo}–{'' if hi > 10 ** 6 else hi}" for lo, hi, _ in hs["hist"]) + " |")
    a("|---|" + "---|" * len(hs["hist"]))
    a("| gaps | " + " | ".join(str(k) for _, _, k in hs["hist"]) + " |")
    a("")
    a("### Traffic")
    a("")
    p = R["ping"]
    a(f"- ping: {p['rounds']} rounds, {p['batches']} batches of 3 (one spoke each), {p['sent']} packets sent, "
      f"{p['recv']} answered; outside the event windows {p['out']} batches, {p['out_bad']} not fully "
      f"answered; inside them {p['in']} batches, {p['in_bad']} not fully answered;")
    i = R["iperf"]
    a(f"- iperf3: {i['runs']} runs of 20 s at 20 Mbit/s, failed outside event windows: {i['fail_out']}, "
      f"inside: {i['fail_in']}; received through the tunnel: {i['bytes'] / 1e9:.2f} GB.")
    a("")
    a("### Events")
    a("")
    c = R["counts"]
    ex = R["exits"]
    a(f"{c.get('sighup', 0)} SIGHUPs ({R['reloaded']} `SIGHUP: reloaded` in the hub's log; "
      f"{c.get('sighup_move', 0)} AllowedIPs moves, {c.get('sighup_remove', 0)} removals, "
      f"{c.get('sighup_readd', 0)} re-adds), {c.get('restart_begin', 0)} spoke restarts (hub "
      f"IcmpInDestUnreachs +{R['icmp_total']} in all), {c.get('roam', 0)} roams, {c.get('hubaddr_del', 0)} "
      f"removals of the hub's address, {c.get('link_down', 0)} veths down. Exit status 0 on "
      f"SIGTERM: {ex[1]} of {ex[0]} daemons at the end, plus the {ex[2]} restarts (see below).")
    a("")
    a("| t (s) | event | spoke | detail | afterwards |")
    a("|---|---|---|---|---|")
    for t, kind, s, detail, outcome in R["ev_rows"]:
        if kind == "sighup_check" or kind == "restart_exit" or kind == "restart_icmp":
            continue
        if kind == "restart_done":
            extra = [d for tt, k, ss, d, _ in R["ev_rows"] if ss == s and k in ("restart_exit", "restart_icmp")
                     and t - 30 <= tt <= t]
            outcome = "; ".join(extra[-2:] + [outcome])
        a(f"| {t:.0f} | {EVENT_TEXT.get(kind, kind)} | {'all' if s is None else s} | {detail} | {outcome} |")
    a("")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
