#!/usr/bin/env python3
"""Turn bench/run's raw.jsonl into a markdown table: each proxy against direct
from the same round (ratios and added latencies are taken per round, then the
median over rounds is shown), and the PERF.md targets as met / not met."""

import json
import statistics
import sys
from collections import defaultdict

out_dir = sys.argv[1]
rows = [json.loads(l) for l in open(f"{out_dir}/raw.jsonl") if l.strip()]
by = defaultdict(dict)  # (scenario, target) -> {round: record}
targets = []
for r in rows:
    by[(r["scenario"], r["target"])][r["round"]] = r
    if r["target"] not in targets:
        targets.append(r["target"])
proxies = [t for t in targets if t != "direct"]
NAMES = {
    "direct": "direct",
    "nginx": "nginx",
    "haproxy": "HAProxy",
    "sluice": "sluice (default workers)",
    "sluice1": "sluice (1 worker)",
    "hook": "sluice + Rust hook on tools/call (default workers)",
    "hook1": "sluice + Rust hook on tools/call (1 worker)",
    "hookwarm": "sluice + Rust hook on tools/call, warm instances (default workers)",
    "bridge": "sluice bridging a legacy HTTP+SSE upstream (default workers)",
    "legacy": "direct, legacy HTTP+SSE face of the stub",
    "trace1": "sluice, tracing at sample_ratio 0.01 (default workers)",
    "trace100": "sluice, tracing at sample_ratio 1 (default workers)",
}
# The same sluice configuration with the hook, for the hook target of PERF.md.
HOOKED = {"sluice": "hook", "sluice1": "hook1"}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def per_round(s, t, f):
    """f(record_t, record_direct) per round where both exist."""
    d = by.get((s, "direct"), {})
    return [f(rec, d.get(rnd)) for rnd, rec in by.get((s, t), {}).items()]


def value(s, t, key):
    return med([rec.get(key) for rec in by.get((s, t), {}).values()])


def ratio(s, t, key):
    if t == "direct":
        return 1.0 if (s, t) in by else None
    return med(per_round(s, t, lambda a, d: a[key] / d[key] if d and d.get(key) else None))


def added(s, t, key):
    if t == "direct":
        return 0.0 if (s, t) in by else None
    return med(per_round(s, t, lambda a, d: a[key] - d[key] if d and key in d and key in a else None))


def total(s, t, key):
    recs = by.get((s, t), {}).values()
    return sum(rec.get(key, 0) for rec in recs) if recs else None


def fmt_ratio(s, t, key, unit):
    r, v = ratio(s, t, key), value(s, t, key)
    if r is None:
        return "—"
    return f"{r:.2f}x ({v:,.0f}{unit})"


def fmt_added(s, t, key):
    a, v = added(s, t, key), value(s, t, key)
    if a is None:
        return "—"
    if t == "direct":
        return f"{v:,.0f} µs"
    return f"{a:+,.0f} µs ({v:,.0f})"


def cell_sse(s, t):
    a = fmt_added(s, t, "lat_us_p50")
    if a == "—":
        return a
    if s == "burst":
        # Back-to-back events queue behind each other: "late" means nothing here.
        return f"{a}; lost {total(s, t, 'lost')}"
    return f"{a}; lost {total(s, t, 'lost')}, late {total(s, t, 'late')}"


def cell_idle(t):
    v = value("idle", t, "bytes_per_stream")
    if v is None:
        return "—"
    n = value("idle", t, "streams")
    failed = total("idle", t, "failed")
    extra = f", {failed} failed" if failed else ""
    return f"{v / 1024:.1f} KiB ({n:,.0f} streams{extra})"


table = [
    ("wrk -t1 -c16, 1 KiB JSON-RPC POST: req/s vs direct", lambda t: fmt_ratio("wrk16", t, "rps", "/s")),
    ("wrk -t1 -c64, 1 KiB JSON-RPC POST: req/s vs direct", lambda t: fmt_ratio("wrk64", t, "rps", "/s")),
    (f"fixed rate (2k req/s, latency-corrected): added p50 (p50)", lambda t: fmt_added("rate", t, "p50_us")),
    ("fixed rate: added p99 (p99)", lambda t: fmt_added("rate", t, "p99_us")),
    ("SSE per-event latency, events 10 ms apart: added p50 (p50)", lambda t: cell_sse("sse", t)),
    ("SSE per-event latency: added p99 (p99)", lambda t: fmt_added("sse", t, "lat_us_p99")),
    ("SSE time to first event, fresh connection: added p50 (p50)", lambda t: fmt_added("ttfe", t, "ttfe_us_p50")),
    ("SSE burst (back-to-back events): events/s vs direct", lambda t: fmt_ratio("burst", t, "events_per_s", "/s")),
    ("SSE burst: per-event latency added p50 (p50)", lambda t: cell_sse("burst", t)),
    ("1 MiB tools/list answer, wrk -c4: req/s vs direct", lambda t: fmt_ratio("big", t, "rps", "/s")),
    ("RSS per idle SSE stream (VmRSS growth / streams)", cell_idle),
]

print("| scenario | " + " | ".join(NAMES.get(t, t) for t in targets) + " |")
print("|---|" + "---|" * len(targets))
for name, cell in table:
    cells = [cell(t) for t in targets]
    if all(c == "—" for c in cells):
        continue  # a scenario this run left out
    print(f"| {name} | " + " | ".join(cells) + " |")

# Targets from PERF.md, for each sluice configuration measured.
print()
print("| PERF.md target | " + " | ".join(NAMES.get(t, t) for t in proxies if t.startswith("sluice")) + " |")
print("|---|" + "---|" * len([t for t in proxies if t.startswith("sluice")]))


def check_hook(t):
    h = HOOKED.get(t)
    r = ratio("wrk64", h, "rps") if h else None
    if r is None:
        return verdict(None, "")
    plain = ratio("wrk64", t, "rps")
    without = f", {plain:.2f}x without it" if plain is not None else ""
    return verdict(r >= 0.45, f"{r:.2f}x (≥ 0.45x{without})")


def verdict(ok, text):
    if ok is None:
        return "not measured"
    return ("met: " if ok else "NOT met: ") + text


def check_throughput(t):
    r = ratio("wrk64", t, "rps")
    if r is None:
        return verdict(None, "")
    rivals = [ratio("wrk64", p, "rps") for p in ("nginx", "haproxy") if (("wrk64", p) in by)]
    ahead = all(r > x for x in rivals if x is not None)
    return verdict(r >= 0.55 and ahead, f"{r:.2f}x (≥ 0.55x, ahead of nginx/HAProxy: {'yes' if ahead else 'no'})")


def check_added(t):
    a = added("rate", t, "p50_us")
    return verdict(None if a is None else a <= 80, f"{a:+.0f} µs (≤ 80)" if a is not None else "")


def check_sse(t):
    a = added("sse", t, "lat_us_p50")
    if a is None:
        return verdict(None, "")
    lost, late = total("sse", t, "lost"), total("sse", t, "late")
    return verdict(a <= 30 and lost == 0 and late == 0, f"{a:+.0f} µs (≤ 30), lost {lost}, late {late}")


def check_rss(t):
    v = value("idle", t, "bytes_per_stream")
    n = value("idle", t, "streams")
    if v is None:
        return verdict(None, "")
    return verdict(v <= 4096 and n >= 9000, f"{v / 1024:.1f} KiB at {n:,.0f} streams (≤ 4 KiB at 9,000)")


checks = [
    ("passthrough throughput ≥ 0.55x direct, ahead of nginx and HAProxy (wrk -c64)", check_throughput),
    ("added p50 at 2k req/s ≤ 80 µs", check_added),
    ("SSE per-event added p50 ≤ 30 µs, nothing lost or late", check_sse),
    ("RSS per idle SSE stream ≤ 4 KiB at 9,000 streams", check_rss),
    ("with one Rust hook on every tools/call ≥ 0.45x (wrk -c64)", check_hook),
]
for name, f in checks:
    print(f"| {name} | " + " | ".join(f(t) for t in proxies if t.startswith("sluice")) + " |")


# The bridge's own targets (the issue that asked for the bridge row): its
# figures against a Streamable stream through sluice in the same round, and
# against direct.
def diff(s, a, b, key):
    """Median over rounds of a[key] - b[key], both from the same round."""
    ra, rb = by.get((s, a), {}), by.get((s, b), {})
    return med([ra[r][key] - rb[r][key] for r in ra if r in rb and key in ra[r] and key in rb[r]])


def check_bridge_latency(t):
    a = diff("sse", t, "sluice", "lat_us_p50")
    if a is None:
        return verdict(None, "")
    d = added("sse", t, "lat_us_p50")
    p99 = diff("sse", t, "sluice", "lat_us_p99")
    lost, late = total("sse", t, "lost"), total("sse", t, "late")
    return verdict(
        a <= 20 and lost == 0 and late == 0,
        f"p50 {a:+.0f} µs vs sluice (≤ 20), {d:+.0f} µs vs direct; p99 {p99:+.0f} µs vs sluice; lost {lost}, late {late}",
    )


def check_bridge_rss(t):
    v = value("idle", t, "bytes_per_stream")
    if v is None:
        return verdict(None, "")
    n = value("idle", t, "streams")
    plain = value("idle", "sluice", "bytes_per_stream")
    beside = f"; sluice, Streamable upstream: {plain / 1024:.1f} KiB" if plain is not None else ""
    return verdict(v <= 8192, f"{v / 1024:.1f} KiB at {n:,.0f} streams (≤ 8 KiB){beside}")


if "bridge" in targets:
    print()
    print("| legacy bridge target | " + NAMES["bridge"] + " |")
    print("|---|---|")
    for name, f in [
        ("SSE per-event latency within 20 µs (p50) of a Streamable stream through sluice, nothing lost or late", check_bridge_latency),
        ("RSS per idle bridged stream ≤ 8 KiB (a session's GET stream: client leg, bridge session and its backend SSE connection)", check_bridge_rss),
    ]:
        print(f"| {name} | {f('bridge')} |")


def against_sluice(s, t, key):
    """Median over rounds of t's key / sluice's key, both from the same round."""
    rt, rs = by.get((s, t), {}), by.get((s, "sluice"), {})
    return med([rt[r][key] / rs[r][key] for r in rt if r in rs and rs[r].get(key) and key in rt[r]])


# Tracing (issue 16, item 8): the same sluice with [tracing] on, each round
# against tracing off from that round.
traced = [t for t in ("trace1", "trace100") if t in targets]
if traced and "sluice" in targets:
    print()
    print("| tracing: against sluice without it, same round | " + " | ".join(NAMES[t] for t in traced) + " |")
    print("|---|" + "---|" * len(traced))
    for name, s, key in [
        ("wrk -t1 -c16: req/s", "wrk16", "rps"),
        ("wrk -t1 -c64: req/s", "wrk64", "rps"),
    ]:
        cells = []
        for t in traced:
            r = against_sluice(s, t, key)
            cells.append("—" if r is None else f"{r:.3f}x ({value(s, t, key):,.0f}/s)")
        print(f"| {name} | " + " | ".join(cells) + " |")
    cells = []
    for t in traced:
        a = diff("rate", t, "sluice", "p50_us")
        p99 = diff("rate", t, "sluice", "p99_us")
        cells.append("—" if a is None else f"p50 {a:+.0f} µs, p99 {p99:+.0f} µs")
    print("| fixed rate 2k req/s: added latency | " + " | ".join(cells) + " |")
