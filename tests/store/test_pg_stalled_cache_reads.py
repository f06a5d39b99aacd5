"""A stalled PostgreSQL server does not stall a sweep's event loop through its cache look-ups.

Every call a sweep makes is first looked up in the response cache. On PostgreSQL that is a round
trip to the server; made on the event loop, a server that stops answering (a long lock, a
congested link) froze the loop with it: no reply already on its way was taken in, no progress
counted, no steering applied. Here the link to the server is frozen (tests/pg_proxy.py) while
calls are in flight: their runs must still finish and be counted, and the sweep must complete,
every run once, when the link flows again. (The sweep looks ahead one run at a time here, so that
a look-up follows every finished run.)
"""

from __future__ import annotations

import time

import pytest
from helpers import fake_experiment, wait
from pg_proxy import CuttingProxy

import promptlooper as pl
from promptlooper.engine import sweep as sweep_module
from promptlooper.testing import FakeModel


@pytest.fixture
def proxy(pg_url: str):
    relay = CuttingProxy(pg_url)
    yield relay
    relay.close()


def test_runs_in_flight_finish_while_the_database_link_is_frozen(proxy: CuttingProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweep_module, "LOOKAHEAD", 1)
    model = FakeModel(f"stalled-{time.monotonic_ns()}", latency=0.3)  # 8 calls in flight, each 0.3 s
    exp = fake_experiment(model.base_url, name="stalled", space={"answer.temperature": [i / 40 for i in range(40)]},
                          concurrency=8)
    wb = pl.Workbench(proxy.url)
    try:
        handle = wb.start(exp)
        wait(lambda: handle.progress.done >= 16, timeout=30)
        proxy.freeze()
        try:
            frozen_at = handle.progress.done
            # The calls out when the link froze come back within their 0.3 s: the loop takes them in.
            wait(lambda: handle.progress.done >= frozen_at + 4, timeout=3, every=0.02)
        finally:
            proxy.thaw()
        progress = handle.wait(60)
        assert (progress.status, progress.done, progress.failed) == ("completed", 120, 0)
        runs = wb.runs(exp.key, limit=1000)
        assert len(runs) == len({r["id"] for r in runs}) == 120
    finally:
        wb.close()

