"""Who acted: the name recorded with what a person or an agent does to a shared store.

Starting a sweep, pausing, resuming, stopping or redirecting it, approving or rejecting a
configuration, rating a run and writing a note each record an *actor* (``"by"`` in the event's
payload, beside the configuration's ``decided_by``, a rating's ``by`` and a note's ``by``), so a
team reading one event log sees who did what, from whichever process.

Where the name comes from, first found wins:

* a ``by=`` given to the call (``wb.approve(..., by="ana")``, ``promptlooper approve --by ana``);
* the caller's context: an MCP server acts as its own name for every tool call
  (:func:`acting_as`, see :mod:`promptlooper.mcp_server.context`), never as the operator's OS user;
* the Workbench's: ``Workbench(actor="ana")``, ``promptlooper --as ana``;
* ``$PROMPTLOOPER_USER`` (a container, a shared service account);
* the operating system's user (a person's notebook or shell).

Names are what callers say they are: on a shared database, the roles and tokens of the services
(the MCP server's bearer key, the dashboards' read-only role) decide who may act at all.
"""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Iterator
from contextvars import ContextVar

ENV = "PROMPTLOOPER_USER"
_current: ContextVar[str] = ContextVar("promptlooper_actor", default="")


def configured() -> str:
    """``$PROMPTLOOPER_USER`` (stripped), or ``""`` when it is not set."""
    return os.environ.get(ENV, "").strip()


def default_actor() -> str:
    """``$PROMPTLOOPER_USER``, else the operating system's user name."""
    if configured():
        return configured()
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid with no passwd entry (some containers)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


@contextlib.contextmanager
def acting_as(name: str) -> Iterator[None]:
    """Record ``name`` as the actor of what this context (thread or task) does, whatever the Workbench's own name."""
    token = _current.set(name)
    try:
        yield
    finally:
        _current.reset(token)


def actor_of(by: str, own: str) -> str:
    """The actor to record: ``by`` if given, else the context's (:func:`acting_as`), else ``own`` (a Workbench's)."""
    return by.strip() or _current.get() or own


__all__ = ["ENV", "acting_as", "actor_of", "configured", "default_actor"]
