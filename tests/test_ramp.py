"""The first burst of calls leaves a little apart on long sweeps (engine/ramp.py), and the
server-slot fit still finds a queueing server's slots through it."""

from __future__ import annotations

import time
from typing import Any

from helpers import fake_experiment

from promptlooper.engine.limits import AdaptiveLimit
from promptlooper.engine.ramp import MAX_RAMP, SPACING, Ramp
from promptlooper.engine.sweep import RAMP_ROUNDS
from promptlooper.testing import FakeModel, FakeServer


def test_a_burst_is_spaced_and_slow_arrivals_are_not_held():
    ramp = Ramp(4, spacing=0.01)
    waits = [ramp.delay() for _ in range(3)]  # three calls in one instant
    assert waits[0] == 0 and 0.009 < waits[1] <= 0.01 and 0.019 < waits[2] <= 0.02
    time.sleep(0.05)  # the next call comes long after the others left
    assert ramp.delay() == 0 and ramp.left == 0


def test_a_huge_concurrency_is_spaced_closer_not_longer():
    assert Ramp(10_000).spacing * 10_000 <= MAX_RAMP + 1e-9
    assert Ramp(8).spacing == SPACING


def test_the_limit_drops_its_ramp_after_the_burst():
    limit = AdaptiveLimit(8)
    limit.ramp_up(3)
    assert [limit.ramp_delay() > 0 for _ in range(3)] == [False, True, True]
    assert limit.ramp is None and limit.ramp_delay() == 0


def test_a_long_sweep_spaces_its_first_burst_and_a_short_one_does_not(wb):
    concurrency = 16
    times: list[float] = []

    def reply(body: dict[str, Any]) -> str:
        times.append(time.monotonic())
        return "paris"

    model = FakeModel(latency=0.05, reply=reply)
    temps = [i / 1000 for i in range(RAMP_ROUNDS * concurrency // 3 + 1)]  # x 3 samples: just over RAMP_ROUNDS rounds
    long = fake_experiment(model.base_url, name="long", space={"answer.temperature": temps}, concurrency=concurrency)
    handle = wb.start(long)
    assert handle.wait(60).completed == len(temps) * 3
    assert handle.sweep.calls.ramp_calls == concurrency
    first = sorted(times)[:concurrency]
    # 16 calls 1.5 ms apart: the burst spans 22.5 ms (at least, on a busy machine) instead of ~0.
    assert first[-1] - first[0] >= 0.8 * (concurrency - 1) * SPACING

    short = fake_experiment(model.base_url, name="short", space={"answer.temperature": temps[:4]}, concurrency=concurrency)
    handle = wb.start(short)
    assert handle.wait(60).done == 12
    assert handle.sweep.calls.ramp_calls == 0  # 12 runs: the ramp would only delay them


def test_slots_of_a_queueing_server_are_found_through_the_ramp(wb):
    # 4 slots of 50 ms behind a concurrency of 16: the fitted latencies rise 12.5 ms per call in
    # flight, less the ramp's 1.5 ms. Without adding that back the fit said 5 or 6 slots.
    concurrency = 16
    with FakeServer(latency=0.05, slots=4) as server:
        temps = [i / 1000 for i in range(RAMP_ROUNDS * concurrency // 3 + 1)]
        exp = fake_experiment(server.base_url, name="slots", space={"answer.temperature": temps},
                              concurrency=concurrency,
                              endpoints={"fake": {"base_url": server.base_url, "max_concurrency": concurrency}})
        handle = wb.start(exp)
        assert handle.wait(120).completed == len(temps) * 3
    assert handle.sweep.calls.ramp_calls == concurrency
    assert 3 <= handle.sweep.calls.limits["fake"].limit <= 5  # the fit is noisy on a busy machine


def test_the_slot_fit_adds_the_ramp_back():
    # The same server on paper: the n-th call of the burst left (n - 1) x 1.5 ms after the first
    # and finished when its slot's turn came, after ceil(n / 4) x 50 ms.
    limit = AdaptiveLimit(16)
    limit.ramp_up(16)
    spacing = limit._spacing_ms
    for n in range(1, 17):
        limit.observe(n, -(-n // 4) * 50.0 - (n - 1) * spacing)
    for _ in range(16):
        limit.observe(16, 200.0)  # each slot now has four calls queued behind it
    assert limit.calibrating and limit.limit == 1  # a queue: the next calls go alone
    for _ in range(2):
        limit.observe(1, 50.0)
    assert limit.limit == 4
