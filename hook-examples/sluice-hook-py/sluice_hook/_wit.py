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


# A warm instance runs many calls: the per-call conversions are table
# lookups (the WIT enums' members, by value) and positional constructors.
_PHASE = {m.value: Phase[m.name] for m in wit.Phase} if wit else {}
_SCHEME = {m.value: Scheme[m.name] for m in wit.Scheme} if wit else {}


def _identity(i):
    claims = None
    if i.claims is not None:
        try:
            claims = json.loads(i.claims)
        except ValueError:
            claims = None
    return Identity(i.subject, _SCHEME[i.scheme.value], i.issuer, i.client_id, list(i.scopes), claims)


def context(ctx) -> Context:
    i = ctx.identity
    return Context(
        _PHASE[ctx.phase.value],
        ctx.session_id,
        ctx.protocol_version,
        ctx.upstream,
        list(ctx.headers),
        None if i is None else _identity(i),
    )


def verdict(v):
    kind = v.kind
    if kind == "continue":
        return _CONTINUE
    if kind == "replace":
        return wit.Verdict_Replace(v.json)
    if kind == "respond":
        return wit.Verdict_Respond(v.json)
    e = v.error
    return wit.Verdict_Reject(wit.RpcError(e.code, e.message, e.data))


_CONTINUE = wit.Verdict_Continue() if wit else None


def run(hook, handler, ctx, *messages):
    """``hook.handler(ctx, *messages)`` on the WIT values, its verdict as one."""
    args = [Message(m.method, m.json) for m in messages]
    return verdict(checked(hook, handler, getattr(hook, handler)(context(ctx), *args)))
