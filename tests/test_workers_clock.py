"""Leases on the database's clock: a worker whose own clock is wrong neither steals a live lease
nor keeps a dead one (issue 18: workers on several machines, whose clocks drift).

The skewed worker is the real CLI in a child process whose ``time.time`` runs ``SKEW`` seconds
off: a ``sitecustomize`` module on its PYTHONPATH shifts it before anything else is imported (the
process's idea of the time, as on a host whose clock is wrong; the database's clock is the truth).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import temperature_sweep, wait
from test_workers import ROOT, chunks

import promptlooper as pl
from promptlooper.store import open_store
from promptlooper.testing import FakeServer

SKEWED = """\
import os
import time

_real = time.time
_skew = float(os.environ["PROMPTLOOPER_TEST_CLOCK_SKEW"])
time.time = lambda: _real() + _skew
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        return str(tmp_path / "shared.db")
    return request.getfixturevalue("pg_url")


def skewed_worker(url: str, tmp_path: Path, skew: float, *args: str) -> subprocess.Popen[str]:
    site = tmp_path / "skewed"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SKEWED)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "PROMPTLOOPER_TEST_CLOCK_SKEW": str(skew)}
    return subprocess.Popen([sys.executable, "-m", "promptlooper.cli", "--db", url, "worker", "--name", "skewed", *args],
                            env=env, stderr=subprocess.PIPE, text=True)


def test_the_skew_is_real_in_the_child(tmp_path: Path) -> None:
    site = tmp_path / "skewed"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SKEWED)
    env = {**os.environ, "PYTHONPATH": str(site), "PROMPTLOOPER_TEST_CLOCK_SKEW": "3600"}
    out = subprocess.run([sys.executable, "-c", "import time; print(time.time())"], env=env, capture_output=True, text=True)
    assert float(out.stdout) - time.time() > 3500


def test_a_worker_whose_clock_runs_ahead_does_not_steal_a_live_lease(url: str, tmp_path: Path) -> None:
    with FakeServer() as srv:
        exp = temperature_sweep(f"http://127.0.0.1:{srv.port}/v1", "ahead", 4)  # 12 runs: 2 chunks of 6
        wb = pl.Workbench(url)
        handle = wb.start(exp, workers=True, chunk_runs=6)
        holder = open_store(url)
        live = holder.claim_chunk("live", 60.0)  # held for a minute, by the database's clock
        assert live is not None
        worker = skewed_worker(url, tmp_path, 120.0, "--once")  # to it, that minute ended a minute ago
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        by_index = {c["idx"]: c for c in chunks(url, handle.sweep_id)}
        assert (by_index[live.index]["owner"], by_index[live.index]["generation"], by_index[live.index]["state"]) == ("live", 1, "leased")
        assert [c["state"] for i, c in by_index.items() if i != live.index] == ["done"]  # it did the other chunk
        holder.close()
        handle.stop()
        handle.close()
        wb.close()


def test_a_dead_worker_whose_clock_runs_ahead_loses_its_lease_in_time(url: str, tmp_path: Path) -> None:
    with FakeServer(latency=5.0) as srv:  # its calls are out when it is killed
        exp = temperature_sweep(f"http://127.0.0.1:{srv.port}/v1", "dead-ahead", 2)  # one chunk
        wb = pl.Workbench(url)
        handle = wb.start(exp, workers=True)
        worker = skewed_worker(url, tmp_path, 120.0, "--lease", "1")
        try:
            wait(lambda: any(c["owner"] == "skewed" and c["state"] == "leased" for c in chunks(url, handle.sweep_id)), 30)
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
        other = open_store(url)
        # Its lease of 1 s runs out by the database's clock, not 2 minutes later by its own.
        claim = wait(lambda: other.claim_chunk("other", 30.0), 5, every=0.2)
        assert claim.generation == 2
        other.close()
        handle.close()
        wb.close()


def test_a_live_worker_whose_clock_runs_behind_keeps_its_lease(url: str, tmp_path: Path) -> None:
    with FakeServer(latency=3.0) as srv:  # its calls are out while another worker looks for work
        exp = temperature_sweep(f"http://127.0.0.1:{srv.port}/v1", "behind", 2)  # one chunk
        wb = pl.Workbench(url)
        handle = wb.start(exp, workers=True)
        worker = skewed_worker(url, tmp_path, -120.0, "--lease", "10")  # to others, its leases would have run out
        other = open_store(url)
        try:
            wait(lambda: any(c["owner"] == "skewed" and c["state"] == "leased" for c in chunks(url, handle.sweep_id)), 30)
            assert other.claim_chunk("other", 30.0) is None
            assert handle.wait(30).status == "completed"
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(20)
        assert [(c["owner"], c["generation"]) for c in chunks(url, handle.sweep_id)] == [("skewed", 1)]
        other.close()
        wb.close()
