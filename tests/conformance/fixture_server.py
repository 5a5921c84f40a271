"""Fixture MCP server for the official conformance suite, on the Python SDK 2.x.

    python fixture_server.py [--port N] [--dns-protection on|off]
    python fixture_server.py --stdio

One Streamable HTTP endpoint at /mcp that serves both eras: the handshake era
(sessions, SSE, an event store for resumption) and 2026-07-28 (stateless POST,
input-required results, caching hints). It exposes the tools, resources and
prompts the suite's server scenarios call by name. Prints
`READY http://127.0.0.1:PORT/mcp` once listening.

`--stdio` serves the same app (every handler identical) over the SDK's stdio
transport instead: newline-delimited JSON-RPC on stdin/stdout, the handshake
era only (no event store, so no resumption; no 2026-07-28 stateless wire),
logs on stderr. sluice runs it as `--upstream-command`.

`--dns-protection off` (the default) switches the SDK's own Host/Origin check
off, so that the `dns-rebinding-protection` scenario through sluice measures
sluice's check and nothing behind it.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import sys
import zlib
from typing import Annotated, Any

import anyio
from mcp.server import ServerRequestContext
from mcp.server.caching import CacheHint
from mcp.server.mcpserver import Context, MCPServer, RequestStateSecurity
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.streamable_http import EventMessage, EventStore
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp.types import (
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    AudioContent,
    Completion,
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    InputRequiredResult,
    ListRootsRequest,
    ListRootsResult,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)
from pydantic import BaseModel, Field


def _png_1x1() -> bytes:
    """A valid one-pixel grey PNG, built here rather than pasted in."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)  # 1x1, 8-bit greyscale
    pixels = zlib.compress(b"\x00\x80")  # filter byte, one grey pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _wav_silence() -> bytes:
    """A valid WAV: 8 kHz mono 16-bit, one silent sample."""
    data = b"\x00\x00"
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


PNG = _png_1x1()
PNG_B64 = base64.b64encode(PNG).decode()
WAV_B64 = base64.b64encode(_wav_silence()).decode()


class MemoryEventStore(EventStore):
    """Keeps every event; ids are `<stream>_<seq>` so a replay stays on its stream."""

    def __init__(self) -> None:
        self._events: list[tuple[str, str, Any]] = []
        self._seq = 0

    async def store_event(self, stream_id, message):
        self._seq += 1
        event_id = f"{stream_id}_{self._seq}"
        self._events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id, send_callback):
        at = next((i for i, e in enumerate(self._events) if e[0] == last_event_id), None)
        if at is None:
            return None
        stream_id = self._events[at][1]
        for event_id, sid, message in self._events[at + 1 :]:
            if sid == stream_id and message is not None:  # None marks a priming event
                await send_callback(EventMessage(message, event_id))
        return stream_id


def _text(t: str) -> TextContent:
    return TextContent(type="text", text=t)


def _ask(message: str, **props: str) -> ElicitRequest:
    """A form elicitation asking for string fields `props` (name -> description)."""
    schema = {
        "type": "object",
        "properties": {k: {"type": "string", "description": v} for k, v in props.items()},
        "required": list(props),
    }
    return ElicitRequest(params=ElicitRequestFormParams(message=message, requested_schema=schema))


def _confirm() -> ElicitRequest:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    return ElicitRequest(params=ElicitRequestFormParams(message="Confirm to continue", requested_schema=schema))


def _sample(prompt: str) -> CreateMessageRequest:
    return CreateMessageRequest(
        params=CreateMessageRequestParams(
            messages=[SamplingMessage(role="user", content=_text(prompt))], max_tokens=64
        )
    )


def _elicited(answer: Any, field: str) -> str | None:
    if isinstance(answer, ElicitResult) and answer.content:
        value = answer.content.get(field)
        return None if value is None else str(value)
    return None


# The SDK seals requestState with this key (it needs >= 32 bytes); a test key, not a secret.
STATE_KEY = b"sluice-conformance-fixture-state-key-0001"

# Every cacheable method carries explicit hints (SEP-2549).
CACHE = {
    m: CacheHint(ttl_ms=0, scope="private")
    for m in ("tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read", "server/discover")
}

app = MCPServer(
    name="sluice-conformance-fixture",
    version="1.0.0",
    request_state_security=RequestStateSecurity(keys=[STATE_KEY]),
    cache_hints=CACHE,
)

# --- content tools ---------------------------------------------------------


@app.tool()
def test_simple_text() -> str:
    """Answers with one text block."""
    return "simple text from the sluice fixture"


@app.tool()
def test_image_content() -> list[ImageContent]:
    """Answers with one PNG image block."""
    return [ImageContent(type="image", data=PNG_B64, mime_type="image/png")]


@app.tool()
def test_audio_content() -> list[AudioContent]:
    """Answers with one WAV audio block."""
    return [AudioContent(type="audio", data=WAV_B64, mime_type="audio/wav")]


@app.tool()
def test_embedded_resource() -> list[EmbeddedResource]:
    """Answers with an embedded text resource."""
    res = TextResourceContents(uri="test://embedded-resource", mime_type="text/plain", text="embedded text")
    return [EmbeddedResource(type="resource", resource=res)]


@app.tool()
def test_multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
    """Answers with text, an image and an embedded JSON resource."""
    res = TextResourceContents(
        uri="test://mixed-content-resource", mime_type="application/json", text=json.dumps({"mixed": True})
    )
    return [
        _text("three kinds of content follow"),
        ImageContent(type="image", data=PNG_B64, mime_type="image/png"),
        EmbeddedResource(type="resource", resource=res),
    ]


@app.tool()
def test_error_handling() -> str:
    """Always fails; the SDK turns the exception into an isError result."""
    raise RuntimeError("deliberate failure from test_error_handling")


# --- tools that talk back while running --------------------------------------


@app.tool()
async def test_tool_with_logging(ctx: Context) -> str:
    """Sends three info log messages, spaced out, then answers."""
    for step in ("started", "working", "finished"):
        await ctx.info(f"logging tool {step}")
        await anyio.sleep(0.05)
    return "logging tool done"


@app.tool()
async def test_tool_with_progress(ctx: Context) -> str:
    """Reports progress 0, 50, 100 of 100, then answers with the progress token."""
    for done in (0, 50, 100):
        await ctx.report_progress(progress=done, total=100, message=f"{done} of 100")
        await anyio.sleep(0.05)
    meta = ctx.request_context.meta if ctx.request_context else None
    return str(meta.get("progress_token") if meta else None)


@app.tool()
async def test_sampling(prompt: str, ctx: Context) -> str:
    """Asks the client's model (sampling/createMessage) on the request's own stream."""
    result = await ctx.session.create_message(
        messages=[SamplingMessage(role="user", content=_text(prompt))],
        max_tokens=100,
        related_request_id=ctx.request_id,
    )
    text = result.content.text if result.content.type == "text" else "(not text)"
    return f"model said: {text}"


class Answer(BaseModel):
    response: str = Field(description="What the user answers")


@app.tool()
async def test_elicitation(message: str, ctx: Context) -> str:
    """Asks the user one question (elicitation/create)."""
    result = await ctx.elicit(message=message, schema=Answer)
    content = result.data.model_dump_json() if result.action == "accept" else "{}"
    return f"elicitation: action={result.action} content={content}"


class Defaults(BaseModel):
    """One field of each primitive type, each with the default the scenario expects (SEP-1034)."""

    name: str = Field(default="John Doe", description="Name")
    age: int = Field(default=30, description="Age")
    score: float = Field(default=95.5, description="Score")
    status: str = Field(
        default="active", description="Status", json_schema_extra={"enum": ["active", "inactive", "pending"]}
    )
    verified: bool = Field(default=True, description="Verified")


@app.tool()
async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
    """Elicits a form whose fields all carry defaults."""
    result = await ctx.elicit(message="Check these details", schema=Defaults)
    content = result.data.model_dump_json() if result.action == "accept" else "{}"
    return f"defaults: action={result.action} content={content}"


def _titled(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"const": c, "title": t} for c, t in pairs]


class Enums(BaseModel):
    """Each enum shape SEP-1330 allows in an elicitation form."""

    untitledSingle: str = Field(description="plain enum", json_schema_extra={"enum": ["red", "green", "blue"]})
    titledSingle: str = Field(
        description="enum with titles", json_schema_extra={"oneOf": _titled(("s", "Small"), ("l", "Large"))}
    )
    untitledMulti: list[str] = Field(
        description="multi-select", json_schema_extra={"items": {"type": "string", "enum": ["a", "b", "c"]}}
    )
    titledMulti: list[str] = Field(
        description="multi-select with titles",
        json_schema_extra={"items": {"anyOf": _titled(("x", "Ex"), ("y", "Why"))}},
    )
    legacyEnum: str = Field(
        description="enum with enumNames",
        json_schema_extra={"enum": ["lo", "hi"], "enumNames": ["Low", "High"]},
    )


@app.tool()
async def test_elicitation_sep1330_enums(ctx: Context) -> str:
    """Elicits a form with every enum variant."""
    result = await ctx.elicit(message="Pick some values", schema=Enums)
    content = result.data.model_dump_json() if result.action == "accept" else "{}"
    return f"enums: action={result.action} content={content}"


@app.tool()
async def test_reconnection(ctx: Context) -> str:
    """Closes its SSE stream mid-call; the client resumes with Last-Event-ID (SEP-1699)."""
    await ctx.info("before the stream closes")
    await ctx.close_sse_stream()
    await anyio.sleep(0.2)
    await ctx.info("after the client resumed")
    return "reconnection done"


@app.tool()
def test_x_mcp_header(
    region: Annotated[str, Field(description="Sent as Mcp-Param-Region", json_schema_extra={"x-mcp-header": "Region"})] = "none",
) -> str:
    """Has an argument mirrored into an Mcp-Param-* header (SEP-2243)."""
    return f"region={region}"


@app.tool()
async def test_missing_capability(ctx: Context) -> str:
    """Needs the client's sampling capability; a JSON-RPC error names it when absent."""
    caps = ctx.session.client_capabilities
    if caps is None or caps.sampling is None:
        raise MCPError(
            code=MISSING_REQUIRED_CLIENT_CAPABILITY,
            message="test_missing_capability needs the sampling capability",
            data={"requiredCapabilities": {"sampling": {}}},
        )
    return "sampling capability present"


@app.tool()
async def test_trigger_tool_change(ctx: Context) -> str:
    """Announces a tools/list change to subscription streams."""
    await ctx.notify_tools_changed()
    return "tools changed"


@app.tool()
async def test_trigger_prompt_change(ctx: Context) -> str:
    """Announces a prompts/list change to subscription streams."""
    await ctx.notify_prompts_changed()
    return "prompts changed"


# --- input-required results (SEP-2322, 2026-07-28) ------------------------------


@app.tool()
async def test_input_required_result_elicitation(ctx: Context) -> str | InputRequiredResult:
    """First round asks for a name; the retry greets it."""
    got = ctx.input_responses or {}
    if "user_name" in got:
        return f"hello, {_elicited(got['user_name'], 'name') or 'nobody'}"
    return InputRequiredResult(input_requests={"user_name": _ask("Your name?", name="name")})


@app.tool()
async def test_input_required_result_sampling(ctx: Context) -> str | InputRequiredResult:
    """First round asks the client's model; the retry quotes it."""
    got = ctx.input_responses or {}
    answer = got.get("capital_question")
    if isinstance(answer, CreateMessageResult):
        return f"model said: {answer.content.text if answer.content.type == 'text' else '(not text)'}"
    return InputRequiredResult(input_requests={"capital_question": _sample("Capital of France?")})


@app.tool()
async def test_input_required_result_list_roots(ctx: Context) -> str | InputRequiredResult:
    """First round asks for the client's roots; the retry counts them."""
    answer = (ctx.input_responses or {}).get("client_roots")
    if isinstance(answer, ListRootsResult):
        return f"{len(answer.roots)} roots"
    return InputRequiredResult(input_requests={"client_roots": ListRootsRequest()})


@app.tool()
async def test_input_required_result_request_state(ctx: Context) -> str | InputRequiredResult:
    """Sets requestState and only completes when the client echoes it back."""
    if "confirm" in (ctx.input_responses or {}) and ctx.request_state == "state-token":
        return "state-ok"
    return InputRequiredResult(input_requests={"confirm": _confirm()}, request_state="state-token")


@app.tool()
async def test_input_required_result_multiple_inputs(ctx: Context) -> str | InputRequiredResult:
    """Asks for an elicitation, a sample and the roots in one round."""
    wanted = {"user_name", "greeting", "client_roots"}
    if wanted <= set(ctx.input_responses or {}):
        return "all three inputs received"
    return InputRequiredResult(
        input_requests={
            "user_name": _ask("Your name?", name="name"),
            "greeting": _sample("Say hello"),
            "client_roots": ListRootsRequest(),
        },
        request_state="multiple",
    )


@app.tool()
async def test_input_required_result_multi_round(ctx: Context) -> str | InputRequiredResult:
    """Three rounds: name, then colour (state carries the name), then the answer."""
    state = json.loads(ctx.request_state) if ctx.request_state else {"round": 0}
    got = ctx.input_responses or {}
    if state.get("round") == 1 and "step1" in got:
        return InputRequiredResult(
            input_requests={"step2": _ask("Favourite colour?", color="colour")},
            request_state=json.dumps({"round": 2, "name": _elicited(got["step1"], "name")}),
        )
    if state.get("round") == 2 and "step2" in got:
        return f"{state.get('name')} likes {_elicited(got['step2'], 'color')}"
    # First round, or an answer that does not fit the state: start over.
    return InputRequiredResult(
        input_requests={"step1": _ask("Your name?", name="name")}, request_state=json.dumps({"round": 1})
    )


@app.tool()
async def test_input_required_result_tampered_state(ctx: Context) -> str | InputRequiredResult:
    """Sets requestState; the SDK rejects an altered echo before this runs."""
    if ctx.request_state is None:
        return InputRequiredResult(input_requests={"confirm": _confirm()}, request_state="round-1")
    return f"state-ok: {ctx.request_state}"


@app.tool()
async def test_input_required_result_capabilities(ctx: Context) -> InputRequiredResult:
    """Only asks for what the client declared it can answer."""
    caps = ctx.client_capabilities
    wanted: dict[str, Any] = {}
    if caps is None or caps.sampling is not None:
        wanted["sample"] = _sample("Say hello")
    if caps is None or caps.elicitation is not None:
        wanted["ask"] = _ask("Your name?", name="name")
    return InputRequiredResult(input_requests=wanted, request_state="capability-gated")


# --- JSON Schema 2020-12 (SEP-1613): a hand-written inputSchema --------------------

SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


def json_schema_2020_12_tool() -> str:
    """Carries a JSON Schema 2020-12 inputSchema that must survive tools/list untouched."""
    return "ok"


# MCPServer derives schemas from signatures and has no public way to set one by hand.
app._tool_manager._tools["json_schema_2020_12_tool"] = Tool.from_function(json_schema_2020_12_tool).model_copy(
    update={"parameters": SCHEMA_2020_12}
)

# --- resources ------------------------------------------------------------------


@app.resource("test://static-text", mime_type="text/plain")
def static_text() -> str:
    """A fixed text resource."""
    return "static text resource"


@app.resource("test://static-binary", mime_type="image/png")
def static_binary() -> bytes:
    """A fixed binary resource (the PNG)."""
    return PNG


@app.resource("test://template/{id}/data", mime_type="application/json")
def template_data(id: str) -> str:
    """A templated resource whose text names the id it was read with."""
    return json.dumps({"id": id, "templated": True})


@app.resource("test://watched-resource", mime_type="text/plain")
def watched() -> str:
    """A resource clients may subscribe to."""
    return "watched resource"


# --- prompts --------------------------------------------------------------------


@app.prompt()
def test_simple_prompt() -> list[UserMessage]:
    """A prompt without arguments."""
    return [UserMessage(role="user", content=_text("a simple prompt"))]


@app.prompt()
def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
    """A prompt that quotes both of its arguments."""
    return [UserMessage(role="user", content=_text(f"arguments: arg1={arg1} arg2={arg2}"))]


@app.prompt()
def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
    """A prompt that embeds the resource named by its argument."""
    res = TextResourceContents(uri=resourceUri, mime_type="text/plain", text="embedded for the prompt")
    return [
        UserMessage(role="user", content=EmbeddedResource(type="resource", resource=res)),
        UserMessage(role="user", content=_text("use the resource above")),
    ]


@app.prompt()
def test_prompt_with_image() -> list[UserMessage]:
    """A prompt with an image."""
    return [
        UserMessage(role="user", content=ImageContent(type="image", data=PNG_B64, mime_type="image/png")),
        UserMessage(role="user", content=_text("describe the image above")),
    ]


@app.prompt()
async def test_input_required_result_prompt(ctx: Context) -> list[UserMessage] | InputRequiredResult:
    """prompts/get that first asks the user for context (SEP-2322 outside tools/call)."""
    answer = (ctx.input_responses or {}).get("user_context")
    if answer is not None:
        return [UserMessage(role="user", content=_text(f"context: {_elicited(answer, 'context')}"))]
    return InputRequiredResult(input_requests={"user_context": _ask("Which context?", context="context")})


@app.completion()
async def complete(ref, argument, context) -> Completion:
    """No suggestions; the scenario only needs a well-formed answer."""
    return Completion(values=[], total=0, has_more=False)


# --- handshake-era requests MCPServer has no decorator for -----------------------


async def _empty(ctx: ServerRequestContext, params: Any) -> EmptyResult:
    return EmptyResult()


for method, params_type in (
    ("logging/setLevel", SetLevelRequestParams),
    ("resources/subscribe", SubscribeRequestParams),
    ("resources/unsubscribe", UnsubscribeRequestParams),
):
    app._lowlevel_server.add_request_handler(method, params_type, _empty)


def main() -> None:
    args = sys.argv[1:]
    if "--stdio" in args:
        app.run("stdio")
        return

    import uvicorn

    port = int(args[args.index("--port") + 1]) if "--port" in args else 0
    protect = (args[args.index("--dns-protection") + 1] if "--dns-protection" in args else "off") == "on"
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=protect,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )
    asgi = app.streamable_http_app(event_store=MemoryEventStore(), retry_interval=100, transport_security=security)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(512)
    print(f"READY http://127.0.0.1:{sock.getsockname()[1]}/mcp", flush=True)
    config = uvicorn.Config(asgi, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
