"""The example hooks (hook-examples/) through the sluice binary, in front of a real MCP
server, driven by real MCP clients: `tests/interop/run --hooks`.

Each example is built by its own build.sh (a build-cache hit when the runtime tests
built it already), configured as a user would (`--hook FILE --hook-config FILE=JSON`
or a TOML file), put in front of @modelcontextprotocol/server-everything, and driven
by the TS SDK and the Python SDK with the drivers' `script` check. The same script is
also run directly against the server, as the control: what the hook changes must
differ from what the server says on its own. The hook's effect is judged here.

A hook that cannot be built fails its rows, unless SLUICE_SKIP_GUEST_TOOLCHAINS names
its language (`rust`, `js`, `python`, `c`, or `1`/`all`): then its rows are skipped
with a loud message. CI leaves it unset. A build script's exit status 4 (the package
manager refused the pinned toolchain: a broken lock) fails even then.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import harness as h

# Where the runtime tests put the components too (cargo's target/hook-examples):
# a component built there is up to date here.
OUT = h.ROOT / "target" / "hook-examples"
SERVER = "everything"
CLIENTS = ("ts-sdk", "py-sdk/legacy")
# Token shapes rust-redact masks; server-everything's echo sends them back.
SECRETS = ("sk-proj-abcdefghijklmnopqrstuvwxyz012345", "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
           "AKIAIOSFODNN7EXAMPLE")
AUDIT_LINE = re.compile(r"audit (call|done) id=(\S+) tool=\"([^\"]*)\" (.*)")

# A judge gets what the script saw through sluice, what it saw directly, and sluice's
# output lines; it returns (check, passed, detail) rows.
Judge = Callable[[list[dict], list[dict], list[str]], list[tuple[str, bool, str]]]


@dataclass
class Example:
    name: str  # directory under hook-examples/
    lang: str  # as in SLUICE_SKIP_GUEST_TOOLCHAINS
    wasm: str  # the file build.sh writes
    config: str  # the hook's configuration string
    via: str  # "flags" (--hook/--hook-config) or "toml" (a config file)
    script: list[dict]
    judge: Judge
    build_args: tuple[str, ...] = ()
    # More [[hook]] keys, for via == "toml".
    hook_toml: str = ""
    # The client answers server requests (sampling, elicitation, roots), noting them
    # for a {"op": "seen"} step.
    server_requests: bool = False


def call(name: str, **args) -> dict:
    return {"op": "call", "name": name, "args": args}


LIST = {"op": "list"}


def text(step: dict) -> str:
    return (step.get("result") or {}).get("text", "")


def names(step: dict) -> list[str]:
    return [t["name"] for t in step.get("tools", [])]


def refused(step: dict, *words: str) -> tuple[bool, str]:
    """A JSON-RPC error -32602 whose message has all `words`."""
    err = step.get("error")
    if not err:
        return False, f"not refused: {json.dumps(step)[:200]}"
    ok = err["code"] == -32602 and all(w in err["message"] for w in words)
    return ok, f"error {err['code']}: {err['message']}"


def both(*rows: tuple[bool, str]) -> tuple[bool, str]:
    return all(ok for ok, _ in rows), "; ".join(d for _, d in rows)


# -- rust-tool-policy: allow echo and get-*, but never get-env (it prints the server's env) --

def judge_policy(seen, direct, _log):
    listed, upstream = names(seen[0]), names(direct[0])
    hidden = sorted(set(upstream) - set(listed))
    want_hidden = sorted(n for n in upstream if n == "get-env" or not (n == "echo" or n.startswith("get-")))
    return [
        ("tools_list_filtered", listed == [n for n in upstream if n not in want_hidden] and "get-env" in hidden
         and "echo" in listed, f"{len(listed)} of {len(upstream)} listed; hidden {hidden}"),
        ("denied_call_refused", *both(refused(seen[1], '"get-env"', "policy"),
                                      (not direct[1].get("error"), "directly: answered"))),
        ("unlisted_call_refused", *refused(seen[2], '"trigger-long-running-operation"', "policy")),
        ("allowed_call_works", text(seen[3]) == "Echo: through the policy" and "5" in text(seen[4]),
         f"{text(seen[3])!r}, {text(seen[4])!r}"),
    ]


# -- rust-redact --

def judge_redact(seen, direct, _log):
    masked = "Echo: key [REDACTED] token [REDACTED] aws [REDACTED]"
    leaked = [s for s in SECRETS if s in json.dumps(seen)]
    return [
        ("secrets_masked", text(seen[0]) == masked and not leaked
         and all(s in text(direct[0]) for s in SECRETS),
         f"{text(seen[0])!r}; leaked {leaked}; directly {text(direct[0])[:40]!r}…"),
        ("clean_text_untouched", text(seen[1]) == text(direct[1]) == "Echo: nothing secret here",
         repr(text(seen[1]))),
    ]


# -- js-tools-rewriter --

def judge_rewriter(seen, direct, _log):
    got = {t["name"]: t.get("description") for t in seen[0]["tools"]}
    want = {"acme_" + t["name"]: t.get("description") for t in direct[0]["tools"]}
    want["acme_echo"] = "Echo text back (via sluice)"
    return [
        ("tools_list_rewritten", names(seen[0]) == list(want) and got == want,
         f"{len(got)} tools, e.g. {names(seen[0])[:3]}; acme_echo: {got.get('acme_echo')!r}"),
        ("call_by_new_name_works", text(seen[1]) == "Echo: via the new name" and "5" in text(seen[2]),
         f"{text(seen[1])!r}, {text(seen[2])!r}"),
        ("old_name_still_reaches_server", text(seen[3]) == "Echo: old name", repr(text(seen[3]))),
    ]


# -- python-arg-validator --

def broken(step: dict, tool: str, argument: str, rule: str) -> tuple[bool, str]:
    """Refused by the validator, naming the tool, the argument and the rule broken."""
    ok, detail = refused(step, repr(tool), repr(argument))
    data = (step.get("error") or {}).get("data") or {}
    if isinstance(data, str):  # the SDKs hand the data on as sent: a JSON value
        data = json.loads(data)
    ok = ok and (data.get("tool"), data.get("argument"), data.get("rule")) == (tool, argument, rule)
    return ok, f"{detail} {json.dumps(data)}"


def judge_validator(seen, direct, _log):
    return [
        ("over_max_rejected", *both(broken(seen[0], "get-sum", "a", "max"),
                                    ("1002" in text(direct[0]), f"directly: {text(direct[0])!r}"))),
        ("missing_required_rejected", *broken(seen[1], "get-sum", "b", "required")),
        ("wrong_type_rejected", *broken(seen[2], "get-sum", "a", "type")),
        ("too_long_string_rejected", *broken(seen[3], "echo", "message", "max_string_length")),
        ("good_calls_pass", "5" in text(seen[4]) and text(seen[5]) == "Echo: short",
         f"{text(seen[4])!r}, {text(seen[5])!r}"),
    ]


# -- c-audit-log --

def judge_audit(seen, _direct, log):
    lines = [m.groups() for m in map(AUDIT_LINE.search, log) if m]
    calls = [(tool, rest) for kind, _id, tool, rest in lines if kind == "call"]
    done = [(tool, rest) for kind, _id, tool, rest in lines if kind == "done"]
    want_calls = [("echo", 'args=["message"]'), ("get-sum", 'args=["a","b"]'), ("get-sum", 'args=["a"]')]
    # The client waits for each answer: the done lines follow the calls' ids in order.
    ids_ok = [i for k, i, _, _ in lines if k == "done"] == [i for k, i, _, _ in lines if k == "call"]
    return [
        ("one_line_per_call", [(t, r.split(" upstream=")[0]) for t, r in calls] == want_calls
         and all(r.endswith(" upstream=everything") for _, r in calls),
         f"{len(calls)} call lines for 3 tools/call (and one tools/list): {calls}"),
        ("outcome_per_answer", [(t, r) for t, r in done] == [("echo", "outcome=ok"), ("get-sum", "outcome=ok"),
                                                             ("get-sum", "outcome=tool_error")] and ids_ok,
         f"{done}"),
        ("calls_unchanged", text(seen[0]) == "Echo: audited" and "3" in text(seen[1])
         and seen[3]["result"]["isError"], f"{text(seen[0])!r}, {text(seen[1])!r}, isError on bad args"),
    ]


# -- rust-server-guard: the server may not ask the client for sampling --

SEEN = {"op": "seen"}
GUARD_REFUSAL = "the client does not take sampling/createMessage through this gateway"
ELICITED_NAME = "sluice-user"  # what both clients answer an elicitation with


def judge_server_guard(seen, direct, _log):
    asked, asked_directly = seen[3]["server_requests"], direct[3]["server_requests"]
    return [
        ("sampling_refused_for_the_client", *both(
            ("sampling/createMessage" not in asked, f"the client answered {asked}"),
            (seen[0]["result"]["isError"] and GUARD_REFUSAL in text(seen[0]),
             f"the tool reported {text(seen[0])[:160]!r}"))),
        ("control_sampling_directly", "sampling/createMessage" in asked_directly
         and "sampled by" in text(direct[0]), f"directly: {asked_directly}, {text(direct[0])[:120]!r}"),
        ("other_calls_work", text(seen[1]) == "Echo: after the refusal", repr(text(seen[1]))),
        # The client answers the elicitation with its name; the hook withholds
        # answers holding it, so the server gets -31004 in the client's stead.
        ("answer_withheld", "elicitation/create" in asked and "-31004" in text(seen[2])
         and ELICITED_NAME not in text(seen[2]), repr(text(seen[2])[:200])),
        ("control_answer_directly", ELICITED_NAME in text(direct[2]), repr(text(direct[2])[:200])),
    ]


EXAMPLES = [
    Example("rust-tool-policy", "rust", "rust-tool-policy.wasm",
            '{"allow": ["echo", "get-*"], "deny": ["get-env"]}', "flags",
            [LIST, call("get-env"), call("trigger-long-running-operation", duration=0.1, steps=1),
             call("echo", message="through the policy"), call("get-sum", a=2, b=3)],
            judge_policy),
    Example("rust-redact", "rust", "rust-redact.wasm", '{"mask": "[REDACTED]"}', "toml",
            [call("echo", message=f"key {SECRETS[0]} token {SECRETS[1]} aws {SECRETS[2]}"),
             call("echo", message="nothing secret here")],
            judge_redact),
    Example("js-tools-rewriter", "js", "js_tools_rewriter.wasm",
            '{"prefix": "acme_", "describe": {"echo": "Echo text back (via sluice)"}}', "toml",
            [LIST, call("acme_echo", message="via the new name"), call("acme_get-sum", a=2, b=3),
             call("echo", message="old name")],
            judge_rewriter, ("quickjs",)),
    Example("python-arg-validator", "python", "python_arg_validator.wasm",
            json.dumps({"rules": {"get-sum": {"a": {"type": "number", "max": 1000},
                                              "b": {"type": "number", "required": True}},
                                  "*": {"max_string_length": 20}}}), "toml",
            [call("get-sum", a=1001, b=1), call("get-sum", a=2), call("get-sum", a="2", b=3),
             call("echo", message="x" * 21), call("get-sum", a=2, b=3), call("echo", message="short")],
            judge_validator,
            # As docs/HOOKS.md advises for CPython: warm. The deadline is for
            # the debug build these checks run (wasmtime unoptimised): with the
            # 50 ms default, the first call of a run, which instantiates
            # CPython's 18 MB image, failed "deadline exceeded" in 5 of 5 rows
            # of one CI run and 1 of 5 on a quiet rerun (a release build:
            # ~1.5 ms, docs/HOOKS.md). These rows judge what the hook does;
            # its cost is the benches' to measure.
            hook_toml='instances = "warm"\ndeadline = "1s"\n'),
    Example("rust-server-guard", "rust", "rust-server-guard.wasm",
            json.dumps({"refuse": ["sampling/createMessage"], "withhold": [ELICITED_NAME]}),
            "toml", [call("trigger-sampling-request", prompt="hi", maxTokens=5),
                     call("echo", message="after the refusal"), call("trigger-elicitation-request"), SEEN],
            judge_server_guard, server_requests=True),
    Example("c-audit-log", "c", "c_audit_log.wasm", "info", "toml",
            [call("echo", message="audited"), call("get-sum", a=1, b=2), LIST, call("get-sum", a="x")],
            judge_audit),
]


def skip_allowed(lang: str) -> bool:
    v = os.environ.get("SLUICE_SKIP_GUEST_TOOLCHAINS")
    if v is None:
        return False
    v = v.strip()
    return v in ("1", "all") or lang in [x.strip() for x in v.split(",")]


def build(ex: Example) -> tuple[Path | None, dict]:
    """Run the example's build.sh; the component's path, or None, and a result row."""
    script = h.ROOT / "hook-examples" / ex.name / "build.sh"
    env = {k: v for k, v in os.environ.items()
           # Flags meant for the host build must not leak into the guest tools.
           if k not in ("RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET")}
    env["SLUICE_HOOK_OUT"] = str(OUT)
    t0 = time.monotonic()
    p = subprocess.run(["bash", str(script), *ex.build_args], env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, errors="replace")
    ms = round((time.monotonic() - t0) * 1000)
    log = p.stderr
    if p.returncode == 0 and (OUT / ex.wasm).is_file():
        how = ("from the build cache" if "from the build cache" in log else
               "up to date" if "is up to date" in log else "built")
        return OUT / ex.wasm, row(ex, "-", "build", "pass", f"{ex.wasm}: {how}", ms)
    why = "its toolchain could not be installed" if p.returncode == 3 else f"build failed (exit {p.returncode})"
    tail = " | ".join(log.strip().splitlines()[-6:])
    if p.returncode == 4:
        # The package manager refused the pinned toolchain: a broken lock in the
        # repository, not a machine without the toolchain. Never skipped.
        return None, row(ex, "-", "build", "fail",
                         f"the package manager refused the pinned toolchain (a broken lock; "
                         f"scripts/check-locks): {tail}", ms)
    if skip_allowed(ex.lang):
        print(f"\n==== SKIPPED: hook example {ex.name}: {why} (SLUICE_SKIP_GUEST_TOOLCHAINS is set) ====\n"
              f"{log}", file=sys.stderr)
        return None, row(ex, "-", "build", "skip", f"{why}; SLUICE_SKIP_GUEST_TOOLCHAINS set", ms)
    return None, row(ex, "-", "build", "fail",
                     f"{why}; set SLUICE_SKIP_GUEST_TOOLCHAINS={ex.lang} to skip it on a machine without "
                     f"the toolchain: {tail}", ms)


def row(ex: Example, client: str, check: str, status: str, detail: str, ms: int = 0) -> dict:
    return h.result(client, SERVER, check, status, detail, ms) | {"hook": ex.name, "mode": "hooks"}


def start_sluice(sluice: str, ex: Example, wasm: Path, upstream: str, env: dict, tmp: Path) -> h.Running:
    """sluice with the hook, configured the way `ex.via` says; waits until it listens."""
    if ex.via == "flags":
        cmd = [sluice, "--upstream", upstream, "--listen", "127.0.0.1:0",
               "--hook", str(wasm), "--hook-config", f"{wasm}={ex.config}"]
    else:
        toml = tmp / f"{ex.name}.toml"
        # JSON strings are TOML basic strings.
        toml.write_text(f'listen = "127.0.0.1:0"\n\n[[route]]\nname = "{SERVER}"\nupstream = {json.dumps(upstream)}\n\n'
                        f'[[hook]]\nname = {json.dumps(ex.name)}\npath = {json.dumps(str(wasm))}\n'
                        f'config = {json.dumps(ex.config)}\n{ex.hook_toml}')
        cmd = [sluice, "--config", str(toml)]
    r = h.Running(f"sluice[{ex.name}]", cmd, env)
    try:
        # A first load compiles the component (minutes for the 18 MB Python one on a
        # busy debug build); later ones come from the artifact cache in ms.
        m = r.wait_for(h.SLUICE_LINE, 600)
        h.wait_tcp(int(m.group(1).rsplit(":", 1)[1]), 10)
    except RuntimeError:
        h.kill_group(r.proc)
        raise
    r.url = f"http://{m.group(1)}/mcp"
    return r


def drive(client: h.ClientSpec, url: str, script: list[dict], env: dict,
          server_requests: bool = False) -> tuple[list[dict] | None, str]:
    """Run `script` in one session of `client` at `url`; with `server_requests` the client
    answers sampling, elicitation and roots (and notes them for a {"op": "seen"} step)."""
    cfg = {"url": url, "mode": client.mode, "checks": ["script"], "script": script, "profile": {},
           "timeout": 60, "server_requests": server_requests}
    got, err = h.run_driver(client.cmd, cfg, env, timeout=90)
    if got and got[0]["status"] == "pass" and len(got[0]["detail"]) == len(script):
        return got[0]["detail"], ""
    return None, (got[0]["detail"] if got else f"driver gave no result; stderr: {err[-400:]}")


def run(env_dir: Path, sluice: str, only: list[str] | None = None) -> list[dict]:
    env = dict(os.environ)
    env["NODE_PATH"] = str(env_dir / "node_modules")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    server = next(s for s in h.servers(env_dir) if s.name == SERVER)
    clients = [c for c in h.clients(env_dir) if c.name in CLIENTS]
    results: list[dict] = []
    built = []
    for ex in [e for e in EXAMPLES if not only or e.name in only]:
        wasm, r = build(ex)
        results.append(r)
        print(f"hooks: {ex.name}: build {r['status']}: {r['detail'][:120]}", file=sys.stderr)
        if wasm:
            built.append((ex, wasm))
    if not built:
        return results
    procs: list[h.Running] = []
    try:
        srv, upstream = h.start_server(server, env)
        procs.append(srv)
        with tempfile.TemporaryDirectory(prefix="sluice-interop-hooks-") as tmp:
            # One sluice per example and client: the audit log must hold one client's calls only.
            for ex, wasm in built:
                for c in clients:
                    results += run_one(sluice, ex, wasm, c, upstream, env, Path(tmp))
        if srv.proc.poll() is not None:
            results.append(row(built[0][0], "-", "alive", "fail", f"{SERVER} exited early: {srv.tail()}"))
    except RuntimeError as e:
        results.append(row(built[0][0], "-", "start", "fail", str(e)))
    finally:
        for p in procs:
            h.kill_group(p.proc)
    return results


def run_one(sluice, ex, wasm, client, upstream, env, tmp) -> list[dict]:
    t0 = time.monotonic()
    direct, err = drive(client, upstream, ex.script, env, ex.server_requests)
    if direct is None:
        return [row(ex, client.name, "control", "fail", f"the script directly against {SERVER}: {err}")]
    try:
        proxy = start_sluice(sluice, ex, wasm, upstream, env, tmp)
    except RuntimeError as e:
        return [row(ex, client.name, "start", "fail", str(e))]
    try:
        seen, err = drive(client, proxy.url, ex.script, env, ex.server_requests)
    finally:
        # Stopped (SIGTERM) and drained before judging: every line it wrote is in.
        proxy.stop()
    ms = round((time.monotonic() - t0) * 1000)
    if seen is None:
        return [row(ex, client.name, "script", "fail", f"through sluice: {err}; sluice: {proxy.tail()}", ms)]
    out = []
    for check, ok, detail in ex.judge(seen, direct, proxy.log):
        out.append(row(ex, client.name, check, "pass" if ok else "fail", detail, ms))
    return out


def print_table(results: list[dict]) -> None:
    print("\n== hooks (sluice in front of server-everything) ==")
    for r in results:
        if r["status"] != "pass":
            print(f"{h.MARK[r['status']]:4} {r['hook']} {r['client']} {r['check']}: {r['detail'][:300]}")
    by: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        by.setdefault((r["hook"], r["client"]), []).append(r)
    for (hook, client), rows in by.items():
        n = sum(r["status"] == "pass" for r in rows)
        print(f"{hook:22} {client:14} {n}/{len(rows)} passed")
