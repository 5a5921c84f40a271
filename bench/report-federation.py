#!/usr/bin/env python3
"""Turn bench/federation's raw.jsonl into markdown tables: tools/list
latency, calls/s and latency at each concurrency (ratios against `direct`
taken per round, then the median over rounds), errors, and memory per idle
session."""

import json
import statistics
import sys
from collections import defaultdict

out_dir = sys.argv[1]
rows = [json.loads(l) for l in open(f"{out_dir}/raw.jsonl") if l.strip()]
by = defaultdict(dict)  # (scenario, target) -> {round: record}
targets, loads = [], []
for r in rows:
    by[(r["scenario"], r["target"])][r["round"]] = r
    if r["target"] not in targets:
        targets.append(r["target"])
    s = r["scenario"]
    if s.startswith("c") and s[1:].isdigit() and s not in loads:
        loads.append(s)
loads.sort(key=lambda s: int(s[1:]))

NAMES = {
    "direct": "direct (member `a` alone, no fan-in)",
    "sluice": "sluice",
    "mcp-proxy": "mcp-proxy (crates.io)",
    "fastmcp": "FastMCP mount (default: a backend session per request)",
    "fastmcp-shared": "FastMCP mount (one shared backend Client per member)",
}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def recs(s, t):
    return by.get((s, t), {})


def value(s, t, key):
    return med([rec.get(key) for rec in recs(s, t).values()])


def ratio(s, t, key):
    d = recs(s, "direct")
    return med([rec[key] / d[rnd][key] if rnd in d and d[rnd].get(key) and rec.get(key) else None
                for rnd, rec in recs(s, t).items()])


def total(s, t, key):
    rs = recs(s, t).values()
    return sum(rec.get(key, 0) or 0 for rec in rs) if rs else None


def us(v):
    if v is None:
        return "—"
    if v >= 10_000:
        return f"{v / 1000:,.0f} ms"
    if v >= 1_000:
        return f"{v / 1000:,.1f} ms"
    return f"{v:,.0f} µs"


def cell_rps(s, t):
    v = value(s, t, "rps")
    if v is None:
        return "—"
    r = ratio(s, t, "rps")
    rs = "" if r is None or t == "direct" else f" ({r:.2f}x)" if r >= 0.01 else f" ({r:.3f}x)"
    return f"{v:,.0f}/s{rs}"


def cell_lat(s, t, name="lat_us"):
    return f"{us(value(s, t, name + '_p50'))} / {us(value(s, t, name + '_p99'))}"


def failed(s, t):
    return sum(1 for rec in recs(s, t).values() if rec.get("failed"))


print("| target | tools/list p50 / p99 (tools) | " + " | ".join(
    f"{s[1:]} client{'s' if s != 'c1' else ''}: calls/s (vs direct) | p50 / p99" for s in loads) + " | errors / calls |")
print("|---|---|" + "---|---|" * len(loads) + "---|")
for t in targets:
    if not any(recs(s, t) for s in ["list"] + loads):
        continue
    if recs("list", t):
        n = value("list", t, "tools_max")
        lst = f"{cell_lat('list', t)} ({n:.0f})" if n else cell_lat("list", t)
        if failed("list", t):
            lst += f" ({failed('list', t)} runs failed)"
    else:
        lst = "—"
    cells = []
    for s in loads:
        cells.append(cell_rps(s, t) + (f" ({failed(s, t)} runs failed)" if failed(s, t) else ""))
        cells.append(cell_lat(s, t))
    errs = sum(total(s, t, "errors") or 0 for s in ["list"] + loads)
    calls = sum(total(s, t, "calls") or 0 for s in ["list"] + loads)
    first = next((rec.get("first_error") for s in ["list"] + loads for rec in recs(s, t).values()
                  if rec.get("first_error")), None)
    e = f"{errs:,} / {calls:,}" + (f" (first: {first[:80]})" if first else "")
    print(f"| {NAMES.get(t, t)} | {lst} | " + " | ".join(cells) + f" | {e} |")

if any(s == "idle" for s, _ in by):
    print()
    print("| target | RSS per idle session (PSS) | sessions opened | baseline RSS, processes |")
    print("|---|---|---|---|")
    for t in targets:
        rec = recs("idle", t).get(1)
        if not rec:
            continue
        if rec.get("failed"):
            print(f"| {NAMES.get(t, t)} | failed | — | — |")
            continue
        print(f"| {NAMES.get(t, t)} | {rec['bytes_per_session'] / 1024:,.1f} KiB "
              f"({rec['pss_bytes_per_session'] / 1024:,.1f}) | {rec['opened']}/{rec['sessions']} | "
              f"{rec['base_rss_kib'] / 1024:,.1f} MiB, {rec['procs_before']} → {rec['procs_after']} |")


def member_total(s, t, member, key):
    rs = recs(s, t).values()
    return sum((rec.get("members", {}).get(member, {}).get("requests", {}).get(key, 0)) for rec in rs)


if any("members" in rec for rs in by.values() for rec in rs.values()):
    print()
    print("What the members saw (bench-http-server's counters): member `a`'s requests per client request, "
          "and the member sessions an idle client session cost.")
    print()
    print("| target | `a`: tools/list per client tools/list | `a`: initialize per client tools/call | "
          "`a`: initialize per idle client session | `a`'s sessions still open after every client session's DELETE (gateway running) |")
    print("|---|---|---|---|---|")
    for t in targets:
        lists = total("list", t, "calls") or 0
        per_list = member_total("list", t, "a", "tools/list") / lists if lists else None
        calls = sum(total(s, t, "calls") or 0 for s in loads)
        inits = sum(member_total(s, t, "a", "initialize") for s in loads)
        per_call = inits / calls if calls else None
        idle = recs("idle", t).get(1)
        if idle and not idle.get("failed") and "members" in idle:
            n = idle["opened"] + 1  # and the warm one
            per_session = idle["members"]["a"]["requests"].get("initialize", 0) / n
            a = idle["members"]["a"]
            left = a["sessions"] - a["sessions_before"] if "sessions_before" in a else None
        else:
            per_session = left = None

        def f(v, digits=2):
            return "—" if v is None else f"{v:.{digits}f}"
        print(f"| {NAMES.get(t, t)} | {f(per_list)} | {f(per_call, 3)} | {f(per_session)} | "
              f"{'—' if left is None else left} |")
