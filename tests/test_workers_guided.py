"""A guided search shared by workers (issue 18), Optuna's way: the database is the only state, and
a worker with nothing to claim asks the sampler, rebuilt from the runs in the database, for the
next configurations (or promotes one to its next rung of samples), and queues them as chunks.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from test_workers import chunks, workers

import promptlooper as pl
from promptlooper.errors import SweepConflictError
from promptlooper.testing import FakeServer

TEMPS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
PERSONAS = ["p1", "p2", "p3", "p4"]
SCORER = """\
import re


def landscape_value(output):
    m = re.search(r"value=([0-9.]+)", output)
    return float(m.group(1)) if m else 0.0
"""


def reply(body: dict[str, Any]) -> str:
    """Known landscape (tests/test_guided.py's): persona p3 at temperature 0.6 is best."""
    t = float(body.get("temperature", 0.0))
    persona = body["messages"][0]["content"]
    q = body["messages"][-1]["content"]
    v = {"p1": 0.4, "p2": 0.5, "p3": 0.6, "p4": 0.45}[persona] + 0.3 * (1 - abs(t - 0.6))
    v += (sum(map(ord, q + persona)) % 7 - 3) * 0.005
    return f"value={max(0.0, min(1.0, v)):.4f}"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        return str(tmp_path / "shared.db")
    return request.getfixturevalue("pg_url")


def test_a_guided_search_is_shared_by_workers_and_finds_the_best(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "landscape_scorer.py").write_text(SCORER)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    sys.path.insert(0, str(tmp_path))
    try:
        with FakeServer(reply=reply, latency=0.3) as srv:  # chunks last: both workers take some
            exp = pl.Experiment.model_validate(dict(
                project="tests", name="guided-workers", samples=[{"q": f"question {i}"} for i in range(9)],
                stages=[{"name": "answer", "model": "fake/fake-small", "system": "{{ persona }}", "user": "{{ q }}"}],
                space={"persona": PERSONAS, "answer.temperature": TEMPS},
                scorers=[{"name": "python", "function": "landscape_scorer:landscape_value"}],
                endpoints={"fake": {"base_url": f"http://127.0.0.1:{srv.port}/v1"}}, strategy="guided", seed=3, concurrency=8,
                guided={"max_configs": 12, "batch": 3, "startup": 4, "min_configs": 8, "patience": 1}))
            wb = pl.Workbench(url)
            with workers(url, 2):
                handle = wb.start(exp, workers=True)
                progress = handle.wait(120)
            calls = srv.stats()["requests"]
    finally:
        sys.path.remove(str(tmp_path))
    assert progress.status == "completed"
    board = wb.leaderboard(exp.key, as_frame=False)
    assert len(board) <= 12 and calls < 0.75 * len(PERSONAS) * len(TEMPS) * 9  # a search, not the grid
    assert (board[0]["persona"], board[0]["answer.temperature"]) == ("p3", 0.6)
    assert calls == sum(r["n"] for r in board)  # every run one call, none made twice
    done = chunks(url, handle.sweep_id)
    assert {c["owner"] for c in done} == {"w0", "w1"} and {c["state"] for c in done} == {"done"}
    [event] = wb.events(exp.key, types=["guided.finished"])
    assert event["payload"]["best_config_id"] == board[0]["full_config_id"]
    assert progress.done == progress.total == calls  # the total became what the search needed
    with pytest.raises(SweepConflictError):  # its configurations come from the space it was queued with
        wb.start(exp, workers=True).sweep_id and wb.redirect(exp.key, {"persona": ["p1"]})
    wb.close()


