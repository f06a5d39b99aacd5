"""The one boundary between the facade and the MCP client: exceptions in, tool errors out.

A tool body calls the :class:`~promptlooper.workbench.Workbench` and lets its exceptions rise; the
facade already validates, finds (or not) what is named, and refuses what it refuses. Here, and
only here, they become the SDK's ``ToolError`` (as httpx maps foreign exceptions at its edge):

* :class:`ArgumentError` (or any facade error raised inside ``with argument(name):``) names the
  argument it is about, so an agent knows what to change;
* a :class:`~promptlooper.errors.SpecError` lists its problems with field paths;
* any other exception is logged with its traceback and reaches the client as one line.

Every message goes through :func:`promptlooper.keys.redact`: no key value ever leaves in a reply.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from .. import keys
from ..bounds import shown
from ..errors import PromptLooperError, SpecError
from ..validation import problems_from_validation_error

log = logging.getLogger("promptlooper.mcp")

# What a caller can fix (a message naming the argument); anything else is a bug, logged in full.
_EXPECTED = (PromptLooperError, KeyError, ValueError, LookupError, ValidationError)


class ArgumentError(Exception):
    """A problem with one argument of a tool call."""

    def __init__(self, arg: str, message: str):
        super().__init__(f"{arg}: {message}")


@contextmanager
def argument(name: str) -> Iterator[None]:
    """Facade errors raised inside are about argument ``name`` (a SpecError keeps its own field paths)."""
    try:
        yield
    except (SpecError, ArgumentError):
        raise
    except _EXPECTED as exc:
        raise ArgumentError(name, message(exc)) from exc


def message(exc: BaseException) -> str:
    """What the client reads for ``exc``: problems with their paths, or the exception's own words."""
    if isinstance(exc, SpecError):
        first, more = shown(exc.problems)
        lines = [f"- {p}" for p in first] + ([f"- … and {more:,} more"] if more else [])
        return f"{len(exc.problems)} problem(s); nothing was run:\n" + "\n".join(lines)
    if isinstance(exc, ValidationError):
        return message(SpecError(problems_from_validation_error(exc)))
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


def tool_error(exc: BaseException, tool: str = "") -> ToolError:
    """The ToolError the client gets for ``exc`` raised by ``tool`` (key values redacted)."""
    if isinstance(exc, ToolError):
        return exc
    if isinstance(exc, ArgumentError):
        return ToolError(keys.redact(str(exc)))
    if isinstance(exc, _EXPECTED):
        return ToolError(keys.redact(message(exc)))
    log.error("tool %s failed", tool, exc_info=exc)  # a message for the agent, the traceback for the log
    return ToolError(keys.redact(f"{type(exc).__name__}: {exc}"))


__all__ = ["ArgumentError", "argument", "message", "tool_error"]
