"""Pieces the Python fixture servers share: the tool set and a tiny event store.

Both `mcp` 1.x and 2.x keep the same `EventStore` shape in
`mcp.server.streamable_http`, so one store serves both.
"""

from __future__ import annotations

import itertools
import json
import socket
import sys
from pathlib import Path

from mcp.server.streamable_http import EventMessage, EventStore

FIXTURE = json.loads((Path(__file__).parent / "tools.json").read_text())
TOOLS = FIXTURE["tools"]
PAGE_SIZE = FIXTURE["page_size"]
ERROR_CODE = FIXTURE["error_code"]
RESOURCES = FIXTURE["resources"]
RESOURCE_TEMPLATES = FIXTURE["resource_templates"]
PROMPTS = FIXTURE["prompts"]
ELICIT_SCHEMA = FIXTURE["elicit_schema"]
ITEM_PREFIX = "sluice://fixture/items/"


def read_resource_text(uri: str) -> tuple[str, str] | None:
    """(mimeType, text) of a fixture resource, static or templated; None if unknown."""
    for r in RESOURCES:
        if r["uri"] == uri:
            return r["mimeType"], r["text"]
    if uri.startswith(ITEM_PREFIX) and "/" not in uri[len(ITEM_PREFIX):]:
        return "text/plain", f"item {uri[len(ITEM_PREFIX):]}"
    return None


def greeting(name: str) -> str:
    return f"Hello, {name}!"


def page(cursor: str | None) -> tuple[list[dict], str | None]:
    """One page of the tool list and the cursor of the next one."""
    start = int(cursor) if cursor else 0
    if start < 0 or start >= len(TOOLS):
        raise ValueError("invalid cursor")
    end = start + PAGE_SIZE
    return TOOLS[start:end], (str(end) if end < len(TOOLS) else None)


class MemoryEventStore(EventStore):
    """Keeps every event; ids are `<stream>_<seq>` so a replay stays on one stream."""

    def __init__(self) -> None:
        self._events: list[tuple[str, str, object]] = []
        self._seq = itertools.count(1)

    async def store_event(self, stream_id, message):
        event_id = f"{stream_id}_{next(self._seq)}"
        self._events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id, send_callback):
        found = [i for i, e in enumerate(self._events) if e[0] == last_event_id]
        if not found:
            return None
        stream_id = self._events[found[0]][1]
        for event_id, sid, message in self._events[found[0] + 1 :]:
            if sid == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


def serve(app, port: int) -> None:
    """Bind 127.0.0.1:port (0 = any), print the ready line, run uvicorn."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(512)
    sock.set_inheritable(True)
    print(f"READY http://127.0.0.1:{sock.getsockname()[1]}/mcp", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    uvicorn.Server(config).run(sockets=[sock])


def port_arg() -> int:
    args = sys.argv[1:]
    return int(args[args.index("--port") + 1]) if "--port" in args else 0
