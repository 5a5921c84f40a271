"""Sessions any replica can serve: three sluice processes behind HAProxy
round-robin (no affinity), each fronting one federation of two Streamable
HTTP servers (server-everything and the Python SDK 2.x fixture), sealed with
one shared session key: `tests/interop/run --replicas`.

1. `spread`: the TS SDK and the Python SDK run their full checks through
   HAProxy while their requests spread over the replicas (each replica's
   /metrics must show requests);
2. `kill-idle`: a Python SDK session makes calls, one replica is killed
   (SIGKILL) between two of its requests, and the same session carries on
   through the other two; the killed one is started again (a new process
   that never saw a session: it serves them all the same);
3. `kill-in-flight`: a long call streams its progress through HAProxy, the
   replica serving it (the one whose /metrics shows the open stream) is
   killed mid-stream: the call fails cleanly (the stream ends, no hang, no
   garbage), and its session carries on through the others;
4. `after`: both SDKs' full checks again, on the two replicas left;
5. `sticky`: the affinity recipe for members whose sessions live in one
   process (stdio, legacy HTTP+SSE): a second route on the same replicas
   federates a stdio server, a legacy server and an HTTP one, behind an
   HAProxy backend that learns each session's replica from the answer that
   gave it out (`stick store-response res.hdr(Mcp-Session-Id)`) and sends
   the session's requests there (`stick on req.hdr(Mcp-Session-Id)`);
   both SDKs' full checks pass through it. (Hashing the header alone,
   `balance hdr(Mcp-Session-Id)`, does not work: the replica that minted a
   session is not the one its id hashes to.)

HAProxy's own retries (`retries`, `option redispatch`) take a request away
from a dead replica before it is marked down; nothing here tells sluice
about HAProxy or HAProxy about sessions.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import harness as h

CLIENTS = ("ts-sdk", "py-sdk/legacy")
ROUTE = "fed"
# A long call with progress, for the kill mid-stream (server-everything's).
LONG_CALL = {"name": "trigger-long-running-operation", "arguments": {"duration": 8, "steps": 8}}


def profile() -> tuple[dict, dict[str, str]]:
    """server-everything's profile: its member keeps its names (prefix_mode
    never), the fixture's get the prefix `py`. What cannot pass here, and why."""
    p = h.everything_profile()
    # sluice answers for the federation: an unknown session is 404.
    p["unknown_session_status"] = 404
    unsupported = {
        "get_stream": "no tool sends a notification outside a request on demand",
        "bearer": "no tool reports the Authorization header",
    }
    return p, unsupported


def config(listen: str, admin: str, everything: str, fixture: str, legacy: str, stdio: list[str]) -> str:
    command = "[" + ", ".join(f'"{w}"' for w in stdio) + "]"
    return base_config(listen, admin, everything, fixture) + f"""
[[route]]
name = "sticky"
path = "/sticky"

[[route.server]]
name = "stdio"
command = {command}
prefix_mode = "never"

[[route.server]]
name = "legacy"
upstream = "{legacy}"
transport = "sse"
prefix_mode = "always"

[[route.server]]
name = "http"
upstream = "{fixture}"
prefix_mode = "always"
"""


def base_config(listen: str, admin: str, everything: str, fixture: str) -> str:
    return f"""listen = "{listen}"

[admin]
listen = "{admin}"

[[route]]
name = "{ROUTE}"
path = "/mcp"
session_keys = [{{ from_env = "SLUICE_SESSION_KEY" }}]

[[route.server]]
name = "everything"
upstream = "{everything}"
prefix_mode = "never"

[[route.server]]
name = "py"
upstream = "{fixture}"
prefix_mode = "always"
"""


def haproxy_config(port: int, sticky_port: int, replicas: list[int]) -> str:
    servers = "\n".join(f"    server r{i} 127.0.0.1:{p} check inter 300ms fall 1 rise 2"
                        for i, p in enumerate(replicas, 1))
    return f"""global
    maxconn 512

defaults
    mode http
    timeout connect 1s
    timeout client 120s
    timeout server 120s
    timeout http-keep-alive 2s
    # A request refused by a dead replica goes to another.
    retries 3
    option redispatch 1

frontend mcp
    bind 127.0.0.1:{port}
    default_backend sluice

backend sluice
    balance roundrobin
{servers}

# The affinity recipe (docs/OPERATIONS.md): a session goes back to the
# replica whose answer gave out its Mcp-Session-Id.
frontend mcp_sticky
    bind 127.0.0.1:{sticky_port}
    default_backend sluice_sticky

backend sluice_sticky
    balance roundrobin
    stick-table type string len 1024 size 100k expire 30m
    stick on req.hdr(Mcp-Session-Id)
    stick store-response res.hdr(Mcp-Session-Id)
{servers}
"""


class Replica:
    def __init__(self, name: str, proc: h.Running, port: int, admin: int, cfg: Path) -> None:
        self.name, self.proc, self.port, self.admin, self.cfg = name, proc, port, admin, cfg

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics", timeout=5) as r:
            return r.read().decode()

    def series(self, name: str) -> float:
        """The sum of a metric's samples on the federated route."""
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith(name) and f'route="{ROUTE}"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total


def start_replica(sluice: str, i: int, upstreams: tuple, tmp: Path, env: dict) -> Replica:
    for _attempt in range(3):
        port, admin = h.free_port(), h.free_port()
        cfg = tmp / f"replica{i}.toml"
        cfg.write_text(config(f"127.0.0.1:{port}", f"127.0.0.1:{admin}", *upstreams))
        r = h.Running(f"sluice[replica{i}]", [sluice, "--config", str(cfg)], env)
        try:
            r.wait_for(h.SLUICE_LINE, 20)
            h.wait_tcp(port, 10)
            h.wait_tcp(admin, 10)
            return Replica(f"replica{i}", r, port, admin, cfg)
        except RuntimeError:
            h.kill_group(r.proc)
    raise RuntimeError(f"replica {i} did not start: {r.tail()}")


def restart(sluice: str, old: Replica, env: dict) -> Replica:
    """A new process in the place of a killed one: same config, same ports,
    same key, no memory of any session."""
    r = h.Running(f"sluice[{old.name}, restarted]", [sluice, "--config", str(old.cfg)], env)
    r.wait_for(h.SLUICE_LINE, 20)
    h.wait_tcp(old.port, 10)
    return Replica(old.name, r, old.port, old.admin, old.cfg)


def row(client: str, check: str, ok: bool, detail: str, ms: int = 0) -> dict:
    return h.result(client, "replicas", check, "pass" if ok else "fail", detail, ms)


def full_checks(server: h.Server, url: str, env: dict, env_dir: Path, label: str, turns: bool = False) -> list[dict]:
    """Both SDKs' full checks at `url`, at once (or taking `turns`)."""
    clients = [c for c in h.clients(env_dir) if c.name in CLIENTS]
    with concurrent.futures.ThreadPoolExecutor(1 if turns else len(clients)) as ex:
        futs = [ex.submit(h.run_pair, c, server, url, env) for c in clients]
        out = [r for f in futs for r in f.result()]
    for r in out:
        r["check"] = f"{label}:{r['check']}"
        r["server"] = "replicas"
    return out


def kill_hard(replica: Replica) -> None:
    """SIGKILL at once: no graceful shutdown, streams cut as a crash cuts them."""
    try:
        os.killpg(replica.proc.proc.pid, 9)
    except ProcessLookupError:
        pass
    replica.proc.proc.wait(timeout=5)


def kill_idle(py2: str, url: str, victim: Replica, env: dict) -> list[dict]:
    """A Python SDK session; a replica killed between two of its requests."""
    t0 = time.monotonic()
    cfg = {"url": url, "tool": "echo", "args": {"message": "replicas"}, "text_contains": "Echo: replicas",
           "calls": 6}
    p = h.spawn([py2, str(h.HERE / "clients" / "py_replicas.py"), json.dumps(cfg)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        line = p.stdout.readline()
        if line.strip() != "PAUSE":
            out, err = p.communicate(timeout=30)
            return [row("py-sdk/legacy", "kill-idle", False, f"no PAUSE: {line}{out} {err[-300:]}")]
        kill_hard(victim)
        p.stdin.write("go\n")
        p.stdin.flush()
        out, err = p.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        return [row("py-sdk/legacy", "kill-idle", False, "the session hung after the kill")]
    finally:
        h.kill_group(p)
    ms = round((time.monotonic() - t0) * 1000)
    try:
        rep = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return [row("py-sdk/legacy", "kill-idle", False, f"no report: {out[-200:]} {err[-300:]}", ms)]
    ok = (not rep["error"] and rep["before"] == ["ok"] * 6 and rep["after"] == ["ok"] * 6
          and rep["tools"] > 0)
    detail = (f"{victim.name} killed between calls; before {rep['before'].count('ok')}/6, "
              f"after {rep['after'].count('ok')}/6 in the same session, {rep['tools']} tools listed"
              + (f"; error {rep['error']}" if rep["error"] else ""))
    return [row("py-sdk/legacy", "kill-idle", ok, detail, ms)]


def post(url: str, body: dict, sid: str | None = None, timeout: float = 20):
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-06-18"}
    if sid:
        headers["Mcp-Session-Id"] = sid
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    return urllib.request.urlopen(req, timeout=timeout)


def sse_messages(resp) -> list[dict]:
    return [json.loads(line[5:]) for line in resp.read().decode().splitlines() if line.startswith("data:")]


def kill_in_flight(url: str, replicas: list[Replica]) -> list[dict]:
    """A long call's stream, cut by killing the replica that serves it."""
    t0 = time.monotonic()
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "replicas", "version": "1"}}}
    with post(url, init) as r:
        sid = r.headers["Mcp-Session-Id"]
        r.read()
    with post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid) as r:
        r.read()
    before = {rep.name: rep.series("sluice_sse_streams_open") for rep in replicas}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {**LONG_CALL, "_meta": {"progressToken": "p"}}}
    resp = post(url, call, sid, timeout=30)
    first = b""
    while b"\n\n" not in first:
        chunk = resp.read1(4096) if hasattr(resp, "read1") else resp.read(1)
        if not chunk:
            break
        first += chunk
    if b"progress" not in first:
        return [row("raw-http", "kill-in-flight", False, f"no progress came first: {first[:200]!r}")]
    serving = [rep for rep in replicas
               if rep.series("sluice_sse_streams_open") > before.get(rep.name, 0)]
    if len(serving) != 1:
        return [row("raw-http", "kill-in-flight", False, f"cannot tell which replica serves the call: "
                    f"{[(r.name, r.series('sluice_sse_streams_open')) for r in replicas]}")]
    victim = serving[0]
    kill_hard(victim)
    # The stream must end promptly, and whatever came was whole events.
    rest, t_kill = b"", time.monotonic()
    error = None
    try:
        while True:
            chunk = resp.read1(4096) if hasattr(resp, "read1") else resp.read(1)
            if not chunk:
                break
            rest += chunk
    except Exception as e:  # noqa: BLE001 - a reset connection is the clean end here
        error = type(e).__name__
    ended_in = time.monotonic() - t_kill
    text = (first + rest).decode(errors="replace")
    events = [b for b in re.split(r"\r?\n\r?\n", text) if b.strip()]
    whole = all(json.loads(line[5:]) is not None for b in events for line in b.splitlines()
                if line.startswith("data:"))
    answered = any('"id":1' in b.replace(" ", "") and '"result"' in b for b in events)
    # The session carries on through the others.
    carried = []
    for i in range(6):
        body = {"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"message": f"after {i}"}}}
        try:
            with post(url, body, sid) as r:
                msgs = (sse_messages(r) if r.headers.get("Content-Type", "").startswith("text/event-stream")
                        else [json.loads(r.read())])
            carried.append(any(f"Echo: after {i}" in json.dumps(m) for m in msgs))
        except Exception:  # noqa: BLE001
            carried.append(False)
    ms = round((time.monotonic() - t0) * 1000)
    ok = whole and not answered and ended_in < 10 and all(carried)
    detail = (f"{victim.name} killed mid-stream: the call's stream ended in {ended_in:.1f}s"
              f"{' (' + error + ')' if error else ''}, {len(events)} whole events, no answer; "
              f"the session then made {sum(carried)}/6 calls through the others")
    return [row("raw-http", "kill-in-flight", ok, detail, ms)]


def run(env_dir: Path, sluice: str) -> list[dict]:
    if not shutil.which("haproxy"):
        return [row("-", "start", False, "haproxy is not installed (scripts/test-all installs Debian's)")]
    env = dict(os.environ)
    env["NODE_PATH"] = str(env_dir / "node_modules")
    env["PYTHONPATH"] = str(h.HERE / "servers")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["SLUICE_SESSION_KEY"] = secrets.token_hex(32)
    py2 = str(env_dir / "venv-mcp2" / "bin" / "python")
    by_name = {s.name: s for s in h.servers(env_dir)}
    p, unsupported = profile()
    server = h.Server("replicas", [], p, unsupported)
    procs: list[h.Running] = []
    results: list[dict] = []
    try:
        r, everything = h.start_server(by_name["everything"], env)
        procs.append(r)
        r, fixture = h.start_server(by_name["py-mcp2"], env)
        procs.append(r)
        legacy_server = next(s for s in h.legacy_servers(env_dir) if s.name == "ts-sse")
        r, legacy = h.start_server(legacy_server, env)
        procs.append(r)
        stdio = next(s for s in h.stdio_servers(env_dir, Path("/")) if s.name == "py-mcp1-stdio")
        upstreams = (everything, fixture, legacy, stdio.cmd)
        with tempfile.TemporaryDirectory(prefix="sluice-replicas-") as tmp:
            replicas = [start_replica(sluice, i, upstreams, Path(tmp), env) for i in (1, 2, 3)]
            procs += [rep.proc for rep in replicas]
            port, sticky_port = h.free_port(), h.free_port()
            cfg = Path(tmp) / "haproxy.cfg"
            cfg.write_text(haproxy_config(port, sticky_port, [rep.port for rep in replicas]))
            ha = h.Running("haproxy", ["haproxy", "-f", str(cfg), "-db"], env)
            procs.append(ha)
            h.wait_tcp(port, 10)
            time.sleep(1)  # the health checks mark every replica up
            url = f"http://127.0.0.1:{port}/mcp"

            results += full_checks(server, url, env, env_dir, "spread")
            counts = {rep.name: rep.series("sluice_requests_total") for rep in replicas}
            results.append(row("-", "spread", all(v > 0 for v in counts.values()),
                               "requests per replica: " + ", ".join(f"{k} {v:.0f}" for k, v in counts.items())))

            results += kill_idle(py2, url, replicas[0], env)
            # Back in the pool as a new process that never saw a session.
            replicas[0] = restart(sluice, replicas[0], env)
            procs.append(replicas[0].proc)
            time.sleep(1)  # HAProxy's checks mark it up again
            results += kill_in_flight(url, replicas)
            time.sleep(1)
            # Two replicas left: every check again.
            results += full_checks(server, url, env, env_dir, "after")
            # Process-bound members, with affinity.
            # Its stdio member is one child for every session, whose requests
            # name no call: the clients take turns, as on a stdio route.
            sticky = h.Server("replicas", [], h.fixture_profile(), {"bearer": h.STDIO_NO_HEADERS})
            results += full_checks(sticky, f"http://127.0.0.1:{sticky_port}/sticky", env, env_dir, "sticky",
                                   turns=True)
    except RuntimeError as e:
        results.append(row("-", "start", False, str(e)))
    finally:
        for r in procs:
            r.stop()
        h.save_logs(procs, "replicas")
    return results


def print_table(results: list[dict]) -> None:
    print("\n== replicas (3 sluice behind HAProxy round-robin, one key, two HTTP members) ==")
    for r in results:
        mark = h.MARK[r["status"]]
        print(f"  {mark:4} {r['client']:14} {r['check']:24} {r['detail'][:110]}")


if __name__ == "__main__":
    sys.exit("run through tests/interop/run --replicas")
