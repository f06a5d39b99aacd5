"""Steering a sweep that workers share: who asked, and redirects re-planned in the database (issue 18).

Workers are the real CLI (subprocesses, tests/test_workers.py's ``workers``) on a SQLite file and
on a fresh PostgreSQL database; the model is a loopback FakeServer with latency that counts every
request. The test process plays the notebook: it queues with ``wb.start(exp, workers=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import temperature_sweep

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
