"""The MCP server: AI agents drive the same engine as the CLI and notebooks, and can steer it.

    promptlooper mcp                                   # stdio (an MCP client launches it)
    promptlooper mcp --transport http --port 8401      # streamable HTTP on 127.0.0.1, bearer key
    python -m promptlooper.mcp_server                  # the same, as a module

Every tool is a few lines over the :class:`~promptlooper.workbench.Workbench` facade; everything
it does lands in the same store, so a sweep an agent starts is visible (and steerable) from any
other process, and an agent can pause a sweep a terminal or a notebook started.

Design, one module per job:

* ``server``: :func:`build_server` composes the tool groups; :func:`serve` runs a transport;
* one module per tool group, each with ``register(server, context)``: ``experiments``,
  ``housekeeping``, ``endpoints``, ``runs``, ``results``, ``steering``, ``guided``, ``views``;
* ``context``: what a tool group is given (the facade) and the decorator that makes a tool;
* ``boundary``: the one place where the facade's exceptions become tool errors, naming the
  argument they are about (never a traceback);
* ``grants``: what an agent may reach (key variables, the data folder, functions by name);
* ``schemas`` / ``replies``: argument types from the spec's pydantic models; compact replies;
* ``strict``: a server that refuses argument names a tool does not take.

Importing this package loads neither the MCP SDK nor pandas: :func:`build_server`, :func:`serve`
and :func:`bearer` load ``server`` (and with it the SDK) when first used, so ``promptlooper --help``
stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import bearer, build_server, serve

_FROM_SERVER = ("bearer", "build_server", "serve")


def __getattr__(name: str) -> Any:
    # PEP 562: the SDK is imported with the server, on first use, not with the package.
    if name in _FROM_SERVER:
        return getattr(importlib.import_module(".server", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["bearer", "build_server", "serve"]
