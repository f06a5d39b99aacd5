"""MCP tools reject arguments they do not take, as a tool error naming them.

The SDK builds each tool's argument model from the function's signature and drops any other key
without a word, so an agent that misspells ``changes`` in ``fork_experiment`` gets a fork with no
changes and a success reply. :class:`StrictServer` checks the names first; the check lives here,
on the server's public ``add_tool`` / ``call_tool``, because the SDK's argument models are its own.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError


def unknown_arguments(tool: str, given: Iterable[str], accepted: list[str]) -> str | None:
    """What is wrong with ``given`` argument names for ``tool``, or None when every one is accepted."""
    unknown = [name for name in given if name not in accepted]
    if not unknown:
        return None
    named = []
    for name in unknown:
        close = difflib.get_close_matches(name, accepted, n=1)
        named.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    takes = ", ".join(accepted) or "no arguments"
    return f"unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(named)}; {tool} takes: {takes}"


class StrictServer(MCPServer[Any]):
    """An MCPServer whose tools answer a tool error for any argument they do not take."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._accepted: dict[str, list[str]] = {}

    def add_tool(self, fn: Callable[..., Any], name: str | None = None, **options: Any) -> None:
        super().add_tool(fn, name=name, **options)
        # inspect.signature follows functools.wraps to the tool's own parameters.
        self._accepted[name or fn.__name__] = list(inspect.signature(fn).parameters)

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        accepted = self._accepted.get(name)
        problem = unknown_arguments(name, arguments or {}, accepted) if accepted is not None else None
        if problem:
            raise ToolError(f"Error executing tool {name}: {problem}")  # worded as the SDK's other tool errors
        return await super().call_tool(name, arguments, context)
