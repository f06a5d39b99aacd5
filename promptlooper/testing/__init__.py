"""Public test doubles for promptlooper.

These fakes are used by promptlooper's own tests and benchmarks, and are
public so users can test their own sweeps without a real LLM provider:
:class:`FakeModel` answers an endpoint whose base URL is ``fake://NAME`` in
this process (no HTTP; :func:`fake_endpoint` makes such an endpoint), for unit
tests; :class:`FakeServer` is a real HTTP server on 127.0.0.1 speaking the OpenAI
chat-completions API with deterministic replies, configurable latency and
injectable faults (:class:`Faults`); :func:`spawn_fake_server` and
:func:`fake_server_process` run it in a separate process for benchmarks.

Example::

    from promptlooper.testing import FakeServer, Faults

    with FakeServer(latency=0.05, faults=Faults(rate_limit=0.1)) as srv:
        run_my_sweep(base_url=srv.base_url)
        assert srv.stats()["completions"] > 0
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from promptlooper.testing.fake_provider import FakeModel, fake_endpoint
    from promptlooper.testing.fake_server import (
        FakeServer,
        Faults,
        fake_server_process,
        spawn_fake_server,
    )

__all__ = ["FakeModel", "FakeServer", "Faults", "fake_endpoint", "fake_server_process", "spawn_fake_server"]
_HOMES = {"FakeModel": "fake_provider", "fake_endpoint": "fake_provider", "Faults": "scripted"}


def __getattr__(name: str) -> Any:
    # Imported lazily so that `python -m promptlooper.testing.fake_server`
    # does not find the module already imported by its own package (which
    # makes runpy warn and would define every class twice).
    if name in __all__:
        return getattr(importlib.import_module(f"promptlooper.testing.{_HOMES.get(name, 'fake_server')}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
