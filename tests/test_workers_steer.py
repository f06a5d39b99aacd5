"""Steering a sweep that workers share: who asked, and redirects re-planned in the database (issue 18).

Workers are the real CLI (subprocesses, tests/test_workers.py's ``workers``) on a SQLite file and
on a fresh PostgreSQL database; the model is a loopback FakeServer with latency that counts every
request. The test process plays the notebook: it queues with ``wb.start(exp, workers=True)``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from helpers import temperature_sweep, wait
from test_workers import chunks, workers

import promptlooper as pl
from promptlooper.store import open_store
from promptlooper.store.sweeps import read_steering_request
from promptlooper.testing import FakeServer


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        return str(tmp_path / "shared.db")
    return request.getfixturevalue("pg_url")


def steering_log(url: str, sweep_id: str) -> list[tuple[str, str, str]]:
    store = open_store(url)
    try:
        return [read_steering_request(r) for r in store.steering_log(sweep_id)]
    finally:
        store.close()


def runs(wb: pl.Workbench, key: str) -> list[dict[str, Any]]:
    return wb.store.runs(wb.experiment(key)["id"])


def test_a_pause_from_a_workers_handle_names_who_asked(url: str) -> None:
    with FakeServer() as srv:
        wb = pl.Workbench(url, actor="ana")
        handle = wb.start(temperature_sweep(f"http://127.0.0.1:{srv.port}/v1", "asked", 4), workers=True)
        handle.pause()
        handle.resume()
        handle.stop()
        assert steering_log(url, handle.sweep_id) == [("pause", "", "ana"), ("resume", "", "ana"), ("stop", "", "ana")]
        assert handle.wait(5).status == "stopped"
        wb.close()


def test_a_redirect_replans_the_remaining_work_and_every_worker_takes_the_new_chunks(url: str) -> None:
    latency, concurrency = 0.1, 2
    with FakeServer(latency=latency) as srv:
        exp = temperature_sweep(f"http://127.0.0.1:{srv.port}/v1", "redirected", 200, concurrency=concurrency)  # 600 runs
        wb = pl.Workbench(url, actor="ana")
        kept = [round(i * 0.01, 2) for i in range(0, 200, 20)]  # 10 of the old temperatures (some done by then)
        added = [0.015, 0.025, 0.035, 0.045, 0.055]  # 5 new ones
        with workers(url, 3):
            handle = wb.start(exp, workers=True, chunk_runs=6)  # 2 configurations a chunk
            wait(lambda: len({c["owner"] for c in chunks(url, handle.sweep_id) if c["state"] == "leased"}) == 3, 20)
            wait(lambda: handle.progress.done >= 30, 20)
            before = {r["id"] for r in runs(wb, exp.key)}
            wb.redirect(exp.key, {"answer.temperature": kept + added})
            redirected_at = time.monotonic()
            # Every worker is on the new plan within a second: the old chunks stopped at their next call.
            wait(lambda: len({c["owner"] for c in chunks(url, handle.sweep_id) if c["plan"] == 1 and c["state"] != "queued"}) == 3, 5)
            assert time.monotonic() - redirected_at < 1.0
            progress = handle.wait(60)
        assert progress.status == "completed"
        temperatures = {round(t, 3) for t in kept + added}
        by_config = {c["id"]: c["varied"]["answer.temperature"] for c in wb.store.configurations(wb.experiment(exp.key)["id"])}
        recorded = runs(wb, exp.key)
        # The new plan, whole: every configuration of it with its 3 samples, made once.
        new_plan = [r for r in recorded if round(by_config[r["config_id"]], 3) in temperatures]
        assert len(new_plan) == 3 * len(temperatures) and len({r["id"] for r in new_plan}) == len(new_plan)
        # Dropped configurations: what was done before, and at most the calls out when the workers heard it.
        dropped_after = [r for r in recorded if round(by_config[r["config_id"]], 3) not in temperatures and r["id"] not in before]
        in_flight = 3 * concurrency  # each worker's calls out for the sweep
        heard = (0.25 + 0.25) / latency  # calls each slot starts before a worker hears it: a commit's lag and a poll
        assert len(dropped_after) <= in_flight * (1 + heard), len(dropped_after)
        assert srv.stats()["requests"] == len(recorded)  # no call made twice (a run left to the new plan had none out)
        event = wb.events(exp.key, types=["experiment.redirected"])[-1]["payload"]
        assert event["by"] == "ana" and event["configurations"] == len(temperatures) and event["plan"] == 1
        assert event["remaining_runs"] <= 3 * len(temperatures) and event["total"] >= len(before) + event["remaining_runs"]
        assert progress.done == progress.total == len(recorded)
        states = {(c["plan"], c["state"]) for c in chunks(url, handle.sweep_id)}
        assert states <= {(0, "done"), (0, "replaced"), (1, "done")} and (1, "done") in states
        wb.close()


def test_a_paused_sweep_redirected_resumes_on_the_new_plan_only(url: str) -> None:
    with FakeServer(latency=0.1) as srv:
        exp = temperature_sweep(f"http://127.0.0.1:{srv.port}/v1", "paused-redirect", 60, concurrency=2)  # 180 runs
        wb = pl.Workbench(url)
        with workers(url, 2):
            handle = wb.start(exp, workers=True, chunk_runs=6)
            wait(lambda: len({c["owner"] for c in chunks(url, handle.sweep_id) if c["state"] == "leased"}) == 2, 20)
            handle.pause()
            wait(lambda: handle.status == "paused", 5)
            time.sleep(0.6)  # every worker has heard it (a poll), and the calls out then have landed
            # The paused chunks end for the new plan without a call (none may go out while paused).
            seen = srv.stats()["requests"]
            wb.redirect(exp.key, {"answer.temperature": [0.5, 0.6]})
            # (Not timed: a worker may still be compiling the experiment for the chunk it claimed.)
            wait(lambda: all(c["state"] != "leased" for c in chunks(url, handle.sweep_id) if c["plan"] == 0), 20)
            assert srv.stats()["requests"] == seen
            assert not any(c["state"] == "leased" for c in chunks(url, handle.sweep_id))  # paused: nothing claimed
            handle.resume()
            progress = handle.wait(30)
        assert progress.status == "completed" and progress.done == progress.total == seen + 6
        assert srv.stats()["requests"] == seen + 6
        wb.close()
