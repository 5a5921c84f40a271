"""FastMCP's federation, for bench/federation: one FastMCP server that
mounts a proxy of each member (Streamable HTTP URLs) under a namespace, so
member `a`'s `echo` is shown as `a_echo`, and serves Streamable HTTP at
/mcp with FastMCP's defaults (stateful sessions, SSE answers).

    python fastmcp-federation.py --port P a=http://127.0.0.1:P1/mcp b=http://...
    python fastmcp-federation.py --shared --port P a=... b=...

Default: `create_proxy(url)` per member, FastMCP's recommended form, which
opens a fresh backend session for every request it forwards (initialize,
the request, close). `--shared`: each member's proxy gets one `Client`
connected before serving, which FastMCP reuses for every request of every
client session (it warns about context mixing between clients).
"""

import argparse
import asyncio
import contextlib

from fastmcp import Client, FastMCP
from fastmcp.server import create_proxy


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--shared", action="store_true")
    p.add_argument("members", nargs="+", help="NAME=URL")
    args = p.parse_args()
    members = [m.split("=", 1) for m in args.members]
    async with contextlib.AsyncExitStack() as stack:
        app = FastMCP("fastmcp-federation")
        for name, url in members:
            target = url
            if args.shared:
                target = await stack.enter_async_context(Client(url))
            app.mount(create_proxy(target, name=name), namespace=name)
        await app.run_http_async(
            show_banner=False,
            transport="http",
            host="127.0.0.1",
            port=args.port,
            path="/mcp",
            log_level="WARNING",
        )


if __name__ == "__main__":
    asyncio.run(main())
