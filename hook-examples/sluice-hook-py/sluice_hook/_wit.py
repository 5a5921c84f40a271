"""Between the WIT bindings componentize-py generates (``wit_world``, in
the component only) and the SDK's types. Not part of the API."""

from __future__ import annotations

import json

from . import Context, Identity, Phase, Scheme, checked
from .message import Message

# componentize-py generates the bindings for its build only: they can be
# imported while it pre-initialises the app module (when this runs), not
# later. Under plain CPython there are none; sluice_hook.testing stands in
# for the host there.
try:
    from wit_world.imports import host as wit_host
    from wit_world.imports import types as wit
except ImportError:
    wit_host = wit = None


def _identity(i):
    if i is None:
        return None
    claims = None
    if i.claims is not None:
        try:
            claims = json.loads(i.claims)
        except ValueError:
            claims = None
    return Identity(
        subject=i.subject,
        scheme=Scheme[i.scheme.name],
        issuer=i.issuer,
        client_id=i.client_id,
        scopes=list(i.scopes),
        claims=claims,
    )


def context(ctx) -> Context:
    return Context(
        phase=Phase[ctx.phase.name],
        session_id=ctx.session_id,
        protocol_version=ctx.protocol_version,
        upstream=ctx.upstream,
        headers=[(n, v) for n, v in ctx.headers],
        identity=_identity(ctx.identity),
    )


def verdict(v):
    if v.kind == "continue":
        return wit.Verdict_Continue()
    if v.kind == "replace":
        return wit.Verdict_Replace(v.json)
    if v.kind == "respond":
        return wit.Verdict_Respond(v.json)
    e = v.error
    return wit.Verdict_Reject(wit.RpcError(code=e.code, message=e.message, data=e.data))


def run(hook, handler, ctx, *messages):
    """``hook.handler(ctx, *messages)`` on the WIT values, its verdict as one."""
    args = [Message(m.method, m.json) for m in messages]
    return verdict(checked(hook, handler, getattr(hook, handler)(context(ctx), *args)))
