"""Serving a Starlette app of the legacy HTTP+SSE transport (2024-11-05).

Like `_fixture.serve`, but the ready line names the SSE endpoint, which is
the URL a client (or sluice with `--upstream-transport sse`) starts from.
"""

from __future__ import annotations

import socket


def serve_sse(app, port: int, sse_path: str = "/sse") -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(512)
    sock.set_inheritable(True)
    print(f"READY http://127.0.0.1:{sock.getsockname()[1]}{sse_path}", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    uvicorn.Server(config).run(sockets=[sock])
