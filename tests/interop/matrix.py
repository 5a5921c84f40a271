"""Renders docs/INTEROP.md from the last interop and conformance runs.

    python3 tests/interop/matrix.py                # writes docs/INTEROP.md
    python3 tests/interop/matrix.py --stdout       # prints it instead

Reads target/interop/results.json (tests/interop/run --both) and, when present,
target/interop/hooks.json (tests/interop/run --hooks), target/interop/federated.json
(--federated), target/interop/replicas.json (--replicas) and
target/conformance/results.json (tests/conformance/run). The pinned versions
come from the lock files, so the page says exactly what was exercised.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INTEROP = ROOT / "tests" / "interop"

# Column order; a check a row never ran is left blank.
CHECKS = ["initialize", "tools_list", "tools_call", "progress", "is_error", "jsonrpc_error", "ping",
          "get_stream", "bearer", "resume", "delete", "resources", "prompts", "sampling", "elicitation",
          "roots", "concurrency"]
MARK = {"pass": "✓", "fail": "✗", "skip": "–"}


def pins() -> list[tuple[str, str]]:
    """(peer, version) from the interop and conformance lock files."""
    out = []
    for pkg_json in (INTEROP / "package.json", ROOT / "tests" / "conformance" / "package.json"):
        if pkg_json.is_file():
            for name, spec in json.loads(pkg_json.read_text())["dependencies"].items():
                real, _, ver = spec.removeprefix("npm:").rpartition("@") if spec.startswith("npm:") else (name, "", spec)
                out.append((f"{real} (npm)" if real == name else f"{real} (npm, as {name})", ver))
    for lock, role in ((INTEROP / "requirements-mcp2.lock", "interop: client, py-mcp2 server"),
                       (INTEROP / "requirements-mcp1.lock", "interop: py-mcp1 server"),
                       (ROOT / "tests" / "conformance" / "requirements.lock", "conformance fixture")):
        if lock.is_file():
            m = re.search(r"^mcp==(\S+)", lock.read_text(), re.M)
            if m:
                out.append((f"mcp (PyPI; {role})", m.group(1)))
    return out


def era(rows: list[dict]) -> str:
    """The protocol version a client × server pair spoke, from its initialize check."""
    for r in rows:
        m = re.search(r"protocol (\d{4}-\d\d-\d\d)", r.get("detail", ""))
        if r["check"] == "initialize" and m:
            return m.group(1)
    client = rows[0]["client"]
    if client.endswith("2026-07-28"):
        return "2026-07-28"
    return "handshake"


def interop_section(doc: dict) -> list[str]:
    results = doc["results"]
    modes = doc["modes"]
    pairs: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        pairs.setdefault((r["client"], r["server"]), []).append(r)
    # In the order the clients met them (a server not started in some mode comes first
    # in the results with its skipped `start`).
    servers = list(dict.fromkeys([r["server"] for r in results if r["client"] != "-"]
                                 + [r["server"] for r in results if r["server"] != "-"]))
    clients = list(dict.fromkeys(r["client"] for r in results if r["client"] != "-"))
    checks = [c for c in CHECKS if any(r["check"] == c for r in results)]
    checks += sorted({r["check"] for r in results} - set(checks) - {"start", "alive"})
    legend = " / ".join(modes)
    out = [
        f"Each cell is `{legend}`: ✓ passed, ✗ failed, – not applicable to that peer (the reason is in",
        "`target/interop/results.json`; see tests/interop/README.md), blank: not run for that row.",
        "",
        "| client | server | era | " + " | ".join(checks) + " |",
        "|---|---|---|" + "---|" * len(checks),
    ]
    not_run: dict[str, list[str]] = {}
    for c in clients:
        for s in servers:
            rows = pairs.get((c, s))
            if not rows:
                continue
            if all(r["status"] == "skip" for r in rows):
                not_run.setdefault(rows[0]["detail"], []).append(f"{c} → {s}")
                continue
            cells = []
            for k in checks:
                marks = []
                for m in modes:
                    hit = [r for r in rows if r["check"] == k and r["mode"] == m]
                    marks.append(MARK.get(hit[0]["status"], "?") if hit else "")
                cells.append("/".join(marks) if any(marks) else "")
            # A load row (`client xN`) speaks what its single-session client spoke.
            base = pairs.get((re.sub(r" x\d+$", "", c), s), rows)
            out.append(f"| {c} | {s} | {era(base)} | " + " | ".join(cells) + " |")
    if not_run:
        out += ["", "Pairs not in the table, by reason:", ""]
        out += [f"- {why}: {', '.join(pairs_)}" for why, pairs_ in not_run.items()]
    counts = []
    for m in modes:
        mine = [r for r in results if r["mode"] == m]
        n = {st: sum(r["status"] == st for r in mine) for st in ("pass", "fail", "skip")}
        counts.append(f"{m}: {n['pass']} passed, {n['fail']} failed, {n['skip']} not applicable")
    out += ["", "Totals — " + "; ".join(counts) + f" ({doc.get('seconds', '?')} s for the whole run)."]
    fails = [r for r in results if r["status"] == "fail"]
    if fails:
        out += ["", "Failures:", ""]
        failed_direct = {(r["client"], r["server"], r["check"]) for r in fails if r["mode"] == "direct"}
        for r in fails:
            also = ""
            if r["mode"] != "direct" and (r["client"], r["server"], r["check"]) not in failed_direct:
                also = " — passes directly: a sluice defect until shown otherwise"
            elif r["mode"] != "direct":
                also = " — fails directly too: the peer or the machine, not sluice"
            out.append(f"- {r['mode']}: {r['client']} → {r['server']} `{r['check']}`: {r['detail']}{also}")
    return out


def hooks_section(doc: dict) -> list[str]:
    """Per example hook: the server and client it ran between, and its checks."""
    out = [
        "Each example of `hook-examples/`, built by its own `build.sh`, configured as a user would",
        "(`--hook FILE --hook-config FILE=JSON` or a TOML file), run by the sluice binary in front of",
        "server-everything and driven by a real client. The same calls made directly to the server are",
        "the control: the hook's effect must show against them.",
        "",
        "| hook | server | client | checks passed | checks |",
        "|---|---|---|---|---|",
    ]
    rows: dict[tuple[str, str], list[dict]] = {}
    for r in doc["results"]:
        rows.setdefault((r["hook"], r["client"]), []).append(r)
    builds = {hook: rs[0] for (hook, client), rs in rows.items() if client == "-"}
    for (hook, client), rs in rows.items():
        if client == "-":
            continue
        n = sum(r["status"] == "pass" for r in rs)
        checks = ", ".join(f"{r['check']} {MARK.get(r['status'], '?')}" for r in rs)
        out.append(f"| {hook} | {rs[0]['server']} | {client} | {n}/{len(rs)} | {checks} |")
    bad = [r for r in doc["results"] if r["status"] != "pass"]
    n = {st: sum(r["status"] == st for r in doc["results"]) for st in ("pass", "fail", "skip")}
    out += ["", "Builds: " + "; ".join(f"{h} {MARK.get(b['status'], '?')} ({b['detail']})"
                                       for h, b in builds.items()) + "."]
    out += ["", f"Totals — {n['pass']} passed, {n['fail']} failed, {n['skip']} skipped "
            f"({doc.get('seconds', '?')} s for the stage)."]
    if bad:
        out += ["", "Not passed:", ""]
        out += [f"- {r['hook']} {r['client']} `{r['check']}`: {r['status']}: {r['detail']}" for r in bad]
    return out


FEDERATED_INTRO = [
    "Five real servers of three transports behind one sluice endpoint (`tests/interop/federated.py`):",
    "server-everything, the TS SDK and the Python SDK 2.x servers over Streamable HTTP, the TS SDK's",
    "legacy HTTP+SSE server (bridged) and server-filesystem on stdio, curated in the config file",
    "(prefixes, include/exclude, an alias, a description). `full:*`: each SDK's full checks with",
    "server-everything's profile (its member keeps its names); `curated:*`: what each SDK sees of the",
    "curation, and a call through every member.",
]

REPLICAS_INTRO = [
    "Three sluice replicas behind HAProxy (Debian's) round-robin, one shared `session_keys`, fronting a",
    "federation of server-everything and the Python SDK 2.x server over Streamable HTTP",
    "(`tests/interop/replicas.py`). `spread:*`: each SDK's full checks while requests spread over",
    "the replicas; `kill-idle`: a replica killed between two requests of one session, which carries",
    "on (the killed one is then restarted and serves old sessions); `kill-in-flight`: the replica",
    "streaming a call killed mid-stream; `after:*`: the full checks again on the two left; `sticky:*`:",
    "the affinity recipe (`stick store-response`/`stick on` Mcp-Session-Id) for a route whose members",
    "live in one process (stdio, legacy HTTP+SSE, plus an HTTP one).",
]


def extra_section(doc: dict, intro: list[str]) -> list[str]:
    """A scenario's rows: client, check, result, what was seen."""
    out = intro + ["", "| client | check | result | detail |", "|---|---|---|---|"]
    for r in doc["results"]:
        detail = r["detail"].replace("|", "\\|").replace("\n", " ")
        out.append(f"| {r['client']} | {r['check']} | {MARK.get(r['status'], '?')} | {detail[:160]} |")
    n = {st: sum(r["status"] == st for r in doc["results"]) for st in ("pass", "fail", "skip")}
    out += ["", f"Totals — {n['pass']} passed, {n['fail']} failed, {n['skip']} skipped."]
    return out


# How each sluice target of tests/conformance/conformance.py reaches the fixture.
CONFORMANCE_TARGETS = {
    "sluice": "through sluice (HTTP)",
    "stdio": "through sluice (stdio, shared child)",
    "stdio-per-session": "through sluice (stdio, a child per session)",
}


def conformance_records(doc: dict) -> list[dict]:
    """One record per run, scenario and target (results.json before the stdio targets had one per run and scenario)."""
    return [r if "target" in r else {**r, "target": "sluice", "proxied": r.get("sluice")} for r in doc["scenarios"]]


def conformance_section(doc: dict) -> list[str]:
    v = doc["versions"]
    recs_all = conformance_records(doc)
    targets = [t for t in CONFORMANCE_TARGETS if any(r["target"] == t for r in recs_all)
               or any(t in s for s in doc["summary"].values())]
    how = {"sluice": "`sluice --upstream http://…/mcp`",
           "stdio": "`sluice --upstream-command 'python fixture_server.py --stdio'` (one shared child)",
           "stdio-per-session": "the same with `--stdio-mode per-session`"}
    out = [
        f"The official suite, `@modelcontextprotocol/conformance` {v['conformance-stable']} (stable) and "
        f"{v['conformance-alpha']} (newest alpha, once per requirement set), against our fixture "
        f"(`tests/conformance/fixture_server.py`, Python `mcp` {v['python-mcp (fixture)']}) on Node {v['node']}, "
        "directly and through sluice: " + "; ".join(f"{CONFORMANCE_TARGETS[t]}: {how[t]}" for t in targets) + ". "
        "A scenario passes when no check in it fails; through sluice it must also succeed every check "
        "it succeeds directly.",
        "",
        "| suite run | scenarios | pass directly | " + " | ".join(f"pass {CONFORMANCE_TARGETS[t]}" for t in targets)
        + " | scored by the requirement set: pass directly / " + " / ".join(t for t in targets)
        + " | sluice ≥ direct |",
        "|---|---|---|" + "---|" * len(targets) + "---|---|",
    ]
    for run in doc["runs"]:
        label = run["label"]
        s = doc["summary"][label]
        recs = [r for r in recs_all if r["run"] == label]
        bad = sorted({f"{r['scenario']} ({r['target']})" for r in recs if r["verdict"] == "fail"})
        args = " ".join(run["args"]) or "(default suite)"
        cells = []
        for t in targets:
            m = s.get(t)
            if m is None:
                cells.append("–")
            elif "skipped" in m:
                cells.append("skipped")
            else:
                gaps = sum(1 for r in recs if r["target"] == t and r["verdict"] == "gap")
                cells.append(f"{m['passed']}" + (f" ({gaps} score less: known gaps)" if gaps else ""))
        scored = run.get("scored")
        if scored:
            direct = {r["scenario"]: r["direct"] for r in recs}
            n_direct = sum(1 for sc in scored if (direct.get(sc) or {}).get("pass"))
            parts = [f"{n_direct}/{len(scored)}"]
            for t in targets:
                if "skipped" in s.get(t, {"skipped": 1}):
                    parts.append("–")
                    continue
                by = {r["scenario"]: r["proxied"] for r in recs if r["target"] == t}
                parts.append(f"{sum(1 for sc in scored if (by.get(sc) or {}).get('pass'))}/{len(scored)}")
            scored_cell = " / ".join(parts)
        else:
            scored_cell = "(no requirement set)"
        out.append(f"| {run['version']} `{args}` | {s['direct']['total']} | {s['direct']['passed']} | "
                   + " | ".join(cells) + f" | {scored_cell} | {'yes' if not bad else 'NO: ' + ', '.join(bad)} |")
    excused: dict[str, set[str]] = {}
    gaps: dict[str, set[str]] = {}
    for r in recs_all:
        if r["verdict"] == "excused":
            excused.setdefault(r["reason"], set()).add(r["scenario"])
        elif r["verdict"] == "gap":
            gaps.setdefault(r["reason"], set()).add(r["scenario"])
    dns = [r for r in recs_all if r["scenario"] == "dns-rebinding-protection"]
    out += ["", "Scenarios the fixture fails on its own; not counted, but through sluice they must fail no",
            "check that does not already fail directly:", ""]
    out += [f"- {', '.join(f'`{n}`' for n in sorted(names))}: {why}" for why, names in excused.items()]
    out += ["- `dns-rebinding-protection` (directly): the fixture runs with the SDK's Host/Origin check off,",
            "  so that the scenario through sluice measures sluice's own check"]
    skips = sorted({(t, why) for lb, by in doc["summary"].items() for t, m in by.items() if (why := m.get("skipped"))})
    if gaps or skips:
        out += ["", "What stdio routes do not have yet (`EXPECTED_STDIO_GAPS` in `tests/conformance/conformance.py`);",
                "these scenarios pass over stdio but score less than directly, and must fail no check the",
                "fixture passes:", ""]
        out += [f"- {', '.join(f'`{n}`' for n in sorted(names))}: {why}" for why, names in gaps.items()]
        for t, why in skips:
            runs = [lb for lb, by in doc["summary"].items() if by.get(t, {}).get("skipped") == why]
            out += [f"- `{t}` skips the {', '.join(runs)} run: {why}"]
    if doc.get("stale_stdio_gaps"):
        out += ["", "Listed as gaps but scoring as directly now (remove them from the table): "
                + ", ".join(f"`{g}`" for g in doc["stale_stdio_gaps"]) + "."]
    if dns:
        ok = all(r["proxied"] and r["proxied"]["pass"] for r in dns)
        out += ["", f"`dns-rebinding-protection` through sluice: {'passes' if ok else 'FAILS'} in every run and on "
                "every target (sluice answers a foreign Host or Origin with 403 itself)."]
    out += ["", f"Verdict: `conformance: {doc['passed']} passed, {doc['failed']} failed` "
            f"({doc['seconds']} s for the stage)."]
    return out


# tests/interop/otlp/run writes no results file: it passes or fails the run.
OTLP_INTRO = [
    '`tests/interop/otlp/run` (a stage of `scripts/test-all`, about 4 s with its',
    'venv cached) sends a `tools/call` with a client `traceparent` through the',
    'sluice binary, tracing on, to a Python upstream, and a Python OTLP/HTTP',
    "receiver parses the export with PyPI's `opentelemetry-proto`",
    '(`tests/interop/otlp/requirements.lock`: 1.45.2, protobuf 7.36.2) as an',
    '`ExportTraceServiceRequest`, so a field name or value type the schema does',
    "not know fails the run. It then checks the exchange span's name",
    "(`tools/call get_weather`), its MCP attributes, its parent (the client's",
    "span), the attempt span's parent (the exchange's), and that the upstream's",
    '`traceparent` names the attempt span. The venv lives in',
    '`~/.cache/sluice-interop/otlp-<hash of the lock>`.',
]


def render(interop: dict | None, conformance: dict | None, hooks: dict | None = None,
           federated: dict | None = None, replicas: dict | None = None) -> str:
    date = (conformance or {}).get("date", "")
    lines = [
        "# Interoperability",
        "",
        "<!-- Generated by tests/interop/matrix.py from target/interop/results.json and",
        "     target/conformance/results.json; edit the script, not this file. -->",
        "",
        "sluice is tested against real MCP peers from the registries, each pinned, both directly",
        "(client → server) and through the proxy (client → sluice → server): the same checks must",
        "pass both ways. Reproduce everything on this page with one command:",
        "",
        "    scripts/test-all",
        "",
        "or only these two stages, then regenerate the page:",
        "",
        "    cargo build -p sluice",
        "    SLUICE_BIN=target/debug/sluice tests/interop/run --both --hooks --federated --replicas",
        "    SLUICE_BIN=target/debug/sluice tests/conformance/run",
        "    python3 tests/interop/matrix.py",
        "",
    ]
    if date:
        lines += [f"Last run: {date[:10]}" + (f", {conformance['versions']['sluice']}." if conformance else "."), ""]
    elif interop:
        lines += [f"Last run: {interop['_date']}.", ""]
    lines += ["## Pinned peers", "", "| peer | version |", "|---|---|"]
    lines += [f"| {p} | {v} |" for p, v in pins()]
    if conformance:
        lines += [f"| Node (runs the conformance suite) | {conformance['versions']['node']} |"]
    lines += ["", "## Interop matrix", ""]
    lines += interop_section(interop) if interop else ["(no interop results: run tests/interop/run --both)"]
    lines += ["", "## Example hooks through sluice", ""]
    lines += hooks_section(hooks) if hooks else ["(no results: run tests/interop/run --hooks)"]
    lines += ["", "## Federated routes: five servers behind one endpoint", ""]
    lines += extra_section(federated, FEDERATED_INTRO) if federated else [
        "(no results: run tests/interop/run --federated)"]
    lines += ["", "## Sessions any replica can serve: three replicas behind HAProxy", ""]
    lines += extra_section(replicas, REPLICAS_INTRO) if replicas else [
        "(no results: run tests/interop/run --replicas)"]
    lines += ["", "## Traces read by opentelemetry-proto", ""]
    lines += OTLP_INTRO
    lines += ["", "## Official conformance suite", ""]
    lines += conformance_section(conformance) if conformance else ["(no results: run tests/conformance/run)"]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interop", type=Path, default=ROOT / "target" / "interop" / "results.json")
    ap.add_argument("--hooks", type=Path, default=ROOT / "target" / "interop" / "hooks.json")
    ap.add_argument("--federated", type=Path, default=ROOT / "target" / "interop" / "federated.json")
    ap.add_argument("--replicas", type=Path, default=ROOT / "target" / "interop" / "replicas.json")
    ap.add_argument("--conformance", type=Path, default=ROOT / "target" / "conformance" / "results.json")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "INTEROP.md")
    ap.add_argument("--stdout", action="store_true")
    a = ap.parse_args()
    load = lambda p: json.loads(p.read_text()) if p.is_file() else None  # noqa: E731
    interop = load(a.interop)
    if interop is not None:
        # results.json carries no date of its own; the file's is the run's.
        interop["_date"] = datetime.datetime.fromtimestamp(a.interop.stat().st_mtime, datetime.timezone.utc).date()
    text = render(interop, load(a.conformance), load(a.hooks), load(a.federated), load(a.replicas))
    if a.stdout:
        sys.stdout.write(text)
    else:
        a.out.write_text(text)
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
