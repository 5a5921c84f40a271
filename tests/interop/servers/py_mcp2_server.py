"""Fixture MCP server on the Python SDK 2.x (low-level `Server`).

    python py_mcp2_server.py [--port N]
    python py_mcp2_server.py --stdio

One Streamable HTTP endpoint at /mcp serving both eras: the handshake era
(sessions, SSE, event store for resumability, GET stream, DELETE) and
2026-07-28 (POST only). Prints `READY http://127.0.0.1:PORT/mcp`.

With `--stdio`: the same handlers on the SDK's stdio server transport
(newline-delimited JSON-RPC on stdin/stdout), one client, until stdin closes.
"""

from __future__ import annotations

import sys

import anyio
import mcp_types as types
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
from mcp.server import Server
from mcp.shared.exceptions import MCPError


def _tool(d: dict) -> types.Tool:
    return types.Tool(
        name=d["name"],
        description=d.get("description"),
        input_schema=d["inputSchema"],
        output_schema=d.get("outputSchema"),
    )


def _text(t: str) -> list[types.TextContent]:
    return [types.TextContent(type="text", text=t)]


async def list_tools(ctx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    try:
        tools, nxt = page(params.cursor if params else None)
    except ValueError as e:
        raise MCPError(types.INVALID_PARAMS, str(e)) from None
    return types.ListToolsResult(tools=[_tool(t) for t in tools], next_cursor=nxt)


async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    a = params.arguments or {}
    name = params.name
    if name == "echo":
        return types.CallToolResult(content=_text(a["text"]), structured_content={"text": a["text"], "echoed": True})
    if name == "add":
        s = a["a"] + a["b"]
        return types.CallToolResult(content=_text(str(s)), structured_content={"sum": s})
    if name == "progress":
        steps = a.get("steps", 5)
        tag = a.get("tag", "")
        for i in range(1, steps + 1):
            await anyio.sleep(a.get("interval_ms", 80) / 1000)
            await ctx.session.report_progress(i, steps, f"{tag} {i}")
        return types.CallToolResult(content=_text(f"done {tag}"))
    if name == "fail_result":
        return types.CallToolResult(content=_text("deliberate tool error"), is_error=True)
    if name == "fail_throw":
        raise MCPError(ERROR_CODE, "deliberate protocol error")
    if name == "notify":
        # No related request id: on the handshake era this goes to the GET stream.
        await ctx.session.send_log_message("info", f"notify:{a.get('tag', '')}")
        await ctx.session.send_tool_list_changed()
        return types.CallToolResult(content=_text("sent"))
    if name == "sample":
        r = await ctx.session.create_message(
            [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=a["prompt"]))],
            max_tokens=20,
            related_request_id=ctx.request_id,
        )
        return types.CallToolResult(content=_text(f"sampled: {r.content.text}"))
    if name == "elicit":
        r = await ctx.session.elicit_form("Your name?", ELICIT_SCHEMA, related_request_id=ctx.request_id)
        return types.CallToolResult(content=_text(f"elicited: {r.action} {(r.content or {}).get('name')}"))
    if name == "roots":
        r = await ctx.session.list_roots()
        return types.CallToolResult(content=_text("roots: " + " ".join(str(x.uri) for x in r.roots)))
    if name == "whoami":
        headers = getattr(ctx.request, "headers", None)
        value = headers.get("authorization") if headers is not None else None
        return types.CallToolResult(content=_text(repr(value)), structured_content={"authorization": value})
    if name.startswith("filler_"):
        return types.CallToolResult(content=_text("ok"))
    raise MCPError(types.INVALID_PARAMS, f"unknown tool {name}")


async def list_resources(ctx, params) -> types.ListResourcesResult:
    listed = [{k: v for k, v in r.items() if k != "text"} for r in RESOURCES]
    return types.ListResourcesResult.model_validate({"resources": listed})


async def list_resource_templates(ctx, params) -> types.ListResourceTemplatesResult:
    return types.ListResourceTemplatesResult.model_validate({"resourceTemplates": RESOURCE_TEMPLATES})


async def read_resource(ctx, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
    uri = str(params.uri)
    found = read_resource_text(uri)
    if found is None:
        raise MCPError(-32002, f"resource not found: {uri}")
    mime, text = found
    return types.ReadResourceResult.model_validate({"contents": [{"uri": uri, "mimeType": mime, "text": text}]})


async def list_prompts(ctx, params) -> types.ListPromptsResult:
    return types.ListPromptsResult.model_validate({"prompts": PROMPTS})


async def get_prompt(ctx, params: types.GetPromptRequestParams) -> types.GetPromptResult:
    if params.name != "greet":
        raise MCPError(types.INVALID_PARAMS, f"unknown prompt {params.name}")
    name = (params.arguments or {}).get("name")
    if not name:
        raise MCPError(types.INVALID_PARAMS, "argument name is required")
    return types.GetPromptResult.model_validate(
        {"description": "A greeting", "messages": [{"role": "user", "content": {"type": "text", "text": greeting(name)}}]}
    )


HANDLERS = {
    "on_list_tools": list_tools,
    "on_call_tool": call_tool,
    "on_list_resources": list_resources,
    "on_list_resource_templates": list_resource_templates,
    "on_read_resource": read_resource,
    "on_list_prompts": list_prompts,
    "on_get_prompt": get_prompt,
}


async def serve_stdio(server: Server) -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def main() -> None:
    server = Server("sluice-interop-py2", version="1.0.0", **HANDLERS)
    if "--stdio" in sys.argv[1:]:
        anyio.run(serve_stdio, server)
        return
    app = server.streamable_http_app(event_store=MemoryEventStore())
    serve(app, port_arg())


if __name__ == "__main__":
    assert TOOLS
    main()
