"""Key engine, steering and MCP tests, run on each store backend: a SQLite file and PostgreSQL.

The ``db`` fixture is what a user passes as ``--db`` / ``Workbench(db)``: a file path, or a
``postgresql://`` URL of a fresh database on the session's throwaway server (tests/pg.py). The
tests read results through the facade and the store's interface only, never SQL, so each holds
both backends to the same behaviour. Models are the in-process fake (no HTTP) unless said.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers import fake_experiment, temperature_sweep, write_experiment
from helpers import wait as _wait
from mcp import Client

import promptlooper as pl
from promptlooper.mcp_server import build_server
from promptlooper.store import open_store
from promptlooper.testing import FakeModel, FakeServer
from promptlooper.testing.fake_server import default_reply

CLI = [sys.executable, "-m", "promptlooper.cli"]


pytestmark = pytest.mark.both_backends  # db / wb: a SQLite file, then a PostgreSQL database (tests/conftest.py)


def _slow_fake(latency: float) -> FakeModel:
    return FakeModel(f"test-{uuid.uuid4().hex[:12]}", latency=latency)


def test_a_grid_sweep_stores_ranks_and_resumes_without_calls(wb: pl.Workbench, make_fake_exp, fake: FakeModel) -> None:
    exp = make_fake_exp()
    progress = wb.run(exp)
    assert progress.status == "completed" and progress.done == 12 and progress.failed == 0
    assert fake.stats()["completions"] == 12
    board = wb.leaderboard(exp.key)
    assert list(board["rank"]) == [1, 2, 3, 4] and (board["n"] == 3).all()
    assert board["score"].is_monotonic_decreasing
    assert len(wb.runs(exp.key, limit=100)) == 12
    fake.reset()
    again = wb.run(exp)
    assert fake.stats()["requests"] == 0 and again.skipped == 12
    second = wb.run(make_fake_exp(name="second"))  # same calls, another experiment: all from the cache
    assert fake.stats()["requests"] == 0 and second.cached == 12 and second.tokens == 0


def test_human_ratings_survive_a_rerun_of_their_run(wb: pl.Workbench, make_fake_exp, fake: FakeModel) -> None:
    exp = make_fake_exp(space={})
    wb.run(exp)
    run = wb.runs(exp.key)[0]
    wb.rate(run["id"], stars=4, comment="good", by="ana")
    wb.invalidate_cache(run=run["id"])
    fake.reset()
    wb.run(exp)
    assert fake.stats()["completions"] == 1
    human = [s for s in wb.run_detail(run["id"])["scores"] if s["source"] == "human"]
    assert [(s["scorer"], s["value"]) for s in human] == [("human_stars", 0.75)]


def test_events_record_the_sweep_in_order(wb: pl.Workbench, make_fake_exp) -> None:
    exp = make_fake_exp()
    wb.run(exp)
    types = [e["type"] for e in wb.events(exp.key, ["experiment.*"])]
    assert types == ["experiment.started", "experiment.completed"]
    ids = [e["id"] for e in wb.events(exp.key)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_a_second_workbench_pauses_and_resumes_a_running_sweep(db: str) -> None:
    fake = _slow_fake(0.05)
    exp = fake_experiment(fake.base_url, name="steer", space={"answer.temperature": [i / 10 for i in range(10)]}, concurrency=2)
    runner, other = pl.Workbench(db), pl.Workbench(db)  # as another process would: its own store
    handle = None
    try:
        handle = runner.start(exp)
        _wait(lambda: handle.progress.done >= 4, timeout=30)
        other.pause(exp.key)
        _wait(lambda: handle.status == "paused", timeout=10)
        # The sweep says so in its store a moment after it paused (its write thread): wait for it.
        _wait(lambda: other.store.latest_sweep(other.store.experiment(exp.key)["id"])["status"] == "paused", timeout=10)
        other.resume(exp.key)
        progress = handle.wait(60)
        assert progress.status == "completed" and progress.done == 30
        types = [e["type"] for e in other.events(exp.key, ["experiment.*"])]
        assert types == ["experiment.started", "experiment.paused", "experiment.resumed", "experiment.completed"]
    finally:
        if handle is not None and not handle.done():  # a failed assertion must not leave a paused sweep behind
            handle.stop()
            handle.wait(30)
        runner.close()
        other.close()


def test_a_budget_pauses_then_raising_it_and_resuming_continues(wb: pl.Workbench) -> None:
    fake = _slow_fake(0.01)
    exp = fake_experiment(fake.base_url, name="budget", space={"answer.temperature": [i / 10 for i in range(10)]},
                          concurrency=2, budget={"max_tokens": 60})
    handle = wb.start(exp)
    _wait(lambda: handle.status == "paused", timeout=30)
    assert handle.progress.stop_reason == "budget" and handle.progress.done < 30
    [event] = _wait(lambda: wb.events(exp.key, ["budget.exhausted"]), timeout=10)  # once its batch is written
    assert event["payload"]["token_count"] >= 60
    wb.set_budget(exp.key, max_tokens=100_000)
    wb.resume(exp.key)
    progress = handle.wait(30)
    assert progress.status == "completed" and progress.done == 30


def test_redirect_a_running_sweep(wb: pl.Workbench) -> None:
    fake = _slow_fake(0.05)
    temps = [round(i * 0.05, 2) for i in range(20)]
    exp = fake_experiment(fake.base_url, name="redir", space={"answer.temperature": temps}, concurrency=2)
    handle = wb.start(exp)
    _wait(lambda: handle.progress.done >= 6, timeout=30)
    assert wb.redirect(exp.key, {"answer.temperature": [0.0, 0.05, 0.9, 0.95]})["live"]
    progress = handle.wait(60)
    assert progress.status == "completed"
    assert progress.done == progress.total == len(wb.runs(exp.key, limit=1000))
    assert {0.9, 0.95} <= set(wb.leaderboard(exp.key)["answer.temperature"])


async def _call(client: Client, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    res = await client.call_tool(tool, args or {})
    assert not res.is_error, f"{tool}: {res.content[0].text}"
    return res.structured_content


def test_an_agent_sweeps_and_reads_the_leaderboard_over_mcp(wb: pl.Workbench, fake: FakeModel) -> None:
    exp = fake_experiment(fake.base_url).model_dump(mode="json", exclude_none=True)
    server = build_server(wb)

    async def go() -> dict[str, Any]:
        async with Client(server) as c:
            assert (await _call(c, "create_experiment", {"experiment": exp}))["configurations"] == 4
            await _call(c, "run_sweep", {"experiment": "tests/fake-exp"})
            for _ in range(400):
                status = await _call(c, "get_experiment_status", {"experiment": "tests/fake-exp"})
                if status["sweep"]["status"] == "completed":
                    break
                await anyio.sleep(0.05)
            assert status["sweep"]["done"] == 12
            run_id = wb.runs("tests/fake-exp")[0]["id"]
            await _call(c, "add_human_score", {"run_id": run_id, "stars": 5})
            return await _call(c, "get_leaderboard", {"experiment": "tests/fake-exp", "top": 2})

    board = anyio.run(go)
    assert board["configurations"] == 4 and len(board["top"]) == 2


def _completed(db: str) -> int:
    """Completed runs of the (only) experiment, read through the store's interface."""
    store = open_store(db, readonly=True)
    try:
        experiments = store.experiments()
        return store.run_counts(experiments[0]["id"]).get("completed", 0) if experiments else 0
    finally:
        store.close()


def _completed_yet(db: str) -> int:
    try:
        return _completed(db)
    except Exception:  # noqa: BLE001  (the other process has not created the store or its schema yet)
        return 0


def test_kill_9_midway_then_rerun_repeats_no_completed_call(db: str, tmp_path: Path) -> None:
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def reply(body: dict[str, Any]) -> Any:
        key = json.dumps(body["messages"], sort_keys=True) + json.dumps(body.get("temperature"))
        with lock:
            counts[key] = counts.get(key, 0) + 1
        return default_reply(body)

    with FakeServer(latency=0.02, reply=reply) as srv:
        f = write_experiment(tmp_path / "steer.yaml", temperature_sweep(srv.base_url, "steer", 60))
        proc = subprocess.Popen([*CLI, "--db", db, "run", str(f), "--quiet"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        _wait(lambda: _completed_yet(db) >= 40, timeout=60, every=0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        before = sum(counts.values())
        done_before = _completed(db)
        assert 40 <= done_before < 180
        res = subprocess.run([*CLI, "--db", db, "run", str(f), "--quiet"], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert "completed: 180/180" in res.stdout
    # Every call whose run was stored before the kill is served from the store: the rerun makes
    # only the others (180 in all, plus any the killed process made but never stored).
    assert sum(counts.values()) - before == 180 - done_before
    assert _completed(db) == 180
