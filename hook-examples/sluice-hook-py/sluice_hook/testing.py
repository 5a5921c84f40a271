"""Run a hook natively, under plain CPython (``python -m unittest``): the
config it reads and the caller it sees are yours to give, and the lines it
logs come back with its verdict. No component is built; inside one, the
hook talks to the proxy instead (``sluice hook test FILE.wasm`` runs the
component itself offline)::

    from sluice_hook.testing import Call

    out = Call().config('{"deny": ["delete_file"]}').request(MyHook, {
        "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "delete_file"}})
    assert out.verdict.kind == "reject"

Each call makes a fresh instance of the hook, as the proxy's default fresh
mode does. A verdict the proxy would refuse (a replacement with another id
or method, a reserved error code, ``respond`` to a notification from the
server, ...) raises :class:`InvalidVerdict`, and so does a handler that
returns something other than a :class:`~sluice_hook.Verdict`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Tuple

from . import Context, Hook, Identity, Message, Phase, Verdict, checked_methods, host, not_a_verdict
from .host import Level
from .verdict import dumps

__all__ = ["Call", "InvalidVerdict", "Outcome"]

MAX_SAFE = 2**53 - 1
PREDEFINED = (-32700, -32600, -32601, -32602, -32603)


class InvalidVerdict(AssertionError):
    """A verdict the proxy would refuse: in the proxy, a failure of the hook
    (its ``on_error`` decides)."""


@dataclass
class Outcome:
    """What a hook did with one message."""

    verdict: Verdict
    logs: List[Tuple[Level, str]] = field(default_factory=list)
    """The lines it logged meanwhile."""


class _Host:
    def __init__(self, config: str):
        self.config_text = config
        self.logs: List[Tuple[Level, str]] = []

    def config(self) -> str:
        return self.config_text

    def log(self, level: Level, message: str) -> None:
        self.logs.append((level, message))


def _text(message: Any, what: str) -> str:
    text = message if isinstance(message, str) else dumps(message)
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{what} is not JSON ({e}): the proxy hands hooks JSON-RPC messages only") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not one JSON-RPC message (a batch's elements reach hooks one by one)")
    return text


def _message(message: Any, what: str, method: Optional[str] = None) -> Message:
    """``message`` (JSON text or a dict) as a Message; its method is its own
    ``method``, else ``method``."""
    text = _text(message, what)
    own = json.loads(text).get("method")
    return Message(own if isinstance(own, str) else (method or ""), text)


def _strict(text: str) -> Any:
    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        dup = next((k for k in keys if keys.count(k) > 1), None)
        if dup is not None:
            raise ValueError(f"duplicate key {dup!r}")
        return dict(pairs)

    return json.loads(text, object_pairs_hook=no_duplicates)


def _kind(m: Any) -> str:
    if not isinstance(m, dict) or m.get("jsonrpc") != "2.0":
        return "not a JSON-RPC 2.0 message"
    if "method" in m:
        return "request" if "id" in m else "notification"
    if "result" in m or "error" in m:
        return "answer"
    return "not a JSON-RPC 2.0 message"


def _same_id(a: Any, b: Any) -> bool:
    # The proxy compares the id's text byte for byte; parsed, 1 and 1.0
    # (and True and 1) compare equal in Python, so the types must match too.
    return type(a) is type(b) and a == b


def check_verdict(verdict: Verdict, phase: Phase, current: Message) -> Verdict:
    """``verdict`` if the proxy would take it for ``current`` in ``phase``,
    else :class:`InvalidVerdict` saying why (docs/HOOKS.md, "Verdicts")."""

    def bad(why: str):
        raise InvalidVerdict(f"{verdict!r} on {current.method} ({phase.value}): {why}")

    if verdict.kind == "reject":
        code = verdict.error.code
        if not isinstance(code, int) or isinstance(code, bool):
            bad("the error code is not an integer")
        if -32768 <= code <= -32000 and code not in PREDEFINED:
            bad(
                f"error code {code} is reserved (-32768..=-32000 but for the predefined "
                "-32700, -32600, -32601, -32602, -32603; -32000..=-32019 are sluice's own)"
            )
        if abs(code) > MAX_SAFE:
            bad(f"error code {code} is beyond ±(2^53 - 1)")
        if verdict.error.data is not None:
            try:
                json.loads(verdict.error.data)
            except ValueError as e:
                bad(f"data is not JSON: {e}")
    elif verdict.kind == "respond":
        try:
            json.loads(verdict.json)
        except ValueError as e:
            bad(f"the result is not JSON: {e}")
        if phase is Phase.SERVER_MESSAGE and "id" not in current.value:
            bad("a server's notification cannot be answered (reject drops it)")
    elif verdict.kind == "replace":
        try:
            new = _strict(verdict.json)
        except ValueError as e:
            bad(f"the replacement is not JSON the proxy reads: {e}")
        old = current.value
        was, now = _kind(old), _kind(new)
        answer = phase in (Phase.RESPONSE, Phase.CLIENT_ANSWER)
        if now != was:
            bad(f"a {was} cannot become {now if now.startswith('not') else 'a ' + now}")
        if not answer and new.get("method") != old.get("method"):
            bad(f"the method {old.get('method')!r} became {new.get('method')!r}")
        if ("id" in old) != ("id" in new) or not _same_id(old.get("id"), new.get("id")):
            bad(f"the id {json.dumps(old.get('id'))} became {json.dumps(new.get('id'))}")
    return verdict


class Call:
    """One call of a hook, set up as the proxy would. The setters return a new
    Call, so one set-up serves several calls."""

    def __init__(self):
        self._config = ""
        self._ctx = Context()

    def _with(self, change: Callable[["Call"], None]) -> "Call":
        c = copy.copy(self)
        c._ctx = copy.deepcopy(self._ctx)
        change(c)
        return c

    def config(self, text: str) -> "Call":
        """The hook's config string (a dict is given as its JSON)."""
        text = text if isinstance(text, str) else dumps(text)
        return self._with(lambda c: setattr(c, "_config", text))

    def identity(self, identity: Identity) -> "Call":
        """The caller."""
        return self._with(lambda c: setattr(c._ctx, "identity", identity))

    def session(self, session_id: str) -> "Call":
        """The client's session id."""
        return self._with(lambda c: setattr(c._ctx, "session_id", session_id))

    def protocol_version(self, version: str) -> "Call":
        """The client's ``MCP-Protocol-Version``."""
        return self._with(lambda c: setattr(c._ctx, "protocol_version", version))

    def upstream(self, name: str) -> "Call":
        """The route's name (default ``upstream``)."""
        return self._with(lambda c: setattr(c._ctx, "upstream", name))

    def header(self, name: str, value: str) -> "Call":
        """A request header the hook may see."""
        return self._with(lambda c: c._ctx.headers.append((name.lower(), value)))

    def methods(self, hook_class: type) -> List[str]:
        """``methods()`` under this call's config."""
        hook = self._hook(hook_class)
        return self._run(lambda: checked_methods(hook, hook.methods()))[0]

    def request(self, hook_class: type, request: Any) -> Outcome:
        """``on_request`` on the client's ``request`` (JSON text or a dict)."""
        req = _message(request, "the request")
        return self._outcome(hook_class, "on_request", Phase.REQUEST, req, req)

    def response(self, hook_class: type, request: Any, response: Any) -> Outcome:
        """``on_response`` on the upstream's ``response`` to ``request``."""
        req = _message(request, "the request")
        resp = _message(response, "the response", req.method)
        return self._outcome(hook_class, "on_response", Phase.RESPONSE, resp, req, resp)

    def server_message(self, hook_class: type, message: Any) -> Outcome:
        """``on_server_message`` on a server request or notification."""
        m = _message(message, "the server message")
        return self._outcome(hook_class, "on_server_message", Phase.SERVER_MESSAGE, m, m)

    def client_answer(self, hook_class: type, request: Any, answer: Any) -> Outcome:
        """``on_client_answer`` on the client's ``answer`` to the server's ``request``."""
        req = _message(request, "the server's request")
        ans = _message(answer, "the client's answer", req.method)
        return self._outcome(hook_class, "on_client_answer", Phase.CLIENT_ANSWER, ans, req, ans)

    @staticmethod
    def _hook(hook_class: type) -> Hook:
        if not (isinstance(hook_class, type) and issubclass(hook_class, Hook)):
            raise TypeError(f"Call runs a subclass of sluice_hook.Hook, not {hook_class!r}")
        return hook_class()

    def _outcome(self, hook_class, handler, phase, judged, *messages) -> Outcome:
        hook = self._hook(hook_class)
        ctx = copy.deepcopy(self._ctx)
        ctx.phase = phase
        verdict, logs = self._run(lambda: getattr(hook, handler)(ctx, *messages))
        if not isinstance(verdict, Verdict):
            raise InvalidVerdict(not_a_verdict(hook, handler, verdict))
        return Outcome(check_verdict(verdict, phase, judged), logs)

    def _run(self, run: Callable[[], Any]):
        backend = _Host(self._config)
        saved, host._backend = host._backend, backend
        try:
            return run(), backend.logs
        finally:
            host._backend = saved
