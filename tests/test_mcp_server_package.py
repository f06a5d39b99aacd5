"""The MCP server as a package: light to import, and waiting on a sweep's start by event.

A function stage that waits on a ``threading.Event`` holds every run of a sweep, so "the sweep
has started but not ended" is a state the test controls, not a matter of timing.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers import sweep_status, wait
from mcp import Client

import promptlooper as pl
from promptlooper.errors import SweepConflictError
from promptlooper.functions import register_function

PACKAGE = Path(pl.__file__).parent / "mcp_server"


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """An event every run of a gated experiment waits on (opened at the end, whatever happened)."""
    event = threading.Event()

    async def gated(question: str) -> str:
        # Waits off the sweep's loop (which goes on writing progress); bounded, so a failing test cannot hang.
        await asyncio.to_thread(event.wait, 60)
        return f"answer to {question}"

    register_function("gated", gated)
    yield event
    event.set()


def _gated(name: str = "gated-exp", function: Any = "gated") -> dict[str, Any]:
    return {"project": "tests", "name": name, "samples": [{"question": "one"}, {"question": "two"}],
            "stages": [{"kind": "function", "name": "answer", "function": function}],
            "scorers": [{"name": "length", "max_words": 5}], "concurrency": 2}


def test_importing_the_package_loads_neither_the_sdk_nor_pandas():
    code = """if True:
        import json, sys
        import promptlooper
        before = set(sys.modules)
        import promptlooper.mcp_server, promptlooper.mcp_server.grants, promptlooper.mcp_server.schemas
        added = set(sys.modules) - before
        heavy = sorted(m for m in added if m.split(".")[0] in ("mcp", "pandas"))
        promptlooper.mcp_server.build_server  # first use: the server, and with it the SDK
        print(json.dumps({"heavy": heavy, "sdk_on_use": "mcp.server" in sys.modules}))
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"heavy": [], "sdk_on_use": True}


def test_a_sweep_handle_tells_when_its_sweep_has_started_without_waiting_for_its_end(db, gate):
    wb = pl.Workbench(db)
    try:
        handle = wb.start(pl.Experiment.model_validate(_gated()))
        assert handle.started(timeout=60) is True
        assert handle.sweep_id and not handle.done()  # every run is held at the gate
        gate.set()
        assert handle.wait(60).status == "completed"
        assert handle.started(timeout=0) is True  # an ended sweep has started
    finally:
        wb.close()


def test_started_raises_why_a_sweep_could_not_start(db):
    exp = pl.Experiment.model_validate(_gated())
    wb = pl.Workbench(db)
    try:
        # Another live process holds the experiment's lease (this test's parent process, say).
        sweep_id = wb.store.begin_sweep(wb.register(exp), "grid", 2, {})
        with sqlite3.connect(db) as cx:
            cx.execute("UPDATE sweeps SET owner_pid = ? WHERE id = ?", (os.getppid(), sweep_id))
        refused = wb.start(exp)
        with pytest.raises(SweepConflictError, match="already being swept"):
            refused.started(timeout=60)
        assert refused.done()
    finally:
        wb.close()


def test_run_sweep_replies_while_the_sweep_runs(db, gate):
    from promptlooper.mcp_server import build_server

    wb = pl.Workbench(db)
    server = build_server(wb)

    async def go() -> dict[str, Any]:
        async with Client(server) as c:
            created = await c.call_tool("create_experiment", {"experiment": _gated()})
            assert not created.is_error, created.content[0].text
            started = await c.call_tool("run_sweep", {"experiment": "tests/gated-exp"})
            assert not started.is_error, started.content[0].text
            return started.structured_content

    try:
        reply = anyio.run(go)
        assert reply["status"] == "running" and reply["sweep_id"] and reply["total_runs"] == 2 and reply["done"] == 0
        gate.set()
        wait(lambda: sweep_status(db) == "completed", timeout=60)
    finally:
        wb.close()


def test_no_tool_reaches_into_a_handle_or_sleeps():
    for module in PACKAGE.glob("*.py"):
        text = module.read_text()
        assert "._future" not in text and "time.sleep" not in text, module.name  # waits are events


def test_the_package_runs_as_a_module_as_promptlooper_mcp_does():
    out = subprocess.run([sys.executable, "-m", "promptlooper.mcp_server", "--help"], capture_output=True, text=True,
                         timeout=120, check=True)
    assert "usage: promptlooper mcp" in out.stdout and "--transport" in out.stdout


def test_the_boundary_turns_facade_errors_into_tool_errors_naming_the_argument(monkeypatch, caplog):
    from mcp.server.mcpserver.exceptions import ToolError

    from promptlooper.errors import NotFoundError, Problem, SpecError
    from promptlooper.mcp_server.boundary import ArgumentError, argument, tool_error

    with pytest.raises(ArgumentError) as about_run, argument("run_id"):
        raise NotFoundError("no run 'abc'")
    assert str(tool_error(about_run.value)) == "run_id: no run 'abc'"
    with pytest.raises(SpecError) as spec, argument("experiment"):  # a SpecError keeps its own field paths
        raise SpecError([Problem("stages[0].model", "unknown model", "")])
    assert "stages[0].model" in str(tool_error(spec.value)) and "experiment:" not in str(tool_error(spec.value))
    assert isinstance(tool_error(KeyError("no scorer 'x'")), ToolError)
    monkeypatch.setenv("PROMPTLOOPER_MCP_KEY", "bearer-key-value")
    with caplog.at_level("ERROR", logger="promptlooper.mcp"):
        unexpected = str(tool_error(RuntimeError("boom near bearer-key-value"), "some_tool"))
    assert unexpected == "RuntimeError: boom near [redacted $PROMPTLOOPER_MCP_KEY]"
    assert "some_tool" in caplog.text  # the traceback goes to the log, not to the client
