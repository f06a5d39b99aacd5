"""A sweep's steering listener on PostgreSQL comes back after its connection is lost.

The sweep's poll of its steering queue is pushed to a minute here, so only a notification can
bring a pause in within the bounds: after the server ended the listener's session (as a restart
or an administrator does), a pause from another workbench must still reach the sweep through a
new listening connection, and a pause queued while no listener was connected must not wait for
the poll either.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from helpers import fake_experiment, wait

import promptlooper as pl
from promptlooper.engine import sweep as sweep_module
from promptlooper.store.postgres import notify
from promptlooper.testing import FakeModel

LISTENERS = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
             " AND query = 'LISTEN promptlooper_steering'")


@pytest.fixture
def sweeping(pg_url: str, monkeypatch: pytest.MonkeyPatch):
    """A sweep running in one workbench that polls its steering queue once a minute, and another
    workbench (a notebook elsewhere) to steer it from."""
    monkeypatch.setattr(sweep_module, "POLL_EVERY", 60.0)
    model = FakeModel(f"listener-{time.monotonic_ns()}", latency=0.05)  # 600 runs, 4 at a time: longer than the test
    exp = fake_experiment(model.base_url, name="listened", space={"answer.temperature": [i / 200 for i in range(200)]},
                          concurrency=4)
    wb, steerer = pl.Workbench(pg_url), pl.Workbench(pg_url)
    handle = wb.start(exp)
    wait(lambda: handle.progress.done >= 4, timeout=30)
    yield handle, steerer, exp
    if handle.progress.status in ("running", "paused"):
        steerer.stop(exp.key)
    handle.wait(60)
    wb.close()
    steerer.close()


def _reaches(handle, status: str) -> float:  # noqa: ANN001 - seconds until the sweep shows ``status``
    began = time.monotonic()
    wait(lambda: handle.progress.status == status, timeout=10, every=0.01)
    return time.monotonic() - began


def test_a_pause_reaches_the_sweep_through_the_listener_after_its_session_was_ended(sweeping, admin: psycopg.Connection) -> None:
    handle, steerer, exp = sweeping
    for _ in range(2):  # ended twice: the listener is made again each time
        [(old,)] = wait(lambda: admin.execute(LISTENERS).fetchall(), timeout=10)
        assert admin.execute("SELECT pg_terminate_backend(%s)", (old,)).fetchone()[0]
        wait(lambda old=old: [pid for (pid,) in admin.execute(LISTENERS) if pid != old], timeout=10)  # listening again
    steerer.pause(exp.key)
    assert _reaches(handle, "paused") < 1.0
    steerer.resume(exp.key)
    assert _reaches(handle, "running") < 1.0


def test_a_pause_queued_while_the_listener_was_away_reaches_the_sweep_when_it_is_back(
        sweeping, admin: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    handle, steerer, exp = sweeping
    monkeypatch.setattr(notify, "RECONNECT_PAUSES", (0.5, 0.5))  # time to queue the pause while nobody listens
    [(old,)] = wait(lambda: admin.execute(LISTENERS).fetchall(), timeout=10)
    assert admin.execute("SELECT pg_terminate_backend(%s)", (old,)).fetchone()[0]
    steerer.pause(exp.key)  # its notification finds no listener of the sweep
    assert _reaches(handle, "paused") < 2.0  # the listener's pause, then its wake-up on reconnecting
