"""Verdicts: what the proxy should do with a message."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Optional


def dumps(value: Any) -> str:
    """JSON text as the proxy wants it: compact, and non-ASCII kept as it is
    (``json.dumps`` would escape it, and an escaped string id is another id
    to the proxy, which compares ids byte for byte)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class RpcError:
    """A JSON-RPC error, as a hook gives or reads it."""

    code: int
    message: str
    data: Optional[str] = None
    """``data`` as JSON text, or None."""

    @property
    def data_value(self) -> Any:
        """``data`` parsed (None when absent)."""
        return None if self.data is None else json.loads(self.data)


@dataclass(frozen=True)
class Verdict:
    """What the proxy should do with the message: build one with
    :attr:`CONTINUE`, :meth:`reject`, :meth:`replace` or :meth:`respond`.

    ``kind`` is ``"continue"``, ``"replace"``, ``"reject"`` or ``"respond"``;
    ``json`` the replacement message or the result as JSON text; ``error``
    the rejection's error."""

    kind: str
    json: Optional[str] = None
    error: Optional[RpcError] = None

    CONTINUE: ClassVar["Verdict"]
    """Let the message through unchanged."""

    def __post_init__(self):
        want_json = self.kind in ("replace", "respond")
        if self.kind not in ("continue", "replace", "reject", "respond"):
            raise ValueError(f"no verdict {self.kind!r}: continue, replace, reject or respond")
        if want_json != isinstance(self.json, str) or (self.kind == "reject") != isinstance(self.error, RpcError):
            raise ValueError(f"a {self.kind} verdict with json={self.json!r}, error={self.error!r}")

    @staticmethod
    def continue_() -> "Verdict":
        """Let the message through unchanged (:attr:`CONTINUE`)."""
        return Verdict.CONTINUE

    @staticmethod
    def reject(code: int, message: str, data: Any = None) -> "Verdict":
        """Stop the message and answer with the JSON-RPC error ``code`` (outside
        -32768..=-32000, or one of JSON-RPC's predefined codes), ``message`` and
        ``data`` (any JSON value; None for none)."""
        return Verdict("reject", error=RpcError(code, str(message), None if data is None else dumps(data)))

    @staticmethod
    def replace(message: Any) -> "Verdict":
        """Send ``message`` (the whole JSON-RPC message, as a dict) instead:
        same kind, method and id (:meth:`Message.edited` keeps them)."""
        return Verdict("replace", json=dumps(message))

    @staticmethod
    def respond(result: Any) -> "Verdict":
        """Stop the message and answer with a success whose ``result`` is this
        JSON value."""
        return Verdict("respond", json=dumps(result))

    @property
    def value(self) -> Any:
        """The replacement or the result, parsed (None for the other kinds)."""
        return None if self.json is None else json.loads(self.json)

    def __repr__(self) -> str:
        if self.kind == "continue":
            return "Verdict.CONTINUE"
        if self.kind == "reject":
            e = self.error
            data = "" if e.data is None else f", data={e.data}"
            return f"Verdict.reject({e.code}, {e.message!r}{data})"
        return f"Verdict.{self.kind}({self.json})"


Verdict.CONTINUE = Verdict("continue")
