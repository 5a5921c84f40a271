"""Five real servers of three transports behind one sluice endpoint, curated
as configured: `tests/interop/run --federated`.

Members: server-everything and the TS SDK fixture server over Streamable
HTTP, the Python SDK 2.x fixture server over Streamable HTTP, the TS SDK's
legacy HTTP+SSE fixture (bridged), and @modelcontextprotocol/server-filesystem
on stdio. Driven by unmodified clients:

- `full:*`: the TS SDK and the Python SDK run their full checks with
  server-everything's profile (its member keeps its names; the others are
  prefixed), so every check crosses the fan-out: lists merged over five
  members and paged, progress, sampling, elicitation and roots answered by
  the client, prompts, resources routed by URI;
- `inspector-cli`: the Inspector lists and calls;
- `curated`: a script through each SDK sees the curation the config asks for
  (prefixes, include/exclude, an alias, a description) and reaches every
  member through its shown name.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import sys
import tempfile
from pathlib import Path

import harness as h
import hooks

CLIENTS = ("ts-sdk", "py-sdk/legacy")
SERVER = "federated"


def config(listen: str, urls: dict[str, str], fs_cmd: list[str]) -> str:
    command = "[" + ", ".join(f'"{w}"' for w in fs_cmd) + "]"
    return f"""listen = "{listen}"

[[route]]
name = "five"
path = "/mcp"

[[route.server]]
name = "everything"
upstream = "{urls['everything']}"
prefix_mode = "never"

[[route.server]]
name = "ts"
upstream = "{urls['ts-sessions']}"
tools.include = ["echo", "add", "progress"]

[[route.server]]
name = "py"
upstream = "{urls['py-mcp2']}"
tools.exclude = ["filler_*", "whoami"]
tools.aliases = {{ echo = "say" }}

[[route.server]]
name = "legacy"
upstream = "{urls['ts-sse']}"
transport = "sse"
tools.include = ["echo", "add"]

[[route.server]]
name = "fs"
command = {command}
tools.include = ["read_*", "list_*"]
tools.descriptions = {{ read_text_file = "Read a file of the interop fixture." }}
"""


SCRIPT = [
    {"op": "list"},
    {"op": "call", "name": "echo", "args": {"message": "from everything"}},
    {"op": "call", "name": "ts__add", "args": {"a": 2, "b": 3}},
    {"op": "call", "name": "py__say", "args": {"text": "from py"}},
    {"op": "call", "name": "legacy__echo", "args": {"text": "from legacy"}},
    {"op": "call", "name": "fs__list_allowed_directories", "args": {}},
    {"op": "call", "name": "fs__write_file", "args": {"path": "x", "content": "no"}},
]


def judge(seen: list[dict], fs_root: Path) -> list[tuple[str, bool, str]]:
    names = {t["name"]: t.get("description") for t in seen[0].get("tools", [])}
    want = ["echo", "get-sum", "ts__echo", "ts__add", "ts__progress", "py__say", "py__add",
            "legacy__echo", "legacy__add", "fs__read_text_file", "fs__list_directory"]
    absent = ["ts__notify", "py__echo", "py__filler_1", "py__whoami", "legacy__progress", "fs__write_file",
              "everything__echo"]
    missing = [n for n in want if n not in names]
    shown = [n for n in absent if n in names]
    described = names.get("fs__read_text_file") == "Read a file of the interop fixture."
    rows = [("curated:list", not missing and not shown and described,
             f"{len(names)} tools; missing {missing}, shown though curated out {shown}, "
             f"description overridden: {described}")]

    def text(i):
        return seen[i].get("result", {}).get("text", "") if i < len(seen) else ""

    calls = [("everything", "Echo: from everything" in text(1)),
             ("ts", "5" in text(2)),
             ("py (alias say)", "from py" in text(3)),
             ("legacy", "from legacy" in text(4)),
             ("fs", str(fs_root) in text(5))]
    rows.append(("curated:calls", all(ok for _, ok in calls),
                 ", ".join(f"{m} {'ok' if ok else repr(text(i + 1)[:60])}" for i, (m, ok) in enumerate(calls))))
    refused = seen[6] if len(seen) > 6 else {}
    ok = "error" in refused or refused.get("result", {}).get("isError") is True
    rows.append(("curated:excluded", ok, f"fs__write_file (curated out) answered {str(refused)[:100]}"))
    return rows


def run(env_dir: Path, sluice: str) -> list[dict]:
    env = dict(os.environ)
    env["NODE_PATH"] = str(env_dir / "node_modules")
    env["PYTHONPATH"] = str(h.HERE / "servers")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    by_name = {s.name: s for s in h.servers(env_dir) + h.legacy_servers(env_dir)}
    fs_root = h.make_fs_root()
    fs = next(s for s in h.stdio_servers(env_dir, fs_root) if s.name == "fs-stdio")
    p = h.everything_profile()
    p["unknown_session_status"] = 404
    unsupported = {
        "get_stream": "no tool sends a notification outside a request on demand",
        "bearer": "no tool reports the Authorization header",
    }
    server = h.Server(SERVER, [], p, unsupported)
    procs: list[h.Running] = []
    results: list[dict] = []
    try:
        urls = {}
        for name in ("everything", "ts-sessions", "py-mcp2", "ts-sse"):
            r, urls[name] = h.start_server(by_name[name], env)
            procs.append(r)
        with tempfile.TemporaryDirectory(prefix="sluice-federated-") as tmp:
            cfg = Path(tmp) / "sluice.toml"
            for _attempt in range(3):
                port = h.free_port()
                cfg.write_text(config(f"127.0.0.1:{port}", urls, [*fs.cmd]))
                sr = h.Running("sluice[federated]", [sluice, "--config", str(cfg)], env)
                try:
                    sr.wait_for(h.SLUICE_LINE, 20)
                    h.wait_tcp(port, 10)
                    break
                except RuntimeError:
                    h.kill_group(sr.proc)
            else:
                raise RuntimeError(f"sluice did not start: {sr.tail()}")
            procs.append(sr)
            url = f"http://127.0.0.1:{port}/mcp"
            clients = [c for c in h.clients(env_dir) if c.name in CLIENTS]
            with concurrent.futures.ThreadPoolExecutor(len(clients) + 1) as ex:
                futs = [ex.submit(h.run_pair, c, server, url, env) for c in clients]
                futs.append(ex.submit(h.run_inspector, env_dir, server, url, env))
                for f in futs:
                    for r in f.result():
                        if r["client"] != "inspector-cli":
                            r["check"] = f"full:{r['check']}"
                        results.append(r)
            for c in clients:
                seen, err = hooks.drive(c, url, SCRIPT, env)
                if seen is None:
                    results.append(h.result(c.name, SERVER, "curated", "fail", err))
                    continue
                for check, ok, detail in judge(seen, fs_root):
                    results.append(h.result(c.name, SERVER, check, "pass" if ok else "fail", detail))
            for r in procs:
                if r.proc.poll() is not None:
                    results.append(h.result("-", SERVER, "alive", "fail", f"{r.name} exited: {r.tail()}"))
    except RuntimeError as e:
        results.append(h.result("-", SERVER, "start", "fail", str(e)))
    finally:
        for r in procs:
            r.stop()
        h.save_logs(procs, "federated")
        shutil.rmtree(fs_root, ignore_errors=True)
    return results


def print_table(results: list[dict]) -> None:
    print("\n== federated (five servers, three transports, one endpoint) ==")
    for r in results:
        print(f"  {h.MARK[r['status']]:4} {r['client']:14} {r['check']:24} {r['detail'][:110]}")


if __name__ == "__main__":
    sys.exit("run through tests/interop/run --federated")
