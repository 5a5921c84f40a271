"""Fixture MCP server on the Python SDK 2.x speaking the legacy HTTP+SSE
transport (2024-11-05): the SDK's `SseServerTransport` (GET /sse announces
`/messages/?session_id=…`; POSTs there are answered 202), with the same
low-level handlers as `py_mcp2_server.py`.

    python py_mcp2_sse_server.py [--port N]

Prints `READY http://127.0.0.1:PORT/sse`.
"""

from __future__ import annotations

from _fixture import port_arg
from _legacy import serve_sse
from mcp.server import Server
from mcp.server.sse import SseServerTransport
from py_mcp2_server import HANDLERS
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Mount, Route


def main() -> None:
    server = Server("sluice-interop-py2-sse", version="1.0.0", **HANDLERS)
    sse = SseServerTransport("/messages/")

    async def handle_sse(request):
        async with sse.connect_sse(request.scope, request.receive, request._send) as (read, write):
            await server.run(read, write, server.create_initialization_options())
        return Response()

    app = Starlette(routes=[
        Route("/sse", endpoint=handle_sse, methods=["GET"]),
        Mount("/messages/", app=sse.handle_post_message),
    ])
    serve_sse(app, port_arg())


if __name__ == "__main__":
    main()
