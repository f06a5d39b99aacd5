"""Who acted: start, pause, resume, stop, redirect, decisions, ratings and notes record their actor,
on both backends (a SQLite file and PostgreSQL, tests/pg.py).

The actor crosses processes with the steering request: a person's notebook runs the sweep, another
person pauses it from theirs, a third stops it from a shell (a real CLI process), and the event log
the sweep's own process writes names each of them. An MCP client acts as the server's name.
"""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers import fake_experiment
from helpers import wait as _wait
from mcp import Client

import promptlooper as pl
from promptlooper.cli import main
from promptlooper.mcp_server import build_server
from promptlooper.testing import FakeModel
from promptlooper.ui.matrix_view import MatrixView
from promptlooper.ui.rating import Rating
from promptlooper.ui.rating_queue import RatingQueue
from promptlooper.ui.timeline import event_row

CLI = [sys.executable, "-m", "promptlooper.cli"]


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "pl.db") if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


@pytest.fixture
def opened(location: str) -> Iterator[Any]:
    made: list[pl.Workbench] = []

    def open_as(actor: str | None = None) -> pl.Workbench:
        made.append(pl.Workbench(location, actor=actor))
        return made[-1]

    yield open_as
    for wb in made:
        wb.close()


def _slow(name: str = "steered", n: int = 60) -> pl.Experiment:
    fake = FakeModel(f"test-{uuid.uuid4().hex[:12]}", latency=0.05)
    return fake_experiment(fake.base_url, name=name, space={"answer.temperature": [i / 100 for i in range(n)]}, concurrency=2)


def _who(wb: pl.Workbench, key: str, prefix: str = "experiment.") -> list[tuple[str, str | None]]:
    return [(e["type"], e["payload"].get("by")) for e in wb.events(key) if e["type"].startswith(prefix)]


def test_each_steering_verb_records_who_asked_from_whichever_process(opened, location: str) -> None:
    runner, other = opened("ana"), opened("bo")
    exp = _slow()
    handle = runner.start(exp)
    _wait(lambda: handle.progress.done >= 4, timeout=30)
    other.pause(exp.key)
    _wait(lambda: handle.status == "paused", timeout=10)
    other.resume(exp.key)
    _wait(lambda: handle.status == "running", timeout=10)
    # A shell, another process: `promptlooper --as cy stop`.
    done = subprocess.run([*CLI, "--db", location, "--as", "cy", "stop", exp.key], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert handle.wait(60).status == "stopped"
    assert _who(runner, exp.key) == [("experiment.started", "ana"), ("experiment.paused", "bo"),
                                     ("experiment.resumed", "bo"), ("experiment.stopped", "cy")]
    assert other.status(exp.key)["started_by"] == "ana"
    # The notebook's and the dashboards' timeline says it too.
    rows = {r["type"]: r for r in map(event_row, runner.events(exp.key, ["experiment.*"]))}
    assert rows["experiment.paused"]["by"] == "bo" and rows["experiment.paused"]["summary"].endswith("by bo")
    assert rows["experiment.started"]["summary"].endswith("by ana")


def test_a_redirect_and_a_budget_change_name_who_made_them(opened) -> None:
    runner, other = opened("ana"), opened("bo")
    exp = _slow("redirected")
    handle = runner.start(exp)
    _wait(lambda: handle.progress.done >= 2, timeout=30)
    other.set_budget(exp.key, max_tokens=1_000_000)
    other.redirect(exp.key, changes={"answer.temperature": [0.0, 0.1]})
    _wait(lambda: runner.events(exp.key, ["experiment.redirected"]), timeout=10)
    handle.wait(60)
    assert _who(runner, exp.key, "budget.") == [("budget.changed", "bo")]
    assert ("experiment.redirected", "bo") in _who(runner, exp.key)
    # With no live sweep, the redirect is recorded by the process that made it, with the same name.
    opened("cy").redirect(exp.key, changes={"answer.temperature": [0.2]})
    assert _who(runner, exp.key)[-1] == ("experiment.redirected", "cy")


def test_decisions_ratings_and_notes_default_to_the_workbench_actor(opened, make_fake_exp) -> None:
    wb = opened("ana")
    exp = make_fake_exp()
    wb.run(exp)
    board = wb.leaderboard(exp.key, as_frame=False)
    wb.approve(exp.key, board[0]["config_id"])
    wb.reject(exp.key, board[1]["config_id"], by="bo")  # a name given to the call wins
    run = wb.runs(exp.key)[0]["id"]
    wb.rate(run, stars=4)
    note = wb.add_note("tests", "kept the terse persona")
    assert [n["by"] for n in wb.notes("tests") if n["id"] == note["id"]] == ["ana"]
    decided = {c["id"]: c["decided_by"] for c in wb.store.configurations(wb.experiment(exp.key)["id"]) if c["decided_by"]}
    assert decided == {wb.config_id(exp.key, board[0]["config_id"]): "ana", wb.config_id(exp.key, board[1]["config_id"]): "bo"}
    assert _who(wb, exp.key, "configuration.") == [("configuration.approved", "ana"), ("configuration.rejected", "bo")]
    assert {by for _, by in _who(wb, exp.key, "run.rated")} == {"ana"}
    assert _who(wb, exp.key, "experiment.started") == [("experiment.started", "ana")]
    wb.request_human(exp.key, "pick between the top two")
    assert _who(wb, exp.key, "human_needed") == [("human_needed", "ana")]


def test_a_notebooks_rating_widgets_rate_as_its_workbenchs_actor(opened, make_fake_exp) -> None:
    wb = opened("ana")
    exp = make_fake_exp()
    wb.run(exp)
    queue, matrix, single = (RatingQueue(wb, exp.key, readonly=False), MatrixView(wb, exp.key, readonly=False),
                             Rating(wb, exp.key, readonly=False))
    assert (queue.rater, matrix.rater, single.by) == ("ana", "ana", "ana")
    assert RatingQueue(wb, exp.key, readonly=False, rater="bo").rater == "bo"  # a name given to the widget wins


def test_without_a_name_the_environment_then_the_os_user_acts(opened, make_fake_exp,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMPTLOOPER_USER", raising=False)
    exp = make_fake_exp()
    opened().run(exp)
    monkeypatch.setenv("PROMPTLOOPER_USER", "service-account")
    wb = opened()
    wb.approve(exp.key, wb.leaderboard(exp.key, as_frame=False)[0]["config_id"])
    assert _who(wb, exp.key, "experiment.started") == [("experiment.started", getpass.getuser())]
    assert _who(wb, exp.key, "configuration.") == [("configuration.approved", "service-account")]


def test_the_cli_takes_as_and_shows_who_in_the_event_log(opened, location: str, make_fake_exp,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    exp = make_fake_exp()
    wb = opened("ana")
    wb.run(exp)
    config = wb.leaderboard(exp.key, as_frame=False)[0]["config_id"]
    assert main(["--db", location, "approve", exp.key, config[:12], "--as", "dee"]) == 0
    assert "by dee" in capsys.readouterr().out
    assert main(["--db", location, "events", exp.key]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("experiment.started" in line and "by ana" in line for line in lines)
    assert any("configuration.approved" in line and "by dee" in line for line in lines)
    assert main(["--db", location, "status", exp.key]) == 0
    assert json.loads(capsys.readouterr().out)["started_by"] == "ana"


def test_an_mcp_client_acts_as_the_servers_name_never_the_os_user(opened, location: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMPTLOOPER_USER", raising=False)
    for name, expected in ((None, "agent"), ("claude-ops", "claude-ops")):
        wb = opened(name) if name else pl.Workbench(location)
        exp = _slow(f"mcp-{expected}")
        runner = opened("ana")
        handle = runner.start(exp)
        _wait(lambda h=handle: h.progress.done >= 2, timeout=30)

        async def go(w: pl.Workbench = wb, key: str = exp.key) -> None:
            async with Client(build_server(w)) as c:
                res = await c.call_tool("pause_sweep", {"experiment": key})
                assert not res.is_error, res.content[0].text

        anyio.run(go)
        _wait(lambda h=handle: h.status == "paused", timeout=10)
        runner.stop(exp.key)
        handle.wait(60)
        assert ("experiment.paused", expected) in _who(runner, exp.key)
        if not name:
            wb.close()


def test_a_request_queued_by_an_older_version_still_steers(opened) -> None:
    runner = opened("ana")
    exp = _slow("old-client")
    handle = runner.start(exp)
    _wait(lambda: handle.progress.done >= 2, timeout=30)
    sweep = runner.store.latest_sweep(runner.experiment(exp.key)["id"])
    runner.store.add_steering(sweep["id"], "pause:lunch")  # the plain 'verb:reason' form, no one named
    _wait(lambda: handle.status == "paused", timeout=10)
    runner.store.add_steering(sweep["id"], 'stop:{"verb": "resume", "by": "mallory"}')  # a reason that looks like JSON
    assert handle.wait(60).status == "stopped"
    paused = runner.events(exp.key, ["experiment.paused"])[0]["payload"]
    assert paused["reason"] == "lunch" and "by" not in paused
    stopped = runner.events(exp.key, ["experiment.stopped"])[0]["payload"]
    assert stopped["reason"] == '{"verb": "resume", "by": "mallory"}' and "by" not in stopped
