"""Client driver on the Python SDK 2.x (`mcp.Client`).

    python py_client.py '<json config>'

The config names the server URL (or, as `stdio`, a command line that each
session spawns and talks to over stdin/stdout: {command, args, env, cwd}), the
connect mode (`auto`, `legacy` or a modern version such as `2026-07-28`), the
checks to run and the server's profile (see harness.py). Prints one JSON object per check on stdout:
{"check", "status": "pass"|"fail", "detail", "ms"}; the `script` check's detail is
what each of its steps got back (see check_script).

Checks the SDK cannot express (resumption with Last-Event-ID, DELETE then a
request on the dead session) speak raw HTTP with httpx2, the SDK's own client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
import time
import warnings
from contextlib import asynccontextmanager

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError

LEGACY_VERSION = "2025-11-25"
# What this client answers to server requests (the checks look for these).
SAMPLED = "sampled by py-sdk"
ELICITED_NAME = "sluice-user"
ROOT = "file:///sluice/interop"

# The checks use deprecated-but-legal features (ping, logging) on purpose, and
# the SDK's "tool not listed yet" notes are expected: keep stderr for real trouble.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)
logging.disable(logging.WARNING)


class CheckFailed(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise CheckFailed(msg)


class Driver:
    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg
        self.url = cfg.get("url")
        self.stdio = cfg.get("stdio")
        self.mode = cfg.get("mode", "auto")
        self.p = cfg["profile"]
        self.token = cfg.get("token")
        self.logs: list = []

    @asynccontextmanager
    async def connect(self, *, logs: list | None = None, token: str | None = None,
                      server_requests: list | None = None, sampled: str = SAMPLED):
        """`server_requests`: answer sampling (with `sampled`), elicitation and roots,
        noting each method here."""
        headers = {"Authorization": token} if token else None
        http = create_mcp_http_client(headers=headers)
        sink = self.logs if logs is None else logs

        async def on_log(params) -> None:
            sink.append((time.monotonic(), params.data))

        extra = {}
        if server_requests is not None:
            seen = server_requests

            async def on_sampling(ctx, params):
                seen.append("sampling/createMessage")
                return types.CreateMessageResult(role="assistant", model="interop-model",
                                                 content=types.TextContent(type="text", text=sampled))

            async def on_elicit(ctx, params):
                seen.append("elicitation/create")
                return types.ElicitResult(action="accept", content={"name": ELICITED_NAME})

            # A profile may name its own roots (for a server that acts on them).
            uris = (self.p.get("roots") or {}).get("roots", [ROOT])

            async def on_roots(ctx):
                seen.append("roots/list")
                return types.ListRootsResult(roots=[types.Root(uri=u, name="interop") for u in uris])

            extra = {"sampling_callback": on_sampling, "elicitation_callback": on_elicit,
                     "list_roots_callback": on_roots}

        if self.stdio:
            # The SDK spawns the server; its stderr joins ours.
            transport = StdioServerParameters(command=self.stdio["command"], args=self.stdio["args"],
                                              env=self.stdio.get("env") or {}, cwd=self.stdio.get("cwd"))
        else:
            transport = streamable_http_client(self.url, http_client=http)
        async with http, Client(transport, mode=self.mode, cache=None, logging_callback=on_log,
                                read_timeout_seconds=self.cfg.get("read_timeout", 20), **extra) as client:
            yield client

    # -- checks -------------------------------------------------------------

    async def check_initialize(self):
        async with self.connect() as c:
            info = c.server_info
            return f"protocol {c.protocol_version}, server {info.name if info else None}"

    async def check_tools_list(self):
        async with self.connect() as c:
            names, pages, cursor = [], 0, None
            while True:
                r = await c.list_tools(cursor=cursor)
                pages += 1
                names += [t.name for t in r.tools]
                cursor = r.next_cursor
                if not cursor or pages > 50:
                    break
            missing = [n for n in self.p["expected_tools"] if n not in names]
            need(not missing, f"missing tools {missing}")
            if self.p.get("paginated"):
                need(pages >= 2, f"expected several pages, got {pages}")
            need(len(names) == len(set(names)), "a tool listed twice across pages")
            return f"{len(names)} tools in {pages} pages"

    async def check_tools_call(self):
        async with self.connect() as c:
            await list_all(c)  # lets the SDK validate structuredContent against outputSchema
            for spec in self.p["calls"]:
                label = spec["name"]
                r = await c.call_tool(spec["name"], spec["args"])
                need(not r.is_error, f"{label}: isError {r.content}")
                if "structured" in spec:
                    need(r.structured_content == spec["structured"],
                         f"{label}: structuredContent {r.structured_content!r} != {spec['structured']!r}")
                if "structured_keys" in spec:
                    keys = sorted((r.structured_content or {}).keys())
                    need(keys == sorted(spec["structured_keys"]), f"{label}: structuredContent keys {keys}")
                if "text_contains" in spec:
                    texts = " ".join(getattr(b, "text", "") for b in r.content)
                    need(spec["text_contains"] in texts, f"{label}: text {texts!r}")
            return "ok: " + ", ".join(s["name"] for s in self.p["calls"])

    async def check_script(self):
        """Runs cfg["script"] in one session ({"op": "list"} or {"op": "call", "name", "args"})
        and reports what came back, for the harness to judge (the hook checks)."""
        seen = []
        asked: list = []
        answers = asked if self.cfg.get("server_requests") else None
        async with self.connect(server_requests=answers) as c:
            for step in self.cfg["script"]:
                try:
                    if step["op"] == "seen":
                        seen.append({"server_requests": list(asked)})
                    elif step["op"] == "list":
                        r = await c.list_tools()
                        seen.append({"tools": [{"name": t.name, "description": t.description} for t in r.tools]})
                    else:
                        r = await c.call_tool(step["name"], step.get("args", {}))
                        seen.append({"result": {"isError": bool(r.is_error),
                                                "text": " ".join(getattr(b, "text", "") for b in r.content)}})
                except MCPError as e:
                    seen.append({"error": {"code": e.code, "message": e.message, "data": e.data}})
        return seen

    async def check_progress(self):
        spec = self.p["progress"]
        async with self.connect() as c:
            seen = []

            async def on_progress(progress, total, message):
                seen.append((time.monotonic(), progress, message))

            t0 = time.monotonic()
            r = await c.call_tool(spec["name"], spec["args"], progress_callback=on_progress)
            t_end = time.monotonic()
            need(not r.is_error, f"isError {r.content}")
            return judge_progress(spec, [(t - t0, p) for t, p, _ in seen], t_end - t0, slack=0)

    async def check_is_error(self):
        spec = self.p["fail_result"]
        async with self.connect() as c:
            r = await c.call_tool(spec["name"], spec.get("args", {}))
            need(r.is_error is True, f"isError is {r.is_error!r}")
            return "isError: true"

    async def check_jsonrpc_error(self):
        spec = self.p["fail_throw"]
        async with self.connect() as c:
            try:
                if "prompt" in spec:
                    r = await c.get_prompt(spec["prompt"])
                else:
                    r = await c.call_tool(spec["name"], spec.get("args", {}))
            except MCPError as e:
                need(e.code == spec["code"], f"code {e.code} != {spec['code']} ({e.message})")
                return f"error {e.code}: {e.message}"
            raise CheckFailed(f"no JSON-RPC error; result {r!r}"[:300])

    async def check_resources(self):
        spec = self.p["resources"]
        async with self.connect() as c:
            listed = await c.list_resources()
            uris = [str(r.uri) for r in listed.resources]
            # `listed: false`: a server whose resources are only reachable by template.
            need(spec.get("listed", True) is False or spec["uri"] in uris,
                 f"resources/list lacks {spec['uri']}: {uris}")
            read = await c.read_resource(spec["uri"])
            text = " ".join(getattr(x, "text", "") for x in read.contents)
            need(spec["text_contains"] in text, f"resources/read {spec['uri']}: {text[:200]!r}")
            done = ["list", "read"]
            if spec.get("template"):
                t = await c.list_resource_templates()
                templates = [r.uri_template for r in t.resource_templates]
                need(spec["template"] in templates, f"resources/templates/list lacks {spec['template']}: {templates}")
                read = await c.read_resource(spec["template_uri"])
                got = " ".join(getattr(x, "text", "") for x in read.contents)
                need(spec["template_text"] in got, f"resources/read {spec['template_uri']}: {got[:200]!r}")
                done += ["templates/list", "read of a templated URI"]
            return f"resources/{', '.join(done)}: ok"

    async def check_prompts(self):
        spec = self.p["prompts"]
        async with self.connect() as c:
            listed = await c.list_prompts()
            names = [p.name for p in listed.prompts]
            need(spec["name"] in names, f"prompts/list lacks {spec['name']}: {names}")
            got = await c.get_prompt(spec["name"], spec["args"])
            text = " ".join(getattr(m.content, "text", "") for m in got.messages)
            need(spec["text_contains"] in text, f"prompts/get: {text!r}")
            return f"prompts/list ({len(names)}), prompts/get {spec['name']}: {text!r}"

    async def check_sampling(self):
        return await self._server_request("sampling", "sampling/createMessage", SAMPLED)

    async def check_elicitation(self):
        return await self._server_request("elicitation", "elicitation/create", ELICITED_NAME)

    async def check_roots(self):
        return await self._server_request("roots", "roots/list", self.p["roots"].get("want", ROOT))

    async def _server_request(self, key: str, method: str, want: str):
        """A tool sends `method` to this client; its answer must come back in the result."""
        spec = self.p[key]
        seen: list = []
        async with self.connect(server_requests=seen) as c:
            if "await_first" in spec:
                until = time.monotonic() + 10.0
                while spec["await_first"] not in seen and time.monotonic() < until:
                    await asyncio.sleep(0.02)
            r = await c.call_tool(spec["name"], spec.get("args", {}))
            need(not r.is_error, f"isError {r.content}")
            need(method in seen, f"the client never got {method} (got {seen})")
            text = " ".join(getattr(b, "text", "") for b in r.content)
            need(want in text, f"the result lacks the client's answer {want!r}: {text[:200]!r}")
            return f"{method} answered by the client, tool result carries it"

    async def check_ping(self):
        async with self.connect() as c:
            await c.send_ping()
            return "pong"

    async def check_get_stream(self):
        spec = self.p["notify"]
        async with self.connect() as c:
            tag = "get-stream"
            want = f"notify:{tag}"
            # The SDK opens the GET stream in the background: give it a few tries.
            for attempt in range(1, 6):
                await c.call_tool(spec["name"], {"tag": tag})
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline:
                    if any(d == want for _, d in self.logs):
                        return f"log notification arrived (attempt {attempt})"
                    await asyncio.sleep(0.02)
            raise CheckFailed(f"no {want!r} notification; got {[d for _, d in self.logs]}")

    async def check_bearer(self):
        spec = self.p["whoami"]
        token = self.token
        async with self.connect(token=token) as c:
            await list_all(c)
            r = await c.call_tool(spec["name"], {})
            got = (r.structured_content or {}).get("authorization")
            need(got == token, f"server saw {got!r}, sent {token!r}")
            return "Authorization arrived unchanged"

    async def check_resume(self):
        spec = self.p["progress"]
        async with httpx2.AsyncClient(timeout=self.cfg.get("read_timeout", 20)) as h:
            sid = await raw_open_session(h, self.url)
            # The Python SDKs key their event streams by request id alone, across
            # sessions, so a fixed id would mix in another client's replay.
            call_id = random.randrange(1, 1 << 40)
            try:
                call = {"jsonrpc": "2.0", "id": call_id, "method": "tools/call",
                        "params": {"name": spec["name"], "arguments": spec["resume_args"],
                                   "_meta": {"progressToken": "resume-1"}}}
                first, last_id = [], None
                async with h.stream("POST", self.url, json=call, headers=raw_headers(sid)) as resp:
                    need(resp.status_code == 200, f"tools/call status {resp.status_code}")
                    ctype = resp.headers.get("content-type", "")
                    need(ctype.startswith("text/event-stream"), f"tools/call answered {ctype}")
                    async for ev in sse_events(resp):
                        msg = ev.get("json")
                        if msg and msg.get("method") == "notifications/progress":
                            first.append(msg["params"]["progress"])
                            last_id = ev.get("id")
                            if len(first) == 2:
                                break
                need(last_id, f"no event id on progress events (got {first})")
                # Let the server notice the closed stream before resuming (see harness.py).
                await asyncio.sleep(spec.get("resume_pause_ms", 300) / 1000)
                # The POST stream is gone now; pick the rest up on GET with Last-Event-ID.
                later, answer = [], None
                hdrs = raw_headers(sid) | {"Last-Event-ID": last_id, "Accept": "text/event-stream"}
                # 409 = the server has not yet seen the POST stream close; ask again shortly.
                for _ in range(20):
                    resp = await h.send(h.build_request("GET", self.url, headers=hdrs), stream=True)
                    if resp.status_code != 409:
                        break
                    await resp.aclose()
                    await asyncio.sleep(0.05)
                try:
                    need(resp.status_code == 200, f"resume GET status {resp.status_code}")
                    async for ev in sse_events(resp):
                        msg = ev.get("json")
                        if not msg:
                            continue
                        if msg.get("method") == "notifications/progress":
                            later.append(msg["params"]["progress"])
                        elif msg.get("id") == call_id:
                            answer = msg
                            break
                finally:
                    await resp.aclose()
                need(answer is not None and "result" in answer, f"no answer after resume: {answer}")
                allp = first + later
                need(allp == sorted(set(allp)), f"progress repeated or out of order: {first} + {later}")
                steps = spec["resume_args"]["steps"]
                if spec.get("resume_gap_ok") and later:
                    lost = steps - len(allp)
                    return f"before {first}, after resume {later}, answer received ({lost} lost: known SDK window)"
                need(len(allp) == steps, f"expected {steps} progress events, got {first} + {later}")
                return f"before {first}, after resume {later}, answer received"
            finally:
                await h.delete(self.url, headers=raw_headers(sid))

    async def check_delete(self):
        async with httpx2.AsyncClient(timeout=self.cfg.get("read_timeout", 20)) as h:
            sid = await raw_open_session(h, self.url)
            r = await h.delete(self.url, headers=raw_headers(sid))
            need(r.status_code == 200, f"DELETE status {r.status_code}")
            ping = {"jsonrpc": "2.0", "id": 9, "method": "ping"}
            r = await h.post(self.url, json=ping, headers=raw_headers(sid))
            want = self.p.get("unknown_session_status", 404)
            need(r.status_code == want, f"request on the deleted session got {r.status_code}, want {want}")
            return f"DELETE 200, then {r.status_code}"

    async def check_concurrency(self):
        n = self.cfg.get("sessions", 10)
        results = await asyncio.gather(*(self._one_session(i) for i in range(n)), return_exceptions=True)
        refused = sum(r == "refused" for r in results)
        bad = [f"#{i}: {describe(r)}" for i, r in enumerate(results) if r not in (True, "refused")]
        need(not bad, f"{len(bad)}/{n} sessions wrong: {bad[:3]}")
        if self.cfg.get("server_requests"):
            return (f"{n} parallel sessions, each saw only its own answers; sampling: {n - refused} answered "
                    f"by their own session, {refused} refused by sluice (several sessions in flight), none crossed")
        return f"{n} parallel sessions, each saw only its own answers"

    async def _one_session(self, i: int):
        logs: list = []
        tag = f"s{i}-{self.cfg.get('salt', '')}"
        # `server_requests`: each session also answers a sampling request of its own
        # tool call with its tag; the tool's result must carry this session's answer.
        asked: list | None = [] if self.cfg.get("server_requests") else None
        sampled = f"sampled for {tag}"
        async with self.connect(logs=logs, server_requests=asked, sampled=sampled) as c:
            e = self.p["echo"]
            args = dict(e["args"])
            key = next(iter(args))
            args[key] = f"{args[key]} {tag}"
            r = await c.call_tool(e["name"], args)
            texts = " ".join(getattr(b, "text", "") for b in r.content)
            need(tag in texts, f"echo answer {texts!r} lacks {tag}")
            spec = self.p["progress"]
            msgs = []

            async def on_progress(progress, total, message):
                msgs.append(message)

            pargs = dict(spec["args"])
            if "tag" in pargs:
                pargs["tag"] = tag
            r = await c.call_tool(spec["name"], pargs, progress_callback=on_progress)
            need(not r.is_error, "progress call failed")
            if spec.get("streams", True):
                need(len(msgs) >= spec["steps"] - spec.get("tolerate_missing", 0), f"progress count {len(msgs)}")
            if "tag" in pargs:
                need(all(m and m.startswith(tag + " ") for m in msgs), f"foreign progress {msgs}")
            if self.p.get("notify") and self.mode != "2026-07-28":
                await asyncio.sleep(0.2)
                await c.call_tool(self.p["notify"]["name"], {"tag": tag})
                await asyncio.sleep(0.3)
                if not self.cfg.get("broadcast_notifications"):
                    foreign = [d for _, d in logs
                               if isinstance(d, str) and d.startswith("notify:") and d != f"notify:{tag}"]
                    need(not foreign, f"foreign notifications {foreign}")
            if asked is not None:
                spec = self.p["sampling"]
                try:
                    r = await c.call_tool(spec["name"], spec.get("args", {}))
                    text = " ".join(getattr(b, "text", "") for b in r.content)
                    error = text if r.is_error else None
                except MCPError as e:
                    text = error = e.message
                n = asked.count("sampling/createMessage")
                if error is not None and self.cfg.get("server_requests") == "own-or-refused" and refused_by_sluice(error):
                    # A shared child's request names no call: with several sessions'
                    # calls in flight sluice refuses it rather than guess. It must not
                    # have reached this session (nor any other: theirs would be here).
                    need(n == 0, f"refused, yet {n} sampling requests reached this session")
                    return "refused"
                need(error is None, f"sampling call failed: {text[:200]!r}")
                need(sampled in text, f"sampling answered by another session: {text[:200]!r}")
                need(n == 1, f"{n} sampling requests reached this session, which caused one")
        return True


def refused_by_sluice(text: str) -> bool:
    """sluice's refusal of a shared stdio child's request it cannot attribute (the
    server turns it into its tool's error), which names per-session mode."""
    return "sluice:" in text and "per-session" in text


async def list_all(c) -> None:
    cursor, pages = None, 0
    while True:
        r = await c.list_tools(cursor=cursor)
        cursor, pages = r.next_cursor, pages + 1
        if not cursor or pages > 50:
            return


def judge_progress(spec, seen, t_end, slack):
    """Progress must arrive one by one, spread out, before the answer."""
    steps, interval = spec["steps"], spec["interval_ms"] / 1000
    if not spec.get("streams", True):
        return f"server answers with JSON: {len(seen)} progress events, answer at {t_end * 1000:.0f} ms"
    need(len(seen) >= steps - slack, f"{len(seen)} of {steps} progress events")
    values = [p for _, p in seen]
    need(values == sorted(values), f"progress out of order {values}")
    times = [t for t, _ in seen]
    spread = times[-1] - times[0]
    need(spread >= (len(seen) - 1) * interval * 0.5,
         f"progress bunched: {len(seen)} events within {spread * 1000:.0f} ms")
    need(t_end - times[0] >= (steps - 1) * interval * 0.5,
         f"first progress only {(t_end - times[0]) * 1000:.0f} ms before the answer: buffered?")
    ms = ", ".join(f"{t * 1000:.0f}" for t in times)
    return f"{len(seen)}/{steps} events at [{ms}] ms, answer at {t_end * 1000:.0f} ms"


# -- raw Streamable HTTP ----------------------------------------------------------


def raw_headers(sid: str | None) -> dict:
    h = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
         "MCP-Protocol-Version": LEGACY_VERSION}
    if sid:
        h["Mcp-Session-Id"] = sid
    return h


async def raw_open_session(h: httpx2.AsyncClient, url: str) -> str:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": LEGACY_VERSION, "capabilities": {},
                       "clientInfo": {"name": "sluice-interop-raw", "version": "1"}}}
    hdrs = raw_headers(None)
    del hdrs["MCP-Protocol-Version"]
    async with h.stream("POST", url, json=init, headers=hdrs) as resp:
        need(resp.status_code == 200, f"initialize status {resp.status_code}")
        sid = resp.headers.get("mcp-session-id")
        need(sid, "no Mcp-Session-Id on the initialize answer")
        if resp.headers.get("content-type", "").startswith("text/event-stream"):
            async for ev in sse_events(resp):
                if ev.get("json", {}).get("id") == 1:
                    break
        else:
            await resp.aread()
    r = await h.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=raw_headers(sid))
    need(r.status_code == 202, f"initialized notification status {r.status_code}")
    return sid


async def sse_events(resp):
    """Minimal event-stream reader: yields {"id", "data", "json"} per event."""
    buf = ""
    async for chunk in resp.aiter_text():
        buf += chunk.replace("\r\n", "\n").replace("\r", "\n")
        while "\n\n" in buf:
            block, buf = buf.split("\n\n", 1)
            ev, data = {}, []
            for line in block.split("\n"):
                if not line or line.startswith(":"):
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "data":
                    data.append(value)
                elif field == "id":
                    ev["id"] = value
            if data:
                ev["data"] = "\n".join(data)
                if ev["data"].strip():
                    ev["json"] = json.loads(ev["data"])
            if ev:
                yield ev


def describe(e: BaseException) -> str:
    """The innermost failures, not the task-group wrappers around them."""
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(describe(x) for x in e.exceptions)
    if isinstance(e, CheckFailed):
        return str(e)
    if isinstance(e, (TimeoutError, asyncio.TimeoutError)):
        return "timed out"
    return f"{type(e).__name__}: {e}"


async def main() -> int:
    cfg = json.loads(sys.argv[1])
    d = Driver(cfg)
    failed = 0
    for check in cfg["checks"]:
        t0 = time.monotonic()
        try:
            detail = await asyncio.wait_for(getattr(d, f"check_{check}")(), cfg.get("timeout", 30))
            status = "pass"
        except BaseException as e:  # noqa: BLE001 — a peer's failure is a result, not a crash
            if isinstance(e, KeyboardInterrupt):
                raise
            status, detail = "fail", describe(e)
        failed += status != "pass"
        d.logs.clear()
        print(json.dumps({"check": check, "status": status, "detail": detail,
                          "ms": round((time.monotonic() - t0) * 1000)}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
