"""What every tool group is given: the facade, and the way a function becomes a tool.

Each tool module has ``register(server, context)``; inside it, ``@context.tool(server)`` turns a
plain function into a tool: its signature is the input schema (the SDK reads the annotations),
its docstring the description, and whatever it raises goes through :func:`.boundary.tool_error`.
The wrapper is also where the agent-specific rules hold for every call at once: a client's
calls grant no key (:func:`promptlooper.keys.for_client`), no key value is in a reply, and what a
call does is recorded as done by the server's actor (:mod:`promptlooper.actors`): the name the
operator gave it (``promptlooper --as NAME mcp``, ``$PROMPTLOOPER_USER``), else ``agent``, never
the OS user who runs the server; a tool's ``by`` argument still names someone in particular.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import actors, keys
from ..spec import Experiment
from ..workbench import Workbench
from .boundary import argument, tool_error
from .grants import endpoint_key_vars
from .replies import clean

AGENT = "agent"  # who an MCP client acts as when the operator named no one


@dataclass
class ToolContext:
    wb: Workbench

    @property
    def actor(self) -> str:
        return self.wb.named_actor or AGENT

    def tool(self, server: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """A decorator registering a function as a tool of ``server``."""

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    with keys.for_client(), actors.acting_as(self.actor):
                        return keys.redact(clean(fn(*args, **kwargs)), endpoint_key_vars(self.wb))
                except Exception as exc:  # noqa: BLE001 - every exception leaves as a tool error, at this one place
                    raise tool_error(exc, fn.__name__) from None

            server.add_tool(wrapper, name=fn.__name__, description=inspect.cleandoc(fn.__doc__ or ""))
            return wrapper

        return register

    # Replies name experiments as 'project/name'; these read the stored row once for that.
    def experiment(self, ref: str, arg: str = "experiment") -> dict[str, Any]:
        with argument(arg):
            return self.wb.experiment(ref)

    def load(self, ref: str) -> Experiment:
        with argument("experiment"):
            return self.wb.load(ref)


def key(row: dict[str, Any]) -> str:
    """An experiment row's 'project/name'."""
    return f"{row['project']}/{row['name']}"


__all__ = ["AGENT", "ToolContext", "key"]
