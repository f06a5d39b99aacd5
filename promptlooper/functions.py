"""Named Python functions for function stages and custom scorers.

Registering a function by name makes it usable from YAML files and over MCP, where nobody can pass
Python objects (and an agent must never run arbitrary code): they refer to it by that name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_FUNCTIONS: dict[str, Callable[..., Any]] = {}


def register_function(name: str, fn: Callable[..., Any] | None = None) -> Any:
    """Register ``fn`` under ``name``; usable as a decorator: ``@register_function("clean")``."""

    def add(f: Callable[..., Any]) -> Callable[..., Any]:
        _FUNCTIONS[name] = f
        return f

    return add(fn) if fn is not None else add


def resolve_function(ref: Callable[..., Any] | str) -> Callable[..., Any]:
    if callable(ref):
        return ref
    try:
        return _FUNCTIONS[ref]
    except KeyError:
        known = ", ".join(sorted(_FUNCTIONS)) or "none registered"
        raise KeyError(f"no function registered as {ref!r} (known: {known}); use register_function") from None


def registered_functions() -> dict[str, Callable[..., Any]]:
    return dict(_FUNCTIONS)
