"""Fixture MCP server on the Python SDK 1.x (FastMCP) speaking the legacy
HTTP+SSE transport: `FastMCP.sse_app()` (GET /sse, POST /messages/), the
same tools as `py_mcp1_server.py`.

    python py_mcp1_sse_server.py [--port N]

Prints `READY http://127.0.0.1:PORT/sse`.
"""

from __future__ import annotations

from _fixture import port_arg
from _legacy import serve_sse
from py_mcp1_server import mcp

if __name__ == "__main__":
    serve_sse(mcp.sse_app(), port_arg())
