"""A JSON-RPC message as a hook gets it: the exact text, parsed once on
first use, with views of the MCP shapes hooks look at most."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

from .verdict import RpcError, Verdict, dumps

_UNPARSED = object()


@dataclass(frozen=True)
class ToolCall:
    """A ``tools/call`` request's tool and arguments."""

    name: str
    """``params.name``."""
    arguments: Any
    """``params.arguments`` (an empty dict when absent)."""


class Message:
    """One JSON-RPC message: its method (a response's is its request's) and
    its JSON text, exactly as it travels."""

    __slots__ = ("method", "json", "_value")

    def __init__(self, method: str, json_text: str):
        self.method = method
        """The JSON-RPC method (for an answer: of the request it answers)."""
        self.json = json_text
        """The whole message as JSON text."""
        self._value = _UNPARSED

    def __repr__(self) -> str:
        return f"Message({self.method!r}, {self.json!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and (self.method, self.json) == (other.method, other.json)

    __hash__ = None

    @property
    def value(self) -> Any:
        """The message parsed (once); None if it is not JSON, which the proxy
        never hands over. Treat it as read-only: :meth:`edited` works on a
        copy."""
        if self._value is _UNPARSED:
            try:
                self._value = json.loads(self.json)
            except ValueError:
                self._value = None
        return self._value

    def _get(self, key: str) -> Any:
        v = self.value
        return v.get(key) if isinstance(v, dict) else None

    @property
    def id(self) -> Any:
        """``id``, for a request or an answer (None for a notification)."""
        return self._get("id")

    @property
    def params(self) -> Any:
        """``params``, for a request or a notification."""
        return self._get("params")

    @property
    def result(self) -> Any:
        """``result``, for a successful answer."""
        return self._get("result")

    @property
    def error(self) -> Optional[RpcError]:
        """``error``, for a failed answer."""
        e = self._get("error")
        if not isinstance(e, dict):
            return None
        code, message = e.get("code"), e.get("message")
        if not isinstance(code, int) or isinstance(code, bool) or not isinstance(message, str):
            return None
        data = dumps(e["data"]) if "data" in e else None
        return RpcError(code, message, data)

    def tool_call(self) -> Optional[ToolCall]:
        """The tool and arguments of a ``tools/call`` request."""
        params = self.params
        if self.method != "tools/call" or not isinstance(params, dict):
            return None
        name = params.get("name")
        if not isinstance(name, str):
            return None
        return ToolCall(name, params["arguments"] if "arguments" in params else {})

    def tools(self) -> Optional[List[Any]]:
        """The tools of a ``tools/list`` result."""
        result = self.result
        tools = result.get("tools") if isinstance(result, dict) else None
        return tools if isinstance(tools, list) else None

    def text(self) -> Optional[str]:
        """The text of a result's ``content`` blocks, joined with newlines (a
        ``tools/call`` result, a ``sampling/createMessage`` answer's one block)."""
        result = self.result
        if not isinstance(result, dict) or "content" not in result:
            return None
        content = result["content"]
        blocks = content if isinstance(content, list) else [content]
        return "\n".join(
            b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str)
        )

    def keep_tools(self, keep: Callable[[Any], bool]) -> Verdict:
        """A ``tools/list`` answer keeping only the tools ``keep`` accepts:
        :attr:`Verdict.CONTINUE` when it keeps them all, else the replacement."""
        tools = self.tools()
        if tools is None:
            return Verdict.CONTINUE
        kept = [t for t in tools if keep(t)]
        if len(kept) == len(tools):
            return Verdict.CONTINUE

        def edit(m):
            m["result"]["tools"] = kept

        return self.edited(edit)

    def edited(self, edit: Callable[[Any], Any]) -> Verdict:
        """This message with ``edit`` applied, as a replacement. ``edit`` gets a
        copy of :attr:`value` to change in place, or returns a new message
        (the id and method stay as they were unless ``edit`` changes them,
        which the proxy refuses)."""
        value = self.value
        if value is None:
            return Verdict.CONTINUE
        value = copy.deepcopy(value)
        new = edit(value)
        return Verdict.replace(value if new is None else new)
