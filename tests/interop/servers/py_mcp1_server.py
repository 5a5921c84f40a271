"""Fixture MCP server on the Python SDK 1.x `FastMCP`.

    python py_mcp1_server.py [--port N]
    python py_mcp1_server.py --stdio

Streamable HTTP at /mcp with sessions, SSE answers and an event store. The
tools are plain FastMCP tools; two low-level handlers are wrapped because
FastMCP itself neither paginates tools/list nor lets a tool fail with a
JSON-RPC error (it turns every exception into `isError: true`).
Prints `READY http://127.0.0.1:PORT/mcp`. With `--stdio`: the same server on
stdin/stdout (`mcp.run("stdio")`), one client, until stdin closes.
"""

from __future__ import annotations

import sys
from typing import TypedDict

import anyio
from _fixture import (
    ELICIT_SCHEMA,
    ERROR_CODE,
    PROMPTS,
    RESOURCE_TEMPLATES,
    RESOURCES,
    TOOLS,
    MemoryEventStore,
    greeting,
    page,
    port_arg,
    read_resource_text,
    serve,
)
from mcp import types
from mcp.server.fastmcp import Context, FastMCP
from mcp.shared.exceptions import McpError

mcp = FastMCP("sluice-interop-py1", event_store=MemoryEventStore())


class Echoed(TypedDict):
    text: str
    echoed: bool


class Sum(TypedDict):
    sum: float


class Who(TypedDict):
    authorization: str | None


@mcp.tool(description="Echo text back, with structured output")
def echo(text: str) -> Echoed:
    return {"text": text, "echoed": True}


@mcp.tool(description="Add two numbers")
def add(a: float, b: float) -> Sum:
    return {"sum": a + b}


@mcp.tool(description="Send progress notifications, then answer")
async def progress(ctx: Context, steps: int = 5, interval_ms: int = 80, tag: str = "") -> str:
    for i in range(1, steps + 1):
        await anyio.sleep(interval_ms / 1000)
        await ctx.report_progress(i, steps, f"{tag} {i}")
    return f"done {tag}"


@mcp.tool(description="Answer with isError: true")
def fail_result() -> str:
    raise RuntimeError("deliberate tool error")


@mcp.tool(description="Fail with a JSON-RPC error")
def fail_throw() -> str:
    raise AssertionError("unreachable: the wrapped handler answers first")


@mcp.tool(description="Send a log message and tools/list_changed outside any request (the GET stream)")
async def notify(ctx: Context, tag: str = "") -> str:
    await ctx.session.send_log_message("info", f"notify:{tag}")
    await ctx.session.send_tool_list_changed()
    return "sent"


@mcp.tool(description="Return the Authorization header this request carried")
def whoami(ctx: Context) -> Who:
    request = ctx.request_context.request
    return {"authorization": request.headers.get("authorization") if request is not None else None}


@mcp.tool(description="Ask the client to sample (sampling/createMessage) and return its text")
async def sample(ctx: Context, prompt: str) -> str:
    r = await ctx.session.create_message(
        [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))],
        max_tokens=20,
        related_request_id=ctx.request_id,
    )
    return f"sampled: {r.content.text}"


@mcp.tool(description="Ask the client for a name (elicitation/create) and return its answer")
async def elicit(ctx: Context) -> str:
    r = await ctx.session.elicit_form("Your name?", ELICIT_SCHEMA, related_request_id=ctx.request_id)
    return f"elicited: {r.action} {(r.content or {}).get('name')}"


@mcp.tool(description="Ask the client for its roots (roots/list) and return their URIs")
async def roots(ctx: Context) -> str:
    r = await ctx.session.list_roots()
    return "roots: " + " ".join(str(x.uri) for x in r.roots)


_README = RESOURCES[0]


@mcp.resource(_README["uri"], name=_README["name"], description=_README["description"], mime_type=_README["mimeType"])
def readme() -> str:
    return _README["text"]


_ITEM = RESOURCE_TEMPLATES[0]


@mcp.resource(_ITEM["uriTemplate"], name=_ITEM["name"], description=_ITEM["description"], mime_type=_ITEM["mimeType"])
def item(id: str) -> str:
    found = read_resource_text(f"sluice://fixture/items/{id}")
    assert found is not None
    return found[1]


_GREET = PROMPTS[0]


@mcp.prompt(name=_GREET["name"], description=_GREET["description"])
def greet(name: str) -> str:
    return greeting(name)


for _i in range(1, 6):
    mcp.add_tool(lambda: "ok", name=f"filler_{_i}", description="Padding so tools/list paginates")

_low = mcp._mcp_server
_list_all = _low.request_handlers[types.ListToolsRequest]
_call = _low.request_handlers[types.CallToolRequest]
_ORDER = [t["name"] for t in TOOLS]


async def _list_paged(req: types.ListToolsRequest):
    result = (await _list_all(req)).root
    by_name = {t.name: t for t in result.tools}
    cursor = req.params.cursor if req is not None and req.params is not None else None
    try:
        names, nxt = page(cursor)
    except ValueError as e:
        raise McpError(types.ErrorData(code=types.INVALID_PARAMS, message=str(e))) from None
    return types.ServerResult(types.ListToolsResult(tools=[by_name[t["name"]] for t in names], nextCursor=nxt))


async def _call_or_fail(req: types.CallToolRequest):
    if req.params.name == "fail_throw":
        raise McpError(types.ErrorData(code=ERROR_CODE, message="deliberate protocol error"))
    return await _call(req)


_low.request_handlers[types.ListToolsRequest] = _list_paged
_low.request_handlers[types.CallToolRequest] = _call_or_fail

if __name__ == "__main__":
    assert set(_ORDER) == {t.name for t in mcp._tool_manager.list_tools()}
    if "--stdio" in sys.argv[1:]:
        mcp.run("stdio")
    else:
        serve(mcp.streamable_http_app(), port_arg())
