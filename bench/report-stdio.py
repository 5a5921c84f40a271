#!/usr/bin/env python3
"""Turn bench/stdio's raw.jsonl into markdown tables, one pair per server:
calls/s and latency at each concurrency (ratios against `direct` taken per
round, then the median over rounds), errors, the time to the first progress
notification, and memory per idle session."""

import json
import statistics
import sys
from collections import defaultdict

out_dir = sys.argv[1]
rows = [json.loads(l) for l in open(f"{out_dir}/raw.jsonl") if l.strip()]
by = defaultdict(dict)  # (server, scenario, target) -> {round: record}
servers, targets, loads = [], [], []
for r in rows:
    by[(r["server"], r["scenario"], r["target"])][r["round"]] = r
    if r["server"] not in servers:
        servers.append(r["server"])
    if r["target"] not in targets:
        targets.append(r["target"])
    s = r["scenario"]
    if s.startswith("c") and s[1:].isdigit() and s not in loads:
        loads.append(s)
loads.sort(key=lambda s: int(s[1:]))

NAMES = {
    "direct": "direct (stdio, a child per client)",
    "sluice": "sluice (shared)",
    "sluice-per-session": "sluice (per-session)",
    "supergateway": "supergateway (default: stateless)",
    "supergateway-stateful": "supergateway --stateful",
    "mcp-proxy": "mcp-proxy (PyPI)",
}
SERVERS = {
    "fast": "bench-stdio-server (Rust, no sleeps)",
    "everything": "@modelcontextprotocol/server-everything (Node)",
}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def recs(srv, s, t):
    return by.get((srv, s, t), {})


def value(srv, s, t, key):
    return med([rec.get(key) for rec in recs(srv, s, t).values()])


def ratio(srv, s, t, key):
    d = recs(srv, s, "direct")
    return med([rec[key] / d[rnd][key] if rnd in d and d[rnd].get(key) else None for rnd, rec in recs(srv, s, t).items()])


def total(srv, s, t, key):
    rs = recs(srv, s, t).values()
    return sum(rec.get(key, 0) or 0 for rec in rs) if rs else None


def us(v):
    if v is None:
        return "—"
    if v >= 10_000:
        return f"{v / 1000:,.0f} ms"
    if v >= 1_000:
        return f"{v / 1000:,.1f} ms"
    return f"{v:,.0f} µs"


def cell_rps(srv, s, t):
    v = value(srv, s, t, "rps")
    if v is None:
        return "—"
    r = ratio(srv, s, t, "rps")
    if r is None or t == "direct":
        rs = ""
    else:
        rs = f" ({r:.3f}x)" if r < 0.095 else f" ({r:.2f}x)"
    return (f"{v:.1f}" if v < 10 else f"{v:,.0f}") + f"/s{rs}"


def cell_lat(srv, s, t):
    p50, p99 = value(srv, s, t, "lat_us_p50"), value(srv, s, t, "lat_us_p99")
    if p50 is None:
        return "—"
    return f"{us(p50)} / {us(p99)}"


def cell_errors(srv, t):
    calls = sum(total(srv, s, t, "calls") or 0 for s in loads)
    errs = sum(total(srv, s, t, "errors") or 0 for s in loads)
    if not calls and not errs:
        return "—"
    sse = sum(total(srv, s, t, "sse_answers") or 0 for s in loads)
    how = "SSE" if sse and sse >= calls * 0.99 else ("JSON" if not sse else f"{sse / max(calls, 1):.0%} SSE")
    return f"{errs:,} / {calls:,} ({how})"


def cell_progress(srv, t):
    rs = recs(srv, "progress", t)
    if not rs:
        return "—", "—", "—"
    seen, exp = total(srv, "progress", t, "progress_seen"), total(srv, "progress", t, "progress_expected")
    errs = total(srv, "progress", t, "errors")
    through = f"{seen:,}/{exp:,}" + (f", {errs} errors" if errs else "")
    if not seen:
        return "none arrived", "—", through
    ttfp = f"{us(value(srv, 'progress', t, 'ttfp_us_p50'))} / {us(value(srv, 'progress', t, 'ttfp_us_p99'))}"
    call = f"{us(value(srv, 'progress', t, 'call_us_p50'))}"
    return ttfp, call, through


def cell_idle(srv, t):
    rs = list(recs(srv, "idle", t).values())
    if not rs:
        return "—", "—"
    r = rs[0]
    if r.get("failed"):
        return "failed", "—"
    opened = r.get("opened", 0)
    failed = f", {r['init_failed']} failed" if r.get("init_failed") else ""
    per = f"{r['bytes_per_session'] / 1024:,.1f} KiB (PSS {r['pss_bytes_per_session'] / 1024:,.1f}; {opened} sessions{failed})"
    base = f"{r['base_rss_kib'] / 1024:,.1f} MiB, {r['procs_before']} → {r['procs_after']} processes"
    return per, base


def cell_left(srv, t):
    # Stop records all carry round 0: count them from the raw rows.
    rs = [r for r in rows if r["server"] == srv and r["scenario"] == "stop" and r["target"] == t]
    after = [r["children_after"] for r in rows if r["server"] == srv and r["target"] == t and "children_after" in r]
    if not rs and not after:
        return "—"
    left = str(sum(r["left"] for r in rs)) if rs else "—"
    return f"{left}; {max(after) if after else '—'}"


for srv in servers:
    ts = [t for t in targets if any(k[0] == srv and k[2] == t for k in by)]
    print(f"### {SERVERS.get(srv, srv)}")
    print()
    if loads:
        head = ["target"]
        for s in loads:
            head += [f"{s[1:]} client{'s' if s != 'c1' else ''}: calls/s (vs direct)", "p50 / p99"]
        head.append("errors / calls (answers as)")
        print("| " + " | ".join(head) + " |")
        print("|---" * len(head) + "|")
        for t in ts:
            cells = [NAMES.get(t, t)]
            for s in loads:
                cells += [cell_rps(srv, s, t), cell_lat(srv, s, t)]
            cells.append(cell_errors(srv, t))
            print("| " + " | ".join(cells) + " |")
        print()
    head = ["target", "first progress p50 / p99", "whole call p50", "progress through",
            "RSS per idle session (tree)", "baseline RSS (tree), processes", "left at stop; most children after a run"]
    print("| " + " | ".join(head) + " |")
    print("|---" * len(head) + "|")
    for t in ts:
        ttfp, call, through = cell_progress(srv, t)
        per, base = cell_idle(srv, t)
        if t == "supergateway" and per == "—":
            per = "no sessions (stateless)"
        print("| " + " | ".join([NAMES.get(t, t), ttfp, call, through, per, base, cell_left(srv, t)]) + " |")
    print()
    firsts = {}
    for s in loads + ["progress", "idle"]:
        for t in ts:
            for rec in recs(srv, s, t).values():
                if rec.get("first_error"):
                    firsts.setdefault(t, f"{s}: {rec['first_error']}")
    for t, e in firsts.items():
        print(f"- first error, {NAMES.get(t, t)}: `{e[:200]}`")
    if firsts:
        print()
