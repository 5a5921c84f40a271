"""The services the proxy gives every hook: its config string and its log.

Inside the component these are the WIT imports (``wit_world.imports.host``,
which componentize-py generates for the component only). Under plain CPython
:mod:`sluice_hook.testing` stands in for the proxy while it runs a hook.
"""

from __future__ import annotations

from enum import Enum


class Level(Enum):
    """Severity of a log line. The proxy shows ``INFO`` and above by default."""

    TRACE = "trace"
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


class _Component:
    """The proxy, through the component's imports."""

    def __init__(self):
        from . import _wit

        if _wit.wit_host is None:
            raise RuntimeError(
                "sluice_hook.host: no proxy here: a hook's host calls work inside the "
                "component, or under sluice_hook.testing.Call in a native test"
            )
        self._host, self._types = _wit.wit_host, _wit.wit

    def config(self) -> str:
        return self._host.config()

    def log(self, level: Level, message: str) -> None:
        self._host.log(self._types.Level[level.name], message)


# What host calls go to: set by sluice_hook.testing while it runs a hook,
# else the component's imports, found on first use.
_backend = None


def _host():
    global _backend
    if _backend is None:
        _backend = _Component()
    return _backend


def config() -> str:
    """The hook's configuration string, exactly as the operator wrote it
    (often JSON); empty when none was given."""
    return _host().config()


def log(level: Level, message: str) -> None:
    """A line in the proxy's log, attributed to the hook (lines over 4 KiB
    are cut)."""
    if not isinstance(level, Level):
        raise TypeError(f"log level {level!r} is not a sluice_hook.Level")
    _host().log(level, str(message))


def debug(message: str) -> None:
    """:func:`log` at ``DEBUG``."""
    log(Level.DEBUG, message)


def info(message: str) -> None:
    """:func:`log` at ``INFO``."""
    log(Level.INFO, message)


def warn(message: str) -> None:
    """:func:`log` at ``WARN``."""
    log(Level.WARN, message)


def error(message: str) -> None:
    """:func:`log` at ``ERROR``."""
    log(Level.ERROR, message)
