"""Fixture MCP server on the Python SDK 1.x `FastMCP`.

    python py_mcp1_server.py [--port N]

Streamable HTTP at /mcp with sessions, SSE answers and an event store. The
tools are plain FastMCP tools; two low-level handlers are wrapped because
FastMCP itself neither paginates tools/list nor lets a tool fail with a
JSON-RPC error (it turns every exception into `isError: true`).
Prints `READY http://127.0.0.1:PORT/mcp`.
"""

from __future__ import annotations

from typing import TypedDict

import anyio
from _fixture import ERROR_CODE, TOOLS, MemoryEventStore, page, port_arg, serve
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
    serve(mcp.streamable_http_app(), port_arg())
