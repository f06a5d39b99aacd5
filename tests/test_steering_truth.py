"""Steering does what it says: redirect keeps the other axes and starts no dropped run, a paused
sweep reads `paused` and a dead one `interrupted` in every front end (facade, CLI, MCP, widgets)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from typing import Any

import anyio
import pytest
from helpers import db_rows, fake_experiment, store_exists, temperature_sweep, write_experiment
from helpers import runs_done as _runs_done
from helpers import sweep_status as _sweep_status
from helpers import wait as _wait
from mcp import Client

import promptlooper as pl
from promptlooper.mcp_server import build_server
from promptlooper.testing import FakeServer
from promptlooper.testing.fake_server import default_reply
from promptlooper.ui.live import sweep_numbers
from promptlooper.ui.steering import status_view

pytestmark = pytest.mark.both_backends  # each test on a SQLite file and on PostgreSQL (tests/conftest.py)

CLI = [sys.executable, "-m", "promptlooper.cli"]


def _cli(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "--db", db, *args], capture_output=True, text=True, timeout=120)


def _mcp(wb: pl.Workbench, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    server = build_server(wb)

    async def go() -> dict[str, Any]:
        async with Client(server) as c:
            res = await c.call_tool(tool, args)
            assert not res.is_error, res.content[0].text
            assert res.structured_content is not None
            return res.structured_content

    return anyio.run(go)  # type: ignore[no-any-return]


def _statuses_everywhere(wb: pl.Workbench, db: str, key: str) -> dict[str, str]:
    """The state of the experiment and its sweep as each front end reports it."""
    # Both CLI commands at once: each start-up costs seconds on a loaded machine.
    procs = [subprocess.Popen([*CLI, "--db", db, *args], stdout=subprocess.PIPE, text=True)
             for args in (("status", key), ("experiments", "--json"))]
    cli_out = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    facade = wb.status(key)
    cli = cli_out[0]
    [listed] = [e for e in cli_out[1] if f"{e['project']}/{e['name']}" == key]
    mcp = _mcp(wb, "get_experiment_status", {"experiment": key})
    [mcp_listed] = [e for e in _mcp(wb, "list_experiments", {})["experiments"] if e["experiment"] == key]
    return {
        "facade": facade["status"], "facade.sweep": facade["sweep"]["status"],
        "cli status": cli["status"], "cli status.sweep": cli["sweep"]["status"], "cli experiments": listed["status"],
        "mcp": mcp["status"], "mcp.sweep": mcp["sweep"]["status"], "mcp list": mcp_listed["status"],
        "steering widget": status_view(facade)["state"], "live widget": sweep_numbers(facade["sweep"])["status"],
    }


def test_cli_redirect_set_changes_one_axis_and_keeps_the_others(db, server):
    # The README's own command, on an experiment with two axes (the persona is used by the template).
    wb = pl.Workbench(db)
    exp = fake_experiment(server.base_url, name="two-axes")
    wb.register(exp)
    wb.close()
    res = _cli(db, "redirect", exp.key, "--set", "answer.temperature=[0.0, 0.2]")
    assert res.returncode == 0, res.stderr
    wb = pl.Workbench(db)
    space = wb.load(exp.key).model_dump(mode="json")["space"]
    assert space["answer.temperature"] == [0.0, 0.2]
    assert space["persona"] == ["terse", "verbose"]  # kept
    assert "4 configurations" in res.stdout
    # A key that is not an axis is named, with the axes to choose from.
    bad = _cli(db, "redirect", exp.key, "--set", "answer.temprature=[0.1]")
    assert bad.returncode == 2
    assert "answer.temprature" in bad.stderr and "answer.temperature" in bad.stderr
    wb.close()


def test_redirect_starts_no_run_of_a_dropped_configuration_and_recounts_the_total(db):
    sent: list[tuple[float, Any]] = []  # (arrival time, temperature) of the calls the server received
    lock = threading.Lock()

    def reply(body: dict[str, Any]) -> str:
        with lock:
            sent.append((time.time(), body.get("temperature")))
        return default_reply(body)

    with FakeServer(latency=0.15, reply=reply) as srv:
        temps = [round(i * 0.05, 2) for i in range(20)]
        exp = fake_experiment(srv.base_url, name="redir", space={"answer.temperature": temps}, concurrency=2)
        wb = pl.Workbench(db)
        handle = wb.start(exp)
        _wait(lambda: handle.progress.done >= 4, timeout=30)
        kept = [0.0, 0.05, 0.9, 0.95]
        assert wb.redirect(exp.key, {"answer.temperature": kept})["live"]
        progress = handle.wait(60)
        assert progress.status == "completed"
        # The sweep's own record of when the redirect landed, and the total it recounted then.
        (landed,) = wb.events(exp.key, types=["experiment.redirected"])
        at = datetime.fromisoformat(landed["ts"]).timestamp()
        # Calls out when the redirect landed (at most `concurrency`) may still arrive; nothing after.
        late_dropped = [t for arrived, t in sent if arrived > at and t not in kept]
        assert len(late_dropped) <= 2, f"{len(late_dropped)} calls of dropped configurations started after the redirect"
        stored = wb.runs(exp.key, limit=1000)
        assert progress.done == progress.total == len(stored)
        total_then = landed["payload"]["total"]
        assert total_then <= progress.total <= total_then + 2  # recounted, not grown by dropped runs
        assert wb.status(exp.key)["sweep"]["total"] == len(stored)
        assert {0.9, 0.95} <= {t for _, t in sent}
        wb.close()


def test_a_paused_sweep_reads_paused_everywhere(db):
    with FakeServer(latency=0.1) as srv:
        exp = temperature_sweep(srv.base_url, "paused", 60)
        wb = pl.Workbench(db)
        handle = wb.start(exp)
        _wait(lambda: handle.progress.done >= 2, timeout=30)
        wb.pause(exp.key, "look at it")
        _wait(lambda: handle.status == "paused" and _sweep_status(db) == "paused", timeout=10)
        seen = _statuses_everywhere(wb, db, exp.key)
        assert set(seen.values()) == {"paused"}, seen
        wb.resume(exp.key)
        _wait(lambda: _sweep_status(db) == "running", timeout=10)
        assert wb.status(exp.key)["status"] == "running"
        wb.stop(exp.key)
        assert handle.wait(30).status == "stopped"
        assert wb.status(exp.key)["status"] == "stopped"
        wb.close()


def test_a_sweep_whose_process_is_gone_reads_interrupted_everywhere_and_pause_says_so(tmp_path, db):
    with FakeServer(latency=0.1) as srv:
        f = write_experiment(tmp_path / "gone.yaml", temperature_sweep(srv.base_url, "gone", 60))
        proc = subprocess.Popen([*CLI, "--db", db, "run", str(f), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait(lambda: store_exists(db) and _sweep_status(db) == "running" and _runs_done(db) >= 2, timeout=60)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        wb = pl.Workbench(db)
        seen = _statuses_everywhere(wb, db, "tests/gone")  # no new sweep started: read at once
        assert set(seen.values()) == {"interrupted"}, seen
        res = _cli(db, "pause", "tests/gone")
        assert res.returncode == 1
        assert "within a second" not in res.stdout + res.stderr
        assert "interrupted" in res.stderr and str(proc.pid) in res.stderr and "rerun" in res.stderr
        # The same over MCP: a clear tool error, not "applied within about a second".
        server = build_server(wb)

        async def go() -> str:
            async with Client(server) as c:
                out = await c.call_tool("pause_sweep", {"experiment": "tests/gone"})
                assert out.is_error
                return str(out.content[0].text)

        text = anyio.run(go)
        assert "interrupted" in text and "rerun" in text
        wb.close()


def test_a_sweep_on_another_host_is_interrupted_once_its_heartbeat_is_stale(db, server):
    wb = pl.Workbench(db)
    exp = fake_experiment(server.base_url, name="elsewhere")
    exp_id = wb.register(exp)
    sweep_id = wb.store.begin_sweep(exp_id, "grid", 12, {})
    wb.store.update_sweep(sweep_id, owner_host="another-host", owner_pid=1)  # beats now: alive
    assert wb.status(exp.key)["status"] == "running"
    db_rows(db, "UPDATE sweeps SET heartbeat = heartbeat - 120 WHERE id = ?", sweep_id)  # as if it stopped beating
    assert wb.status(exp.key)["status"] == "interrupted"
    assert wb.status(exp.key)["sweep"]["stop_reason"] == "owner process gone"
    wb.close()


def test_a_kept_run_sharing_a_call_with_a_dropped_run_still_runs(db):
    # Two stages; only the second varies, so configurations share every first-stage call: a kept
    # run may wait for the very call a dropped run was about to make when the redirect lands.
    with FakeServer(latency=0.3) as srv:
        temps = [round(i * 0.1, 1) for i in range(8)]
        exp = fake_experiment(
            srv.base_url, name="shared", concurrency=1, space={"polish.temperature": temps},
            stages=[{"name": "answer", "model": "fake/fake-small", "user": "Q: {{ question }}", "params": {"max_tokens": 8}},
                    {"name": "polish", "model": "fake/fake-small", "user": "Polish: {{ previous }}", "params": {"max_tokens": 8}}])
        wb = pl.Workbench(db)
        handle = wb.start(exp)
        _wait(lambda: srv.stats()["completions"] >= 1, timeout=30, every=0.01)  # the first sample's first call is out
        kept = temps[4:]
        wb.redirect(exp.key, {"polish.temperature": kept})
        progress = handle.wait(60)
        assert progress.status == "completed"
        stored = wb.runs(exp.key, limit=1000)
        assert progress.done == progress.total == len(stored)
        board = wb.leaderboard(exp.key)
        kept_rows = board[board["polish.temperature"].isin(kept)]
        assert len(kept_rows) == len(kept) and set(kept_rows["n"]) == {3}  # every kept run ran
        wb.close()
