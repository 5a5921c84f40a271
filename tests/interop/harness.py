"""Interop harness: real MCP clients x real MCP servers, direct or through sluice.

Started by ./run (which installs the peers first). Standard library only.
Every process it starts gets its own process group and is killed by group at
the end, whatever happens (try/finally, atexit, SIGTERM/SIGINT handlers).
"""

from __future__ import annotations

import argparse
import atexit
import concurrent.futures
import json
import math
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# hooks.py imports this module as `harness`: let it find this very one (its
# process list, killed at exit), not a second copy, when run as a script.
sys.modules.setdefault("harness", sys.modules[__name__])

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FIXTURE = json.loads((HERE / "servers" / "tools.json").read_text())

CHECKS = ["initialize", "tools_list", "tools_call", "progress", "is_error", "jsonrpc_error",
          "ping", "get_stream", "bearer", "resume", "delete", "resources", "prompts", "sampling",
          "elicitation", "roots"]
# Checks in which the server sends a request to the client (over the POST or GET stream).
SERVER_REQUESTS = ("sampling", "elicitation", "roots")
# Unusual but legal token68 characters: a proxy must not touch them.
TOKEN = "Bearer sluice.Interop-token_0123~+/=="
CONCURRENT_SESSIONS = 50
# A shared stdio child through sluice: this many sessions at once on one child
# (ids, progress tokens and server requests rewritten per session).
STDIO_SHARED_SESSIONS = 30
# Per-session mode: each session is a child process of its own.
STDIO_PER_SESSION_SESSIONS = 5

# -- peers ------------------------------------------------------------------------------

OUR_TOOLS = [t["name"] for t in FIXTURE["tools"]]


def fixture_profile(**over) -> dict:
    """What our own fixture servers offer (servers/tools.json)."""
    p = {
        "expected_tools": OUR_TOOLS,
        "paginated": True,
        "calls": [
            {"name": "echo", "args": {"text": "héllo ✓ \"quoted\""},
             "structured": {"text": "héllo ✓ \"quoted\"", "echoed": True}},
            {"name": "add", "args": {"a": 2, "b": 3.5}, "structured": {"sum": 5.5}},
        ],
        "echo": {"name": "echo", "args": {"text": "hello"}},
        "progress": {"name": "progress", "args": {"steps": 5, "interval_ms": 80, "tag": "p"},
                     "steps": 5, "interval_ms": 80,
                     "resume_args": {"steps": 6, "interval_ms": 100, "tag": "r"}},
        "fail_result": {"name": "fail_result"},
        "fail_throw": {"name": "fail_throw", "code": FIXTURE["error_code"]},
        "notify": {"name": "notify"},
        "whoami": {"name": "whoami"},
        "unknown_session_status": 404,
        "resources": {"uri": FIXTURE["resources"][0]["uri"], "text_contains": FIXTURE["resources"][0]["text"],
                      "template": FIXTURE["resource_templates"][0]["uriTemplate"],
                      "template_uri": "sluice://fixture/items/42", "template_text": "item 42"},
        "prompts": {"name": "greet", "args": {"name": "sluice"}, "text_contains": "Hello, sluice!"},
        "sampling": {"name": "sample", "args": {"prompt": "2+2?"}},
        "elicitation": {"name": "elicit"},
        "roots": {"name": "roots"},
    }
    p.update(over)
    return p


@dataclass
class Server:
    name: str
    cmd: list[str]
    profile: dict
    # Checks this peer cannot support, with the reason (reported as "skip").
    unsupported: dict[str, str] = field(default_factory=dict)
    modern: bool = False  # also serves 2026-07-28
    port_env: str | None = None  # server takes its port from this env var (no port 0)
    # With port_env: the line that says it listens, and the path of its URL.
    ready: str = r"listening on port (\d+)"
    path: str = "/mcp"
    # "sse": the legacy HTTP+SSE transport (2024-11-05), reached through sluice's bridge
    # (found by sluice's default transport, `auto`; no flag is given).
    # "stdio": `cmd` speaks MCP on stdin/stdout. Directly, each client session spawns
    # it (the SDKs' stdio client transports); through sluice it is
    # `sluice --upstream-command` in `stdio_mode`.
    transport: str = "streamable"
    stdio_mode: str = "shared"  # shared | per-session (sluice's --stdio-mode) | federation (one --member)
    # stdio: variables the command needs beyond PATH, HOME and LANG (the harness's
    # environment holds them; sluice gets `--stdio-env NAME` for each).
    stdio_env: tuple[str, ...] = ()
    cwd: str | None = None  # stdio: working directory (sluice's --stdio-cwd)
    # stdio, per-session rows: the row whose direct run this would repeat.
    same_direct_as: str | None = None


def servers(env_dir: Path) -> list[Server]:
    node_modules = env_dir / "node_modules"
    py1 = str(env_dir / "venv-mcp1" / "bin" / "python")
    py2 = str(env_dir / "venv-mcp2" / "bin" / "python")
    # The Python SDKs' replay has a window (their own comment says so) in which an
    # event stored between the replay and the live tail is never sent: the resumed
    # stream must carry live events and the answer, but may miss one in between.
    py_profile = fixture_profile()
    py_profile["progress"] = {**py_profile["progress"], "resume_gap_ok": True}
    no_session = "stateless server: no session, no GET stream, no resumption, no DELETE"
    no_back_channel = "stateless JSON answers: no channel for a server request to reach the client"
    return [
        Server("ts-sessions", ["node", str(HERE / "servers" / "ts_server.cjs"), "--mode", "sessions"],
               fixture_profile()),
        Server("ts-stateless", ["node", str(HERE / "servers" / "ts_server.cjs"), "--mode", "stateless"],
               fixture_profile(progress={**fixture_profile()["progress"], "streams": False}, notify=None),
               {"get_stream": no_session, "resume": no_session, "delete": no_session,
                **{k: no_back_channel for k in SERVER_REQUESTS}}),
        Server("everything",
               ["node", str(node_modules / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"),
                "streamableHttp"],
               everything_profile(),
               {"get_stream": "no tool sends a notification outside a request on demand",
                "bearer": "no tool reports the Authorization header"},
               port_env="PORT"),
        Server("py-mcp2", [py2, str(HERE / "servers" / "py_mcp2_server.py")], py_profile, modern=True),
        Server("py-mcp1", [py1, str(HERE / "servers" / "py_mcp1_server.py")], py_profile),
    ]


def everything_profile() -> dict:
    return {
                   "expected_tools": ["echo", "get-sum", "get-structured-content", "trigger-long-running-operation"],
                   "paginated": False,
                   "calls": [
                       {"name": "echo", "args": {"message": "héllo ✓"}, "text_contains": "Echo: héllo ✓"},
                       {"name": "get-sum", "args": {"a": 2, "b": 3}, "text_contains": "5"},
                       {"name": "get-structured-content", "args": {"location": "Chicago"},
                        "structured_keys": ["temperature", "conditions", "humidity"]},
                   ],
                   "echo": {"name": "echo", "args": {"message": "hello"}},
                   "progress": {"name": "trigger-long-running-operation", "args": {"duration": 0.4, "steps": 5},
                                "steps": 5, "interval_ms": 80,
                                "resume_args": {"duration": 0.6, "steps": 6},
                                # Its event store returns an event id where the SDK wants the
                                # stream id, so events after a replay never reach the resumed
                                # stream: resume only once the call is over (pure replay).
                                "resume_pause_ms": 900},
                   # Unknown tools and bad arguments come back as isError results here.
                   "fail_result": {"name": "get-sum", "args": {"a": "x"}},
                   "fail_throw": {"prompt": "no-such-prompt", "code": -32602},
                   "notify": None,
                   "whoami": None,
                   # MCP-NOTES: it answers 400 (not 404) for an unknown session.
                   "unknown_session_status": 400,
                   "resources": {"uri": "demo://resource/static/document/features.md",
                                 "text_contains": "# Everything Server - Features",
                                 "template": "demo://resource/dynamic/text/{resourceId}",
                                 "template_uri": "demo://resource/dynamic/text/3",
                                 "template_text": "Resource 3: This is a plaintext resource"},
                   "prompts": {"name": "args-prompt", "args": {"city": "Lyon"},
                               "text_contains": "What's weather in Lyon?"},
                   # Registered only for clients that declare the capability.
                   "sampling": {"name": "trigger-sampling-request", "args": {"prompt": "2+2?", "maxTokens": 20}},
                   "elicitation": {"name": "trigger-elicitation-request"},
                   # The tool asks for roots on the GET stream (no related
                   # request): a call made before the client's GET stream is
                   # up loses that request and hangs. The server's own first
                   # roots/list (350 ms after initialize, same stream) shows
                   # the stream is up; the clients wait for it (10 s at most).
                   "roots": {"name": "get-roots-list", "await_first": "roots/list"},
               }


def legacy_servers(env_dir: Path) -> list[Server]:
    """Servers of the legacy HTTP+SSE transport (2024-11-05). Streamable HTTP clients
    reach them through sluice's bridge, never directly; sluice finds that out itself
    (`sluice --upstream URL/sse`, no transport flag)."""
    node_modules = env_dir / "node_modules"
    py1 = str(env_dir / "venv-mcp1" / "bin" / "python")
    py2 = str(env_dir / "venv-mcp2" / "bin" / "python")
    py_profile = fixture_profile()
    no_resume = "the bridge keeps no event ids: legacy backends have none to resume from"
    legacy = {"resume": no_resume}
    # sluice owns the session ids of a bridged session: an unknown one is its 404.
    everything = {**everything_profile(), "unknown_session_status": 404}
    return [
        Server("ts-sse", ["node", str(HERE / "servers" / "ts_sse_server.cjs")], fixture_profile(), legacy,
               transport="sse"),
        Server("everything-sse",
               ["node", str(node_modules / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"),
                "sse"],
               everything,
               {**legacy, "get_stream": "no tool sends a notification outside a request on demand",
                "bearer": "no tool reports the Authorization header"},
               port_env="PORT", ready=r"running on port (\d+)", path="/sse", transport="sse"),
        Server("py-mcp2-sse", [py2, str(HERE / "servers" / "py_mcp2_sse_server.py")], py_profile, legacy,
               transport="sse"),
        Server("py-mcp1-sse", [py1, str(HERE / "servers" / "py_mcp1_sse_server.py")], py_profile, legacy,
               transport="sse"),
    ]


STDIO_NO_HEADERS = "stdio: no HTTP request reaches the server, so there is no Authorization header to see"
STDIO_DIRECT_NO_HTTP = "stdio directly: no HTTP session (the client ends it by closing the child's stdin)"
STDIO_PER_SESSION_NO_MODERN = ("a child per session serves no request without a session: 2026-07-28 clients "
                               "get a plain 400 and fall back to the handshake (the shared rows run them)")
STDIO_DIRECT_NO_RESUME = "stdio directly: no HTTP stream to resume, no event ids"
FS_HELLO = "hello from sluice's interop fixture ✓"
FS_TODO = "- [ ] read me through a stdio child"


def make_fs_root() -> Path:
    """A fresh directory for server-filesystem, with a space in its name (the command
    line must be quoted right) and a few files for the tools to read."""
    root = Path(tempfile.mkdtemp(prefix="sluice interop fs ")).resolve()
    (root / "hello.txt").write_text(FS_HELLO + "\n", encoding="utf-8")
    (root / "notes").mkdir()
    (root / "notes" / "todo.md").write_text(f"# todo\n\n{FS_TODO}\n", encoding="utf-8")
    (root / "notes" / "deep").mkdir()
    (root / "data.json").write_text(json.dumps({"answer": 42}) + "\n", encoding="utf-8")
    return root


def fs_profile(root: Path) -> dict:
    return {
        "expected_tools": ["read_text_file", "list_directory", "write_file", "list_allowed_directories"],
        "paginated": False,
        "calls": [
            {"name": "read_text_file", "args": {"path": str(root / "hello.txt")}, "text_contains": FS_HELLO},
            # Relative to the allowed directories.
            {"name": "read_text_file", "args": {"path": "notes/todo.md"}, "text_contains": FS_TODO},
            {"name": "list_directory", "args": {"path": str(root)}, "text_contains": "[DIR] notes"},
            # The second allowed directory was given relative to the working directory.
            {"name": "list_allowed_directories", "args": {}, "text_contains": str(root / "notes")},
        ],
        "echo": None,
        "progress": None,
        "fail_result": {"name": "read_text_file", "args": {"path": "/sluice-interop-no-such-dir/x.txt"}},
        "fail_throw": {"name": "no_such_tool", "code": -32602},
        "notify": None,
        "whoami": None,
        "unknown_session_status": 404,
        # Files are resources, read through the `file://{+path}` template; resources/list
        # is empty.
        "resources": {"uri": (root / "hello.txt").as_uri(), "listed": False, "text_contains": FS_HELLO,
                      "template": "file://{+path}", "template_uri": (root / "notes" / "todo.md").as_uri(),
                      "template_text": FS_TODO},
        # The server replaces its allowed directories with the client's roots: the
        # client answers the command line's two and one more, which only the roots
        # can have brought (and a shared child's allow-list still serves the others).
        "roots": {"name": "list_allowed_directories",
                  "roots": [root.as_uri(), (root / "notes").as_uri(), (root / "notes" / "deep").as_uri()],
                  "want": str(root / "notes" / "deep")},
    }


def stdio_servers(env_dir: Path, fs_root: Path) -> list[Server]:
    """MCP servers on stdio, each a command line. Each appears twice through sluice:
    `NAME` (`--stdio-mode shared`: one child for every session) and
    `NAME-per-session` (a child per session); directly only `NAME` runs."""
    node = shutil.which("node") or "node"
    node_modules = env_dir / "node_modules"
    py1 = str(env_dir / "venv-mcp1" / "bin" / "python")
    py2 = str(env_dir / "venv-mcp2" / "bin" / "python")
    common = {"bearer": STDIO_NO_HEADERS}
    everything = {**everything_profile(), "unknown_session_status": 404}
    # No GET-stream race on stdio: a roots/list of the server's own is not waited for.
    everything["roots"] = {k: v for k, v in everything["roots"].items() if k != "await_first"}
    # sluice keeps the events of a stdio route itself: resume while the call runs.
    everything["progress"] = {k: v for k, v in everything["progress"].items() if k != "resume_pause_ms"}
    no_notify = "no tool sends a notification outside a request on demand"
    fs_cannot = {
        "progress": "no tool reports progress",
        "resume": "no tool reports progress (the check resumes a call's progress)",
        "get_stream": no_notify,
        "prompts": "no prompts (prompts/list is -32601)",
        "sampling": "no tool asks the client to sample",
        "elicitation": "no tool asks the client for input",
        "concurrency": "no tool echoes its input; the other stdio rows cover it",
    }
    base = [
        ("everything-stdio",
         [node, str(node_modules / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"), "stdio"],
         everything, {**common, "get_stream": no_notify}, (), None),
        # Two allowed directories: the fixture's (absolute, with a space) and `notes`,
        # relative to the working directory: with a wrong one, `notes` is skipped
        # (with a warning) and list_allowed_directories lacks it.
        ("fs-stdio",
         [node, str(node_modules / "@modelcontextprotocol" / "server-filesystem" / "dist" / "index.js"),
          str(fs_root), "notes"],
         fs_profile(fs_root), {**common, **fs_cannot}, (), str(fs_root)),
        ("py-mcp2-stdio", [py2, str(HERE / "servers" / "py_mcp2_server.py"), "--stdio"], fixture_profile(),
         common, ("PYTHONDONTWRITEBYTECODE",), None),
        ("py-mcp1-stdio", [py1, str(HERE / "servers" / "py_mcp1_server.py"), "--stdio"], fixture_profile(),
         common, ("PYTHONDONTWRITEBYTECODE",), None),
    ]
    # A server that asks for roots once (at start) and keeps them: a shared child has
    # the first session's roots for everyone, so the check (each client's roots
    # reaching the server) holds only per session. docs/CONFIG.md says so.
    roots_once = {"everything-stdio", "fs-stdio"}
    shared_roots = ("a shared child asks for roots once, at start, and keeps the first session's: "
                    "per-session mode gives each client its own")
    out = []
    for name, cmd, profile, unsupported, env_names, cwd in base:
        for mode in ("shared", "per-session"):
            unsupported = dict(unsupported)
            if mode == "shared" and name in roots_once:
                unsupported.setdefault("roots", shared_roots)
            out.append(Server(name if mode == "shared" else f"{name}-per-session", cmd, profile, dict(unsupported),
                              transport="stdio", stdio_mode=mode, stdio_env=env_names, cwd=cwd,
                              same_direct_as=None if mode == "shared" else name))
        # A one-member federation (`--member`): the names stay as they are (the prefix
        # applies with several members), so every check runs as on the server itself,
        # through the fan-out machine, sealed sessions and tagged server requests.
        # Members take no working directory or variables on the command line yet.
        if cwd is None and not env_names:
            fed = dict(unsupported)
            if name in roots_once:
                fed.setdefault("roots", shared_roots)
            out.append(Server(f"{name}-federated", cmd, profile, fed, transport="stdio",
                              stdio_mode="federation", same_direct_as=name))
    return out


def stdio_launch(s: Server, env: dict) -> dict:
    """How a client driver spawns a stdio server itself (direct mode)."""
    return {"command": s.cmd[0], "args": s.cmd[1:], "cwd": s.cwd,
            "env": {k: env[k] for k in s.stdio_env if k in env}}


@dataclass
class ClientSpec:
    name: str
    cmd: list[str]
    mode: str = "legacy"  # legacy | auto | 2026-07-28
    raw_checks: bool = True  # runs the raw-HTTP checks (resume, delete)


def clients(env_dir: Path) -> list[ClientSpec]:
    py2 = str(env_dir / "venv-mcp2" / "bin" / "python")
    pyc = str(HERE / "clients" / "py_client.py")
    return [
        ClientSpec("ts-sdk", ["node", str(HERE / "clients" / "ts_client.cjs")]),
        ClientSpec("py-sdk/legacy", [py2, pyc], "legacy"),
        ClientSpec("py-sdk/auto", [py2, pyc], "auto", raw_checks=False),
        ClientSpec("py-sdk/2026-07-28", [py2, pyc], "2026-07-28", raw_checks=False),
    ]


def plan(client: ClientSpec, server: Server, only_checks=None, mode: str = "proxy") -> tuple[list[str], dict[str, str]]:
    """Which checks this pair runs (`mode`: direct or proxy), and why the others are skipped."""
    run, skip = [], {}
    stdio = server.transport == "stdio"
    # A shared stdio child behind sluice serves 2026-07-28 clients too: sluice
    # is their server, the child stays in the handshake era.
    serves_modern = server.modern or (stdio and mode == "proxy" and server.stdio_mode == "shared")
    modern = client.mode == "2026-07-28" or (client.mode == "auto" and serves_modern)
    for check in CHECKS:
        if only_checks and check not in only_checks:
            continue
        if stdio and client.mode != "legacy" and mode == "direct":
            skip[check] = "directly, stdio rows run the Python SDK client in its handshake-era mode only"
        elif stdio and client.mode != "legacy" and server.stdio_mode == "federation":
            skip[check] = "federated routes serve the handshake era; 2026-07-28 clients come next"
        elif stdio and client.mode != "legacy" and server.stdio_mode != "shared":
            skip[check] = STDIO_PER_SESSION_NO_MODERN
        elif client.mode == "2026-07-28" and not serves_modern:
            skip[check] = "server speaks only the handshake era"
        elif stdio and mode == "direct" and check == "resume":
            skip[check] = STDIO_DIRECT_NO_RESUME
        elif stdio and mode == "direct" and check == "delete":
            skip[check] = STDIO_DIRECT_NO_HTTP
        elif check in server.unsupported:
            skip[check] = server.unsupported[check]
        elif check in ("resume", "delete") and not client.raw_checks:
            skip[check] = "raw-HTTP check, run once per server by the legacy clients"
        elif modern and check in ("ping", "get_stream"):
            skip[check] = "2026-07-28 has no ping and no GET stream"
        elif modern and check in SERVER_REQUESTS:
            skip[check] = "2026-07-28 has no server-to-client requests outside a request's input-required round"
        else:
            run.append(check)
    return run, skip


# -- processes --------------------------------------------------------------------------

_children: list[subprocess.Popen] = []
_children_lock = threading.Lock()


def spawn(cmd, **kw) -> subprocess.Popen:
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    with _children_lock:
        _children.append(p)
    return p


def kill_group(p: subprocess.Popen) -> None:
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
    # The leader may be gone while its group lives on.
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(timeout=3)
    except subprocess.TimeoutExpired:
        pass


def kill_all() -> None:
    with _children_lock:
        procs = list(_children)
        _children.clear()
    for p in procs:
        kill_group(p)


def _on_signal(signum, _frame):
    kill_all()
    sys.exit(128 + signum)


class Running:
    """A started long-lived peer: its process, its collected output, its URL."""

    def __init__(self, name: str, cmd: list[str], env: dict | None = None) -> None:
        self.name = name
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self.proc = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                          env=env, text=True, errors="replace")
        self.pumps = [threading.Thread(target=self._pump, args=(stream,), daemon=True)
                      for stream in (self.proc.stdout, self.proc.stderr)]
        for t in self.pumps:
            t.start()

    def _pump(self, stream) -> None:
        for line in stream:
            line = line.rstrip("\n")
            self.log.append(line)
            self.lines.put(line)

    def wait_for(self, pattern: re.Pattern, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}") from None
                continue
            m = pattern.search(line)
            if m:
                return m
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s: {self.tail()}")

    def stop(self) -> None:
        """SIGTERM to its group, then wait until all it wrote is in `log`."""
        kill_group(self.proc)
        for t in self.pumps:
            t.join(timeout=5)

    def tail(self, n: int = 8) -> str:
        return " | ".join(self.log[-n:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_tcp(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def start_server(s: Server, env: dict) -> tuple[Running, str]:
    if s.port_env:
        # This peer cannot report a port it chose: pick one (a small race; retried).
        for _attempt in range(3):
            port = free_port()
            r = Running(s.name, s.cmd, env | {s.port_env: str(port)})
            try:
                r.wait_for(re.compile(s.ready), 30)
                wait_tcp(port, 10)
                return r, f"http://127.0.0.1:{port}{s.path}"
            except RuntimeError:
                kill_group(r.proc)
        raise RuntimeError(f"{s.name} did not start: {r.tail()}")
    r = Running(s.name, s.cmd, env)
    m = r.wait_for(re.compile(r"READY (http://\S+)"), 30)
    return r, m.group(1)


SLUICE_LINE = re.compile(r"sluice listening on (?:https?://)?([^\s/]+)")


def stdio_sluice_args(s: Server) -> list[str]:
    """sluice's flags for a stdio server: the command line as one shell-quoted
    argument, the mode, and what the child needs beyond PATH, HOME and LANG."""
    if s.stdio_mode == "federation":
        return ["--member", f"{s.name.removesuffix('-federated').removesuffix('-stdio')}={shlex.join(s.cmd)}"]
    args = ["--upstream-command", shlex.join(s.cmd), "--stdio-mode", s.stdio_mode]
    for name in s.stdio_env:
        args += ["--stdio-env", name]
    if s.cwd:
        args += ["--stdio-cwd", s.cwd]
    return args


def start_sluice(sluice: str, upstream: str | Server, name: str, env: dict) -> tuple[Running, str]:
    """sluice in front of `upstream` (a URL, or a stdio Server whose command sluice
    spawns); returns the URL clients should use.

    No transport flag: sluice's default (`auto`) must find out itself whether the
    upstream speaks Streamable HTTP (passed through, the server sees only the clients'
    requests) or the legacy HTTP+SSE transport (bridged), from its answer to the first
    POST.

    Asks for port 0 and reads `sluice listening on http://ADDR` from its output;
    with SLUICE_FIXED_PORT=1 (or if it reports port 0 or prints no such line) we
    pick a free port ourselves and wait for it to accept connections.
    """
    if isinstance(upstream, Server):
        path, upstream_args = "/mcp", stdio_sluice_args(upstream)
    else:
        path, upstream_args = "/" + upstream.split("/", 3)[3], ["--upstream", upstream]
    extra = shlex.split(os.environ.get("SLUICE_ARGS", ""))
    fixed = os.environ.get("SLUICE_FIXED_PORT") == "1"
    for _attempt in range(3):
        port = free_port() if fixed else 0
        listen = f"127.0.0.1:{port}"
        r = Running(f"sluice[{name}]", [sluice, *upstream_args, "--listen", listen, *extra], env)
        try:
            if fixed:
                # The port is ours: a listening socket is ready enough, no line needed.
                wait_tcp(port, 20)
                return r, f"http://{listen}{path}"
            m = r.wait_for(SLUICE_LINE, 20)
            addr = m.group(1)
            if addr.endswith(":0"):
                kill_group(r.proc)
                fixed = True
                continue
            wait_tcp(int(addr.rsplit(":", 1)[1]), 10)
            return r, f"http://{addr}{path}"
        except RuntimeError:
            kill_group(r.proc)
            if not fixed:
                fixed = True
                continue
    raise RuntimeError(f"sluice did not start in front of {name}: {r.tail()}")


def run_driver(cmd: list[str], cfg: dict, env: dict, timeout: float) -> tuple[list[dict], str]:
    p = spawn(cmd + [json.dumps(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
              stdin=subprocess.DEVNULL, env=env, text=True, errors="replace")
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(p)
        out, err = p.communicate()
        err += f"\n(driver killed after {timeout:.0f}s)"
    finally:
        kill_group(p)
        with _children_lock:
            if p in _children:
                _children.remove(p)
    results = []
    for line in out.splitlines():
        try:
            results.append(json.loads(line))
        except ValueError:
            pass
    return results, err.strip()


# -- the run ----------------------------------------------------------------------------


def result(client, server, check, status, detail, ms=0):
    return {"client": client, "server": server, "check": check, "status": status, "detail": detail, "ms": ms}


def target_cfg(s: Server, url: str | None, env: dict) -> dict:
    """The drivers' `url`, or `stdio` (a command they spawn themselves) when a stdio
    server is driven directly."""
    return {"url": url} if url else {"stdio": stdio_launch(s, env)}


def run_pair(c: ClientSpec, s: Server, url: str | None, env: dict, only_checks=None, mode="proxy") -> list[dict]:
    checks, skip = plan(c, s, only_checks, mode)
    out = [result(c.name, s.name, k, "skip", why) for k, why in skip.items()]
    if not checks:
        return out
    cfg = {**target_cfg(s, url, env), "mode": c.mode, "checks": checks, "profile": s.profile, "token": TOKEN,
           "timeout": 30}
    if s.transport == "stdio":
        # Each session may start a Python child: on two busy cores, slow.
        cfg |= {"timeout": 60, "read_timeout": 45}
    got, err = run_driver(c.cmd, cfg, env, timeout=cfg["timeout"] * len(checks) + 30)
    seen = set()
    for r in got:
        seen.add(r["check"])
        out.append(result(c.name, s.name, r["check"], r["status"], r["detail"], r.get("ms", 0)))
    for k in checks:
        if k not in seen:
            out.append(result(c.name, s.name, k, "fail", f"driver gave no result; stderr: {err[-500:]}"))
    return out


def run_inspector(env_dir: Path, s: Server, url: str | None, env: dict) -> list[dict]:
    """The MCP Inspector in CLI mode: tools/list and one tools/call; of a URL, or of
    a stdio server's command line when `url` is None."""
    launcher = env_dir / "node_modules" / ".bin" / "mcp-inspector"
    call = s.profile["calls"][0]
    # Starting a stdio child (or sluice's, per session) can outlast the 15 s default
    # on a busy machine.
    patience = ["--connect-timeout", "60000"] if s.transport == "stdio" else []
    out = []
    for check, extra in (
        ("tools_list", ["--method", "tools/list"]),
        ("tools_call", ["--method", "tools/call", "--tool-name", call["name"],
                        "--tool-arg", *[f"{k}={v}" for k, v in call["args"].items()]]),
    ):
        t0 = time.monotonic()
        if url:
            argv = [url, "--transport", "http", *patience, *extra]
        else:
            # The command last, after `--` (which also ends --tool-arg's list).
            argv = ["--transport", "stdio", *patience, *extra]
            if s.cwd:
                argv += ["--cwd", s.cwd]
            for k, v in stdio_launch(s, env)["env"].items():
                argv += ["-e", f"{k}={v}"]
            argv += ["--", *s.cmd]
        p = spawn(["node", str(launcher), "--cli", *argv],
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                  env=env | {"MCP_CATALOG_PATH": str(env_dir / "inspector-catalog.json")},
                  text=True, errors="replace")
        try:
            stdout, stderr = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            stdout, stderr = "", "timed out"
        finally:
            kill_group(p)
        ms = round((time.monotonic() - t0) * 1000)
        try:
            doc = json.loads(stdout)
        except ValueError:
            out.append(result("inspector-cli", s.name, check, "fail",
                              f"exit {p.returncode}, no JSON: {(stderr or stdout)[-300:]}", ms))
            continue
        if check == "tools_list":
            names = [t.get("name") for t in doc.get("tools", [])]
            first = s.profile["expected_tools"][0]
            ok = first in names
            detail = f"{len(names)} tools listed" + ("" if ok else f", {first} missing")
        else:
            texts = " ".join(b.get("text", "") for b in doc.get("content", []))
            if "structured" in call:
                ok = doc.get("structuredContent") == call["structured"] and not doc.get("isError")
            else:
                ok = call.get("text_contains", "") in texts and not doc.get("isError")
            detail = f"isError={doc.get('isError', False)}, text {texts[:60]!r}"
        out.append(result("inspector-cli", s.name, check, "pass" if ok else "fail", detail, ms))
    return out


def run_concurrency(py2: str, targets: list[tuple[Server, str]], env: dict) -> list[dict]:
    """≥ 50 sessions at once across the HTTP servers, and at once with them, many on
    each stdio server through sluice; each session must see only its own traffic.

    On a shared stdio child, notifications outside a request (`notify`'s log message)
    go to every session (sluice cannot tell whose they are), so there a session
    must see its own among them rather than only its own."""
    http = [(s, url) for s, url in targets if s.transport != "stdio"]
    stdio = [(s, url) for s, url in targets if s.transport == "stdio" and "concurrency" not in s.unsupported]
    out = [result("py-sdk/legacy", s.name, "concurrency", "skip", s.unsupported["concurrency"])
           for s, _ in targets if s.transport == "stdio" and "concurrency" in s.unsupported]
    runs = []
    if http:
        per = math.ceil(CONCURRENT_SESSIONS / len(http))
        runs += [(s, url, "auto", per, False) for s, url in http]
    for s, url in stdio:
        shared = s.stdio_mode != "per-session"
        runs.append((s, url, "legacy", STDIO_SHARED_SESSIONS if shared else STDIO_PER_SESSION_SESSIONS, shared))
    # A stdio child's requests carry nothing that names the call they serve, so there
    # every session also answers a sampling request of its own: per session, it must
    # get there; on a shared child, with several sessions' calls in flight, sluice may
    # refuse it (it cannot tell whose it is), but it must never reach another session.
    server_requests = {s.name: "own" if s.stdio_mode == "per-session" else "own-or-refused"
                       for s, _ in stdio if "sampling" not in s.unsupported}
    pyc = str(HERE / "clients" / "py_client.py")
    jobs = []
    # Two waves: per-session rows start a child per session, which would starve
    # the rest of the machine's two cores if started with them.
    for wave in ([r for r in runs if not r[0].same_direct_as], [r for r in runs if r[0].same_direct_as]):
        with concurrent.futures.ThreadPoolExecutor(max(1, len(wave))) as ex:
            for s, url, mode, n, broadcast in wave:
                cfg = {"url": url, "mode": mode, "checks": ["concurrency"], "profile": s.profile,
                       "sessions": n, "salt": s.name, "timeout": 90, "broadcast_notifications": broadcast,
                       "server_requests": server_requests.get(s.name),
                       # A child per session: many Python children starting at once
                       # take a while on two busy cores.
                       "read_timeout": 60 if s.transport == "stdio" else 20}
                jobs.append((s, f"py-sdk/{mode} x{n}", ex.submit(run_driver, [py2, pyc], cfg, env, 120)))
    for s, client, job in jobs:
        got, err = job.result()
        if not got:
            out.append(result(client, s.name, "concurrency", "fail", f"driver gave no result; stderr: {err[-500:]}"))
        for r in got:
            out.append(result(client, s.name, "concurrency", r["status"], r["detail"], r.get("ms", 0)))
    return out


def select_servers(env_dir: Path, fs_root: Path, legacy: str = "with", stdio: str = "with") -> list[Server]:
    """The server pool: Streamable HTTP, legacy HTTP+SSE and stdio groups, each
    `with` (default), `without` or `only` (several `only` groups: their union)."""
    groups = {"http": ("with", servers(env_dir)), "legacy": (legacy, legacy_servers(env_dir)),
              "stdio": (stdio, stdio_servers(env_dir, fs_root))}
    only = [g for g, (sel, _) in groups.items() if sel == "only"]
    keep = only or [g for g, (sel, _) in groups.items() if sel != "without"]
    return [s for g in keep for s in groups[g][1]]


def run_mode(mode: str, env_dir: Path, sluice: str | None, only_servers, only_clients, jobs: int,
             legacy: str = "with", only_checks=None, stdio: str = "with") -> list[dict]:
    env = dict(os.environ)
    env["NODE_PATH"] = str(env_dir / "node_modules")
    env["PYTHONPATH"] = str(HERE / "servers")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    fs_root = make_fs_root()
    try:
        results = _run_mode(mode, env_dir, sluice, only_servers, only_clients, jobs, only_checks, env,
                            select_servers(env_dir, fs_root, legacy, stdio))
    finally:
        shutil.rmtree(fs_root, ignore_errors=True)
    for r in results:
        r["mode"] = mode
    return results


def _run_mode(mode, env_dir, sluice, only_servers, only_clients, jobs, only_checks, env, pool) -> list[dict]:
    all_servers = [s for s in pool if not only_servers or s.name in only_servers]
    results: list[dict] = []
    if mode == "direct":
        for s in [s for s in all_servers if s.transport == "sse"]:
            results.append(result("-", s.name, "start", "skip",
                                  "legacy HTTP+SSE server: Streamable HTTP clients reach it through sluice only"))
        for s in [s for s in all_servers if s.same_direct_as]:
            results.append(result("-", s.name, "start", "skip",
                                  f"per-session is a mode of sluice; directly this is {s.same_direct_as}"))
        all_servers = [s for s in all_servers if s.transport != "sse" and not s.same_direct_as]
    all_clients = [c for c in clients(env_dir) if not only_clients or c.name in only_clients]
    # (server, URL); None: a stdio server the clients spawn themselves (direct mode).
    started: list[tuple[Server, str | None]] = []
    procs: list[Running] = []
    try:
        for s in all_servers:
            try:
                if s.transport == "stdio":
                    url = None
                    if mode == "proxy":
                        sr, url = start_sluice(sluice, s, s.name, env)
                        procs.append(sr)
                else:
                    r, url = start_server(s, env)
                    procs.append(r)
                    if mode == "proxy":
                        sr, url = start_sluice(sluice, url, s.name, env)
                        procs.append(sr)
                started.append((s, url))
            except RuntimeError as e:
                results.append(result("-", s.name, "start", "fail", str(e)))
        inspector = (not only_clients or "inspector-cli" in only_clients) and not only_checks

        def one_by_one(s: Server, url: str) -> list[dict]:
            out = []
            for c in all_clients:
                out += run_pair(c, s, url, env, only_checks, mode)
            return out + (run_inspector(env_dir, s, url, env) if inspector else [])

        with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
            futs = []
            for s, url in started:
                if url and s.transport == "stdio" and s.stdio_mode != "per-session":
                    # One child serves every session here, and a child's request
                    # (sampling, elicitation, roots) names no call: with other
                    # sessions' calls in flight sluice refuses it rather than guess
                    # (the concurrency check covers that). Its clients take turns.
                    futs.append(ex.submit(one_by_one, s, url))
                    continue
                futs += [ex.submit(run_pair, c, s, url, env, only_checks, mode) for c in all_clients]
                if inspector:
                    futs.append(ex.submit(run_inspector, env_dir, s, url, env))
            for f in futs:
                results += f.result()
        if started and (not only_clients or "concurrency" in only_clients) and (
                not only_checks or "concurrency" in only_checks):
            targets = [(s, url) for s, url in started if url]
            results += [result("py-sdk/legacy", s.name, "concurrency", "skip",
                               "stdio directly: every session is a process of its own, nothing is shared")
                        for s, url in started if not url]
            if targets:
                results += run_concurrency(str(env_dir / "venv-mcp2" / "bin" / "python"), targets, env)
        for r in procs:
            if r.proc.poll() is not None:
                results.append(result("-", r.name, "alive", "fail",
                                      f"exited early with {r.proc.returncode}: {r.tail()}"))
    finally:
        for r in procs:
            r.stop()
        save_logs(procs, mode)
    return results


LOGS = ROOT / "target" / "interop" / "logs"


def save_logs(procs: list[Running], mode: str) -> None:
    """Each server's and sluice's output, for digging: target/interop/logs/MODE-NAME.log."""
    LOGS.mkdir(parents=True, exist_ok=True)
    for r in procs:
        name = re.sub(r"[^\w.-]+", "-", r.name).strip("-")
        (LOGS / f"{mode}-{name}.log").write_text("\n".join(r.log) + "\n", encoding="utf-8", errors="replace")


# -- report -----------------------------------------------------------------------------

MARK = {"pass": "ok", "fail": "FAIL", "skip": "-"}


def print_table(results: list[dict], mode: str, stdio_names: set[str] = frozenset(), order=()) -> None:
    """One table per server group (HTTP, then stdio), clients × checks down, servers
    across. A server not started in this mode is a line under its table, not a
    column; a client skipped on every server of a table is named once."""
    rows = [r for r in results if r["mode"] == mode]
    print(f"\n== interop matrix ({mode}) ==")
    idle = {r["server"]: r["detail"] for r in rows if r["check"] == "start" and r["status"] == "skip"}
    active = list(dict.fromkeys(r["server"] for r in rows if r["server"] not in idle and r["client"] != "-"))
    rank = {name: i for i, name in enumerate(order)}
    active.sort(key=lambda name: rank.get(name, len(rank)))
    for group in ([s for s in active if s not in stdio_names], [s for s in active if s in stdio_names]):
        if group:
            _print_group([r for r in rows if r["server"] in group], group)
    for name, why in idle.items():
        print(f"  {name}: not run ({why})")
    fails = [r for r in rows if r["status"] == "fail"]
    if fails:
        print(f"\n-- failures ({mode}) --")
        for r in fails:
            print(f"{r['client']} -> {r['server']}: {r['check']}: {r['detail']}")


def _print_group(rows: list[dict], servers_: list[str]) -> None:
    order = {k: i for i, k in enumerate(CHECKS + ["concurrency"])}
    silent = {c for c in {r["client"] for r in rows} if all(r["status"] == "skip" for r in rows if r["client"] == c)}
    pairs = list(dict.fromkeys((r["client"], r["check"]) for r in rows if r["client"] not in silent))
    clients_ = list(dict.fromkeys(c for c, _ in pairs))
    pairs.sort(key=lambda ck: (clients_.index(ck[0]), order.get(ck[1], len(order))))
    cell = {(r["client"], r["check"], r["server"]): r for r in rows}
    w0 = max([len(f"{c} {k}") for c, k in pairs] + [10])
    widths = [max(len(s), 4) for s in servers_]
    print()
    print(" " * w0 + "  " + "  ".join(s.ljust(w) for s, w in zip(servers_, widths, strict=True)))
    for c, k in pairs:
        marks = [MARK[cell[(c, k, s)]["status"]] if (c, k, s) in cell else "" for s in servers_]
        print(f"{c} {k}".ljust(w0) + "  " + "  ".join(m.ljust(w) for m, w in zip(marks, widths, strict=True)).rstrip())
    for c in sorted(silent, key=lambda c: [r["client"] for r in rows].index(c)):
        why = next(r["detail"] for r in rows if r["client"] == c)
        print(f"  {c}: not run on these servers ({why})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--env-dir", required=True, help="install directory printed by ./install --print-dir")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--direct", action="store_const", dest="modes", const=["direct"],
                   help="clients talk to servers directly")
    g.add_argument("--proxy", action="store_const", dest="modes", const=["proxy"],
                   help="through $SLUICE_BIN (default when SLUICE_BIN is set)")
    g.add_argument("--both", action="store_const", dest="modes", const=["direct", "proxy"])
    ap.add_argument("--server", action="append", help="only this server (repeatable)")
    ap.add_argument("--client", action="append",
                    help="only this client (repeatable; also inspector-cli, concurrency)")
    ap.add_argument("--check", action="append",
                    help="only this check (repeatable; also concurrency); for quick runs")
    ap.add_argument("--jobs", type=int, default=4, help="client x server pairs run at once")
    lg = ap.add_mutually_exclusive_group()
    lg.add_argument("--legacy", action="store_const", dest="legacy", const="only",
                    help="only the legacy HTTP+SSE servers (through sluice's bridge)")
    lg.add_argument("--no-legacy", action="store_const", dest="legacy", const="without",
                    help="leave the legacy HTTP+SSE servers out")
    sg = ap.add_mutually_exclusive_group()
    sg.add_argument("--stdio", action="store_const", dest="stdio", const="only",
                    help="only the stdio servers (directly, and through sluice --upstream-command)")
    sg.add_argument("--no-stdio", action="store_const", dest="stdio", const="without",
                    help="leave the stdio servers out")
    ap.add_argument("--hooks", action="store_true",
                    help="also (alone: only) the example hooks through $SLUICE_BIN in front of server-everything")
    ap.add_argument("--federated", action="store_true",
                    help="also five servers of three transports behind one $SLUICE_BIN endpoint (federated.py)")
    ap.add_argument("--replicas", action="store_true",
                    help="also three $SLUICE_BIN replicas behind HAProxy fronting a federation (replicas.py)")
    ap.add_argument("--hook-example", action="append",
                    help="with --hooks: only this example of hook-examples/ (repeatable)")
    ap.add_argument("--out", default=str(ROOT / "target" / "interop" / "results.json"))
    ap.add_argument("--hooks-out", default=str(ROOT / "target" / "interop" / "hooks.json"))
    a = ap.parse_args()

    sluice = os.environ.get("SLUICE_BIN")
    extras = a.hooks or a.replicas or a.federated
    modes = a.modes or ([] if extras else ["proxy"] if sluice else ["direct"])
    if ("proxy" in modes or extras) and not (sluice and os.access(sluice, os.X_OK)):
        print(f"interop: --proxy and --hooks need SLUICE_BIN pointing at the sluice binary (got {sluice!r})",
              file=sys.stderr)
        return 2

    atexit.register(kill_all)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    t0 = time.monotonic()
    results: list[dict] = []
    hook_results: list[dict] = []
    replica_results: list[dict] = []
    federated_results: list[dict] = []
    try:
        for mode in modes:
            results += run_mode(mode, Path(a.env_dir), sluice, a.server, a.client, a.jobs, a.legacy or "with",
                                a.check, a.stdio or "with")
        t_hooks = time.monotonic()
        if a.hooks:
            import hooks

            hook_results = hooks.run(Path(a.env_dir), sluice, a.hook_example)
        if a.federated:
            import federated

            federated_results = federated.run(Path(a.env_dir), sluice)
        if a.replicas:
            import replicas

            replica_results = replicas.run(Path(a.env_dir), sluice)
    finally:
        kill_all()
    stdio_names = [s.name for s in stdio_servers(Path(a.env_dir), Path("/"))]
    order = [s.name for s in servers(Path(a.env_dir)) + legacy_servers(Path(a.env_dir))] + stdio_names
    for mode in modes:
        print_table(results, mode, set(stdio_names), order)

    written = []
    for path, doc in ((a.out, {"modes": modes, "seconds": round(t_hooks - t0, 1), "results": results}),
                      (a.hooks_out, {"seconds": round(time.monotonic() - t_hooks, 1), "results": hook_results})):
        if doc["results"]:
            out = Path(path)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
            written.append(str(out))
    for name, extra in (("federated", federated_results), ("replicas", replica_results)):
        if extra:
            out = Path(a.out).with_name(f"{name}.json")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"results": extra}, indent=1, ensure_ascii=False) + "\n")
            written.append(str(out))
            sys.modules[name].print_table(extra)
    if hook_results:
        hooks.print_table(hook_results)
    results += hook_results + federated_results + replica_results
    passed = sum(r["status"] == "pass" for r in results)
    failed = sum(r["status"] == "fail" for r in results)
    skipped = sum(r["status"] == "skip" for r in results)
    print(f"\n{skipped} skipped (not supported by that peer), results in {', '.join(written)}, "
          f"{time.monotonic() - t0:.0f}s")
    print(f"interop: {passed} passed, {failed} failed")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
