"""Write sluice hooks (``sluice:hook@0.2.0``) in Python, for componentize-py.

A hook is a subclass of :class:`Hook`; :func:`export_hook` turns it into the
class componentize-py exports (the world's ``handler`` interface, looked up
as ``Handler`` in the app module). Messages come as :class:`Message` (the
method and the exact JSON text, parsed once on first use, with views:
``tool_call()``, ``tools()``, ``result``, ...) and verdicts are built with
:class:`Verdict`'s constructors. :mod:`sluice_hook.testing` runs a hook
under plain CPython, with the config and caller a test gives it, and hands
back the verdict and the log lines::

    from sluice_hook import Hook, Verdict, export_hook

    class NoDelete(Hook):
        def methods(self):
            return ["tools/call@request"]

        def on_request(self, ctx, request):
            call = request.tool_call()
            if call and call.name.startswith("delete"):
                return Verdict.reject(-31001, f"{call.name} is not allowed")
            return Verdict.CONTINUE

    Handler = export_hook(NoDelete)

The WIT the component is built from is sluice's own (``wit/`` beside this
package is a link to it). A hook written against the bare WIT keeps
working: the SDK only wraps it. The bindings componentize-py generates
(``wit_world``) exist while it builds the component, when this package is
imported; under plain CPython there are none, and the package imports all
the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, List, Optional, Tuple

from . import host
from .message import Message, ToolCall
from .verdict import RpcError, Verdict
from .host import Level

__all__ = [
    "Context",
    "Hook",
    "Identity",
    "Level",
    "Message",
    "Phase",
    "RpcError",
    "Scheme",
    "ToolCall",
    "Verdict",
    "export_hook",
    "host",
]


class Phase(Enum):
    """Which way the message travels."""

    REQUEST = "request"
    """A client request or notification (``on_request``)."""
    RESPONSE = "response"
    """The upstream's answer to a client request (``on_response``)."""
    SERVER_MESSAGE = "server-message"
    """A server request or notification (``on_server_message``)."""
    CLIENT_ANSWER = "client-answer"
    """The client's answer to a server request (``on_client_answer``)."""


class Scheme(Enum):
    """How the route established who is calling."""

    JWT = "jwt"
    INTROSPECTION = "introspection"
    API_KEY = "api-key"


@dataclass
class Identity:
    """Who is calling, on a route with ``[route.auth]``."""

    subject: str
    """The token's ``sub`` (else its client id); an API key's ``subject``."""
    scheme: Scheme = Scheme.JWT
    issuer: Optional[str] = None
    """The token's ``iss``."""
    client_id: Optional[str] = None
    """The token's ``client_id`` (else ``azp``)."""
    scopes: List[str] = field(default_factory=list)
    """The scopes granted, in the order given."""
    claims: Optional[dict] = None
    """The token's claims as the issuer wrote them (parsed); None for an API key."""

    def has_scope(self, scope: str) -> bool:
        """Whether the caller holds ``scope``."""
        return scope in self.scopes

    def claim(self, name: str) -> Any:
        """The claim ``name``, or None if the token has none by that name."""
        return self.claims.get(name) if isinstance(self.claims, dict) else None


@dataclass
class Context:
    """What the host knows about the exchange a message belongs to."""

    phase: Phase = Phase.REQUEST
    session_id: Optional[str] = None
    """The client's ``Mcp-Session-Id``."""
    protocol_version: Optional[str] = None
    """The client's ``MCP-Protocol-Version``."""
    upstream: str = "upstream"
    """The route's name."""
    headers: List[Tuple[str, str]] = field(default_factory=list)
    """The request headers the operator lets this hook see: lower-case names,
    in arrival order."""
    identity: Optional[Identity] = None
    """The caller, when the route authenticates its clients."""

    def header(self, name: str) -> Optional[str]:
        """The first value of the header ``name`` (any case), if the hook may see it."""
        name = name.lower()
        return next((v for n, v in self.headers if n.lower() == name), None)


class Hook:
    """A hook. Every handler but :meth:`methods` has a default that lets the
    message through, so a hook writes only the phases it asks for.

    The proxy makes one instance per component instance: in its default
    fresh mode that is one per message; with ``instances = "warm"`` an
    instance (and what it keeps in ``self``) serves several messages.
    """

    def methods(self) -> List[str]:
        """The methods this hook wants, with an optional phase suffix:
        ``"tools/call"``, ``"tools/*"``, ``"*"``, ``"tools/call@request"``,
        ``"sampling/createMessage@server-message"`` (docs/HOOKS.md, "The
        contract"). Called once, when the proxy loads the hook; the config
        (:func:`host.config`) is readable already."""
        raise NotImplementedError(f"{type(self).__name__} must define methods()")

    def on_request(self, ctx: Context, request: Message) -> Verdict:
        """A client request or notification, before it goes upstream."""
        return Verdict.CONTINUE

    def on_response(self, ctx: Context, request: Message, response: Message) -> Verdict:
        """The upstream's answer to ``request`` (as it was forwarded), before
        it goes to the client."""
        return Verdict.CONTINUE

    def on_server_message(self, ctx: Context, message: Message) -> Verdict:
        """A server request or notification, before it goes to the client. On
        a request, a rejection or a response answers the server and the client
        never sees it; on a notification a rejection drops it."""
        return Verdict.CONTINUE

    def on_client_answer(self, ctx: Context, request: Message, answer: Message) -> Verdict:
        """The client's answer to the server's ``request``, before it goes to
        the server. Every verdict sends the server something: the answer as it
        is or replaced, or, for a rejection or a response, that error or
        result in its stead."""
        return Verdict.CONTINUE


HANDLERS = ("on_request", "on_response", "on_server_message", "on_client_answer")


def not_a_verdict(hook: Hook, handler: str, value: Any) -> str:
    """Why ``value``, returned by ``hook.handler``, is no verdict."""
    return (
        f"{type(hook).__name__}.{handler} returned {value!r}, not a sluice_hook.Verdict "
        "(return Verdict.CONTINUE, Verdict.reject(...), Verdict.replace(...) or "
        "Verdict.respond(...))"
    )


def checked(hook: Hook, handler: str, verdict: Any) -> Verdict:
    """``verdict`` if it is one, else a TypeError naming the handler."""
    if not isinstance(verdict, Verdict):
        raise TypeError(not_a_verdict(hook, handler, verdict))
    return verdict


def checked_methods(hook: Hook, methods: Any) -> List[str]:
    """``methods`` if it is a list of strings, else a TypeError."""
    if not isinstance(methods, (list, tuple)) or not all(isinstance(m, str) for m in methods):
        raise TypeError(f"{type(hook).__name__}.methods() returned {methods!r}, not a list of strings")
    return list(methods)


def export_hook(hook_class: type) -> type:
    """The class componentize-py exports for the world's ``handler``
    interface, running ``hook_class``. Bind it to ``Handler`` in the app
    module: ``Handler = export_hook(MyHook)``."""
    if not (isinstance(hook_class, type) and issubclass(hook_class, Hook)):
        raise TypeError(f"export_hook takes a subclass of sluice_hook.Hook, not {hook_class!r}")
    instance: List[Hook] = []

    def hook() -> Hook:
        # One per component instance, made on its first call.
        if not instance:
            instance.append(hook_class())
        return instance[0]

    def run(handler, ctx, *messages):
        return _wit.run(hook(), handler, ctx, *messages)

    class Handler:
        def methods(self):
            h = hook()
            return checked_methods(h, h.methods())

        def on_request(self, ctx, request):
            return run("on_request", ctx, request)

        def on_response(self, ctx, request, response):
            return run("on_response", ctx, request, response)

        def on_server_message(self, ctx, message):
            return run("on_server_message", ctx, message)

        def on_client_answer(self, ctx, request, answer):
            return run("on_client_answer", ctx, request, answer)

    Handler.__qualname__ = Handler.__name__ = "Handler"
    Handler.__doc__ = f"The handler export of the sluice hook {hook_class.__name__}."
    return Handler


# Last: it reads the names above, and the bindings, which componentize-py
# offers only while it pre-initialises the app module (importing this).
from . import _wit  # noqa: E402
