"""One Python SDK 2.x session that outlives a replica (see ../replicas.py).

    python py_replicas.py '<json config>'

Config: {"url", "tool", "args", "text_contains", "calls"}. The session calls
`tool` `calls` times, prints `PAUSE` and waits for a line on stdin (the
harness kills a replica meanwhile), then calls it `calls` times more and
lists the tools, all in the same session. Prints one JSON line:
{"before", "after", "tools", "error"}.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import warnings

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPDeprecationWarning

warnings.filterwarnings("ignore", category=MCPDeprecationWarning)
logging.disable(logging.WARNING)


async def calls(c: Client, cfg: dict, label: str) -> list[str]:
    out = []
    for i in range(cfg["calls"]):
        args = {k: (f"{v} {label} {i}" if isinstance(v, str) else v) for k, v in cfg["args"].items()}
        r = await c.call_tool(cfg["tool"], args)
        text = " ".join(getattr(b, "text", "") for b in r.content)
        ok = not r.is_error and cfg["text_contains"] in text
        out.append("ok" if ok else f"bad: {text[:80]!r}")
    return out


async def main() -> int:
    cfg = json.loads(sys.argv[1])
    report = {"before": [], "after": [], "tools": 0, "error": None}
    http = create_mcp_http_client()
    try:
        transport = streamable_http_client(cfg["url"], http_client=http)
        async with http, Client(transport, mode="legacy", cache=None, read_timeout_seconds=20) as c:
            report["before"] = await calls(c, cfg, "before")
            print("PAUSE", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
            report["after"] = await calls(c, cfg, "after")
            report["tools"] = len((await c.list_tools()).tools)
    except Exception as e:  # noqa: BLE001 - the report says what broke
        report["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
