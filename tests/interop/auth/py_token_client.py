"""The Python SDK 2.x client through sluice with a bearer token it was
handed (a machine client that got its token elsewhere): the token is one
the test obtained from the authorization server by registering a client and
asking for client credentials for sluice's resource (RFC 7591, RFC 8707).

    python py_token_client.py '{"url": ..., "issuer": ..., "scope": "mcp:tools", "guarded": "add"}'

With `guarded`, sluice runs the caller-policy hook (sluice:hook@0.2.0), which
gives that tool only to callers holding the scope `mcp:admin`: the client
checks it sees and may call it exactly when its token has that scope.

One JSON line per check on stdout: {check, status, detail}.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import urllib.parse
import urllib.request

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

cfg = json.loads(sys.argv[1])
SCOPE = cfg.get("scope", "mcp:tools")


def report(check: str, ok: bool, detail: str) -> None:
    print(json.dumps({"check": check, "status": "pass" if ok else "fail", "detail": detail}), flush=True)


def post_json(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def token() -> str:
    with urllib.request.urlopen(f"{cfg['issuer']}/.well-known/oauth-authorization-server", timeout=10) as r:
        meta = json.load(r)
    client = post_json(meta["registration_endpoint"], {
        "client_name": "sluice interop (python, token by hand)",
        "redirect_uris": [], "response_types": [], "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic", "scope": SCOPE,
    })
    basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
    form = (f"grant_type=client_credentials&scope={urllib.parse.quote(SCOPE, safe='')}"
            f"&resource={urllib.parse.quote(cfg['url'], safe='')}")
    req = urllib.request.Request(meta["token_endpoint"], data=form.encode(), method="POST", headers={
        "content-type": "application/x-www-form-urlencoded", "authorization": f"Basic {basic}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)["access_token"]


async def call(bearer: str | None) -> str:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
    http = create_mcp_http_client(headers=headers)
    async with http, Client(streamable_http_client(cfg["url"], http_client=http), cache=None,
                            read_timeout_seconds=20) as client:
        tools = await client.list_tools()
        result = await client.call_tool("echo", {"text": "python through sluice"})
        names = [t.name for t in tools.tools]
        text = " ".join(getattr(c, "text", "") for c in result.content)
        return f"{','.join(names)} | {text}"


async def guarded(bearer: str, tool: str) -> None:
    """The hook shows and allows `tool` to holders of mcp:admin only."""
    admin = "mcp:admin" in SCOPE.split()
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {bearer}"})
    async with http, Client(streamable_http_client(cfg["url"], http_client=http), cache=None,
                            read_timeout_seconds=20) as client:
        listed = tool in [t.name for t in (await client.list_tools()).tools]
        report("hook-lists-guarded-tool-by-scope", listed == admin,
               f"scope {SCOPE!r}: {tool} {'listed' if listed else 'not listed'}")
        try:
            result = await client.call_tool(tool, {"a": 2, "b": 3})
            text = " ".join(getattr(c, "text", "") for c in result.content)
            is_error = getattr(result, "is_error", getattr(result, "isError", False))
            report("hook-allows-guarded-call-by-scope", admin and not is_error,
                   f"scope {SCOPE!r}: called, {text[:120]}")
        except Exception as e:  # noqa: BLE001 - the SDK raises the JSON-RPC error sluice answered
            text = repr(e)
            report("hook-allows-guarded-call-by-scope", not admin and "mcp:admin" in text,
                   f"scope {SCOPE!r}: refused, {text[:200]}")


async def main() -> None:
    bearer = token()
    if cfg.get("guarded"):
        await guarded(bearer, cfg["guarded"])
        return
    got = await call(bearer)
    report("py-sdk-with-token", "python through sluice" in got, got)
    try:
        got = await call(None)
        report("py-sdk-without-token", False, f"connected without a token: {got}")
    except Exception as e:  # noqa: BLE001 - the SDK raises sluice's JSON-RPC error, in groups
        text = repr(e)
        report("py-sdk-without-token", "authorization required" in text or "401" in text, text[:300])


asyncio.run(main())
