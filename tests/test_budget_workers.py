"""A budget holds across `promptlooper worker` processes: each call's cost reserved in the store first.

Three (or two) workers run as the real CLI against one store; the model is a loopback FakeServer
with latency that counts what it served. The test plays the notebook: it queues the sweep with
``wb.start(exp, workers=True)``. What is checked is the guarantee the README states: with
estimates that bound the real cost (``max_tokens`` set), the sweep's spend never passes its
budget, however many workers; the spend past it is otherwise at most what the calls granted cost
over their estimates; and a worker killed holding reservations does not keep that money from the
others for longer than its lease.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from helpers import temperature_sweep, wait
from test_workers import workers

import promptlooper as pl
from promptlooper.hashing import canonical_json
from promptlooper.store import open_store
from promptlooper.store.budgets import NANOS
from promptlooper.testing import FakeServer

pytestmark = pytest.mark.both_backends

PRICE = (100.0, 100.0)  # USD per million tokens in and out: 1e-4 USD a token


def _priced(base_url: str, name: str, n_temps: int, **over: Any) -> pl.Experiment:
    exp = temperature_sweep(base_url, name, n_temps, **over)
    data = exp.model_dump(mode="json", exclude_none=True)
    data["endpoints"]["fake"]["prices"] = {"fake-small": list(PRICE)}
    return pl.Experiment.model_validate(data)


def _read(db: str, sweep_id: str) -> tuple[dict[str, Any], Any, list[dict[str, Any]]]:
    store = open_store(db)
    try:
        return store.sweep(sweep_id), store.budget_state(sweep_id), store.budget_holds(sweep_id)
    finally:
        store.close()


def _served_cost(srv: FakeServer) -> float:
    return srv.stats()["tokens_served"] * PRICE[0] / 1e6


def _quiet(srv: FakeServer, seconds: float = 0.5) -> int:
    """Wait until the server has seen no request for ``seconds``; the number it has seen."""
    seen = srv.stats()["requests"]
    while True:
        time.sleep(seconds)
        now = srv.stats()["requests"]
        if now == seen:
            return int(now)
        seen = now


def test_three_workers_stop_at_a_cost_budget_and_never_pass_it(db: str) -> None:
    budget = 0.03  # USD: ~27 calls of ~11 tokens; each reserved at its bound (~63 tokens)
    with FakeServer(latency=0.1) as srv:
        exp = _priced(f"http://127.0.0.1:{srv.port}/v1", "costly", 60, concurrency=2, budget={"max_cost": budget})
        wb = pl.Workbench(db)
        with workers(db, 3):
            handle = wb.start(exp, workers=True, chunk_runs=30)  # 180 runs: 6 chunks, every worker busy
            wait(lambda: handle.status == "paused", 60)
            requests = _quiet(srv)
            row, state, holds = _read(db, handle.sweep_id)
            assert row["status"] == "paused" and row["stop_reason"] == "budget"  # for every worker: none sends more
            # Every reply was recorded (the sweep's row) and settled (the budget's), and together
            # they cost no more than the budget: each was reserved at a bound of its cost first.
            assert row["cost"] == pytest.approx(_served_cost(srv)) and row["cost"] <= budget
            assert state.spent_nanos <= budget * NANOS and state.spent_tokens == srv.stats()["tokens_served"]
            assert state.calls == requests and state.held_nanos == 0
            # ... and up to it: refused only when even the settled spend left no room for a call.
            assert state.spent_nanos > budget * NANOS - 80 * PRICE[0] * 1000, state
            events = wb.events(exp.key, ["budget.exhausted"])
            assert events and handle.progress.done < 180
            # Raised and resumed, the workers go on (the pause was the budget's, not theirs).
            wb.set_budget(exp.key, max_cost=budget + 0.01)
            handle.resume()
            wait(lambda: srv.stats()["requests"] > requests, 20)
            wait(lambda: handle.status == "paused", 60)
            _quiet(srv)
            row, state, holds = _read(db, handle.sweep_id)
            assert row["cost"] <= budget + 0.01 and state.spent_nanos <= (budget + 0.01) * NANOS
            handle.stop()
            handle.wait(30)
        assert {h["tokens"] for h in _read(db, handle.sweep_id)[2]} <= {0}  # nothing left held
        wb.close()


def test_a_worker_killed_holding_reservations_frees_them_with_its_lease(db: str) -> None:
    budget = 0.04
    with FakeServer(latency=0.2) as srv:
        exp = _priced(f"http://127.0.0.1:{srv.port}/v1", "killed", 60, concurrency=3, budget={"max_cost": budget})
        wb = pl.Workbench(db)
        with workers(db, 3, "--lease", "2") as procs:
            handle = wb.start(exp, workers=True, chunk_runs=30)
            by_pid = {f":{p.pid}:": p for p in procs}  # a hold's owner is host:pid:tag

            def holds_by_pid() -> dict[str, int]:
                return {pid: h["tokens"] for h in _read(db, handle.sweep_id)[2] for pid in by_pid if pid in h["owner"]}

            victim = wait(lambda: handle.progress.done >= 6 and [p for p, t in holds_by_pid().items() if t > 0], 30)[0]
            by_pid[victim].kill()  # SIGKILL while its calls are out, reserved
            killed_at = time.monotonic()
            by_pid[victim].wait()
            assert victim in holds_by_pid()  # nobody freed its hold: its process is gone without a word
            wait(lambda: victim not in holds_by_pid(), 15)
            assert time.monotonic() - killed_at < 2 + 2.5  # freed within its lease (and a reap's tick)
            wait(lambda: handle.status == "paused", 60)
            _quiet(srv)
            row, state, holds = _read(db, handle.sweep_id)
        assert row["stop_reason"] == "budget"
        # The others spent what the dead one held: up to the budget, never past it. (What the dead
        # one's calls cost, if the server answered them, it never recorded: at most its calls out.)
        assert budget * NANOS - 80 * PRICE[0] * 1000 < state.spent_nanos <= budget * NANOS
        assert row["cost"] <= budget
        assert _served_cost(srv) <= budget + 3 * 80 * PRICE[0] / 1e6
        assert not any(victim in h["owner"] for h in holds)
        assert _read(db, handle.sweep_id)[1].held_nanos == sum(h["nanos"] for h in holds)
        wb.close()


def test_replies_costlier_than_their_estimate_are_counted_and_stop_the_sweep_soon_after(db: str) -> None:
    # A server that ignores max_tokens: every reply (200 words) costs more than its reservation.
    long_reply = " ".join(["word"] * 200)
    with FakeServer(latency=0.15, reply=lambda body: long_reply) as srv:
        exp = temperature_sweep(f"http://127.0.0.1:{srv.port}/v1", "long", 40, concurrency=2,
                                budget={"max_tokens": 2000})
        wb = pl.Workbench(db)
        with workers(db, 2):
            handle = wb.start(exp, workers=True, chunk_runs=30)
            wait(lambda: handle.status == "paused", 60)
            _quiet(srv)
            row, state, holds = _read(db, handle.sweep_id)
        served = srv.stats()
        per_call = served["tokens_served"] / served["requests"]
        # The bound reserved for each: the request's messages as JSON, in bytes, + max_tokens (8).
        estimate = len(canonical_json([{"role": "user", "content": "Q: capital of France"}])) + 8
        # The real cost is what counts, settled as each reply lands: nothing served goes unrecorded.
        assert state.spent_tokens == served["tokens_served"] == row["tokens_in"] + row["tokens_out"]
        # Past the budget by at most what the calls granted and out at once (2 workers × 2) cost
        # over their reservations; and stopped as soon as the settled spend left no room.
        assert 2000 - estimate < state.spent_tokens <= 2000 + 4 * (per_call - estimate + 5)
        assert row["stop_reason"] == "budget"
        wb.close()
