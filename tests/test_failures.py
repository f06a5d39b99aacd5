"""Failures are loud, and a dead endpoint stops costing.

Against the loopback FakeServer with fault injection (the in-process FakeModel where only the
engine's handling is tested: the breaker, Retry-After), the CLI in real subprocesses, and the
sweep's real writer process (killed with SIGKILL).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest
from helpers import fake_experiment, runs_done, temperature_sweep, wait, write_experiment

import promptlooper as pl
from promptlooper import ci
from promptlooper.testing import FakeModel, FakeServer, Faults

pytestmark = pytest.mark.both_backends  # each test on a SQLite file and on PostgreSQL (tests/conftest.py)

CLI = [sys.executable, "-m", "promptlooper.cli"]


def cli(db: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "--db", db, *args], capture_output=True, text=True, timeout=timeout)


def endpoint(server: FakeServer | FakeModel, **over: object) -> dict[str, object]:
    return {"fake": {"base_url": server.base_url, "max_retries": 8, "max_concurrency": 16, **over}}


def hundred_runs(server: FakeServer | FakeModel, name: str, **over: object) -> pl.Experiment:
    """4 samples x 25 temperatures = 100 runs, 8 calls at a time."""
    samples = [{"question": f"q{i}", "reference": "alpha"} for i in range(4)]
    return fake_experiment(server.base_url, name=name, samples=samples,
                           space={"answer.temperature": [round(i * 0.01, 2) for i in range(25)]}, **over)


def event_types(wb: pl.Workbench, key: str) -> list[str]:
    return [e["type"] for e in wb.events(key)]


# ---------------------------------------------------------------------- exit status, reasons, CI
def test_failed_runs_exit_nonzero_with_reasons_grouped_and_a_junit_report(db, tmp_path, server):
    server.set_faults(Faults(server_error=1.0))
    exp = fake_experiment(server.base_url, name="failing", endpoints=endpoint(server, max_retries=1, breaker_failures=1000))
    report = tmp_path / "junit.xml"
    res = cli(db, "run", str(write_experiment(tmp_path / "e.yaml", exp)), "--quiet", "--junit", str(report))
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert res.stdout.startswith("completed: 12/12 runs, 12 failed")
    # One line for the one reason (the attempt count left out), with its count.
    reasons = [line.strip() for line in res.stderr.splitlines() if " × " in line]
    assert "12 run(s) failed:" in res.stderr
    assert reasons == ["12 × HTTP 500: The server had an error while processing your request (fake)."]
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "tests/failing"
    assert suite.get("tests") == "4" and suite.get("failures") == "4"
    failure = suite.findall("testcase")[0].find("failure")
    assert failure is not None and failure.get("message", "").startswith("3 run(s) failed: HTTP 500")

    server.set_faults(Faults())
    again = cli(db, "rerun", "tests/failing", "--quiet", "--junit", str(report))
    assert again.returncode == 0, again.stderr  # the failed runs were run again and completed
    assert again.stdout.startswith("completed: 12/12 runs, 0 failed")
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0" and suite.find("testcase/failure") is None


def test_fail_under_holds_the_best_or_the_approved_configuration(wb, db, tmp_path, server):
    path = write_experiment(tmp_path / "e.yaml", fake_experiment(server.base_url, name="gate"))
    report = tmp_path / "junit.xml"
    res = cli(db, "run", str(path), "--quiet", "--fail-under", "0", "--junit", str(report))
    assert res.returncode == 0 and "✓ best configuration" in res.stderr
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert suite.get("tests") == "5" and suite.get("failures") == "0"
    names = [c.get("name") or "" for c in cases]
    assert sum("answer.temperature=" in n and "persona=" in n for n in names) == 4 and names[-1] == "fail-under"
    assert "score: " in (cases[0].findtext("system-out") or "")

    board = wb.leaderboard("tests/gate")
    best, worst = board.iloc[0], board.iloc[-1]
    assert best["score"] > worst["score"]
    middle = (best["score"] + worst["score"]) / 2
    assert ci.check_fail_under(board, middle).ok and not ci.check_fail_under(board, 1.01).ok
    wb.approve("tests/gate", worst["full_config_id"])
    res = cli(db, "rerun", "tests/gate", "--quiet", "--fail-under", f"{middle:.6f}", "--junit", str(report))
    assert res.returncode == 1 and "✗ approved configuration" in res.stderr
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    assert suite.findall("testcase")[-1].find("failure") is not None


# ---------------------------------------------------------------------- circuit breaker
def test_always_failing_endpoint_is_cut_off_and_the_sweep_pauses(wb, fake):
    fake.set_faults(Faults(server_error=1.0))
    exp = hundred_runs(fake, "dead")
    handle = wb.start(exp)
    try:
        wait(lambda: handle.status == "paused", timeout=20)
        time.sleep(0.5)  # anything still queued would go out now
        requests = fake.stats()["requests"]
        print(f"\nrequests reaching an always-failing endpoint for 100 runs: {requests}")
        assert requests <= 30
        assert "endpoint 'fake' unhealthy" in (handle.progress.stop_reason or "")
        wait(lambda: "endpoint.unhealthy" in event_types(wb, exp.key))
        unhealthy = next(e for e in wb.events(exp.key) if e["type"] == "endpoint.unhealthy")
        assert unhealthy["payload"]["endpoint"] == "fake" and "HTTP 500" in unhealthy["payload"]["reason"]
    finally:
        handle.stop()
    progress = handle.wait(30)
    assert progress.status == "stopped" and progress.failed == 0  # nothing recorded as failed: the next sweep runs it
    assert fake.stats()["requests"] <= 30
    fake.set_faults(Faults())
    again = wb.run(exp)
    assert again.status == "completed" and again.completed == 100


def test_cli_stops_on_a_dead_endpoint_and_says_why(db, tmp_path, server):
    server.set_faults(Faults(server_error=1.0))
    path = write_experiment(tmp_path / "e.yaml", hundred_runs(server, "deadcli"))
    res = cli(db, "run", str(path), "--quiet", "--unhealthy-timeout", "0", timeout=60)
    assert res.returncode == 1
    assert res.stdout.startswith("stopped: 0/100 runs")
    assert "sweep stopped: endpoint 'fake' unhealthy after 5 consecutive failures: HTTP 500" in res.stderr
    assert server.stats()["requests"] <= 30


def test_a_half_open_probe_closes_the_breaker_and_resumes(wb, fake):
    fake.set_faults(Faults(server_error=1.0))
    exp = fake_experiment(fake.base_url, name="flaky", endpoints=endpoint(fake, breaker_cooldown=0.3))
    handle = wb.start(exp)
    wait(lambda: handle.status == "paused", timeout=20)
    wait(lambda: "endpoint.probe_failed" in event_types(wb, exp.key), timeout=10)  # probes go on while it is down
    fake.set_faults(Faults())
    progress = handle.wait(30)
    assert progress.status == "completed" and progress.completed == 12 and progress.failed == 0
    types = event_types(wb, exp.key)
    assert types.index("endpoint.unhealthy") < types.index("endpoint.healthy") < types.index("experiment.completed")


def test_resume_closes_the_breaker(wb, fake):
    fake.set_faults(Faults(server_error=1.0))
    exp = fake_experiment(fake.base_url, name="resumed")  # default cooldown (30 s): no probe in this test
    handle = wb.start(exp)
    wait(lambda: handle.status == "paused", timeout=20)
    fake.set_faults(Faults())
    wb.resume(exp.key)
    progress = handle.wait(30)
    assert progress.status == "completed" and progress.completed == 12 and progress.failed == 0


# ---------------------------------------------------------------------- backoff
def test_concurrency_backs_off_on_server_errors_and_timeouts(wb, server):
    server.set_faults(Faults(server_error=0.3))
    exp = fake_experiment(server.base_url, name="errs", endpoints=endpoint(server, breaker_failures=1000))
    handle = wb.start(exp)
    handle.wait(30)
    assert handle.sweep.calls.limits["fake"].limit < 16

    with FakeServer(faults=Faults(slow=1.0, slow_seconds=1.0)) as slow:  # a server of its own: nothing cached
        exp = fake_experiment(slow.base_url, name="slow", endpoints=endpoint(slow, timeout=0.2, max_retries=1, breaker_failures=1000))
        handle = wb.start(exp)
        progress = handle.wait(30)
    assert progress.failure_reasons == {"timed out after 0.2s": 12}
    assert handle.sweep.calls.limits["fake"].limit < 16


def test_retry_after_is_capped(wb, fake):
    fake.set_faults(Faults(rate_limit=1.0, retry_after=600))
    exp = fake_experiment(fake.base_url, name="capped", endpoints=endpoint(fake, max_retries=1, retry_after_max=0.2))
    handle = wb.start(exp)
    try:
        progress = handle.wait(20)  # 600 s a retry, uncapped
    finally:
        handle.stop()
    assert progress.status == "completed" and progress.failed == 12
    assert progress.failure_reasons == {"HTTP 429: Rate limit reached (fake).": 12}


@pytest.mark.parametrize("first", ["stop", "pause"])
def test_pause_and_stop_interrupt_a_long_retry_wait(wb, fake, first):
    fake.set_faults(Faults(rate_limit=1.0, retry_after=120))
    exp = fake_experiment(fake.base_url, name=f"wait-{first}")  # capped at the default 60 s
    handle = wb.start(exp)
    wait(lambda: fake.stats()["requests"] >= 8)
    time.sleep(0.3)  # every call is in its Retry-After wait now
    # The waits are 60 s: a sweep that ends (stop) or completes after a resume (pause) within the
    # 15 s of handle.wait had them cut short. No wall-clock total is asserted beyond that.
    getattr(handle, first)()
    if first == "pause":
        wait(lambda: handle.status == "paused")
        fake.set_faults(Faults())
        sent = fake.stats()["requests"]
        handle.resume()  # the waits were cut short: the retries go out now, not a minute later
        progress = handle.wait(15)
        assert progress.status == "completed" and progress.completed == 12
        assert fake.stats()["requests"] > sent
    else:
        progress = handle.wait(15)
        assert progress.status == "stopped"


# ---------------------------------------------------------------------- the writer process
@pytest.mark.sqlite_only  # only a SQLite sweep hands its batches to a writer process
def test_killed_writer_process_loses_nothing(wb, db):
    with FakeServer(latency=0.02) as slow:
        exp = temperature_sweep(slow.base_url, "writer", 70)  # 210 runs, 4 at a time
        handle = wb.start(exp)
        wait(lambda: runs_done(db) >= 8, timeout=20)
        writer = handle.sweep._writer_process
        assert writer is not None
        with pytest.warns(UserWarning, match="writer process exited"):
            os.kill(writer.proc.pid, signal.SIGKILL)
            progress = handle.wait(60)
        assert progress.status == "completed" and progress.failed == 0
        assert runs_done(db) == 210
        assert "writer.lost" in event_types(wb, exp.key)
        slow.reset()
        again = wb.run(exp)
        assert again.skipped == 210 and slow.stats()["requests"] == 0  # nothing is called twice


# ---------------------------------------------------------------------- the fake server's slots
def test_a_fake_server_with_one_slot_serves_one_request_at_a_time(wb):
    """The shape of llama.cpp's server (one slot): the rest wait inside the server, their exchange
    growing with the queue ahead of them."""
    with FakeServer(latency=0.05, slots=1) as serial:
        exp = fake_experiment(serial.base_url, name="serial", space={"answer.temperature": [0.0, 0.5]},
                              concurrency=4, endpoints=endpoint(serial))
        progress = wb.run(exp)
        assert progress.completed == 6 and serial.stats()["in_flight_max"] == 1
    latencies = sorted(r["latency_ms"] for r in wb.runs(exp.key))
    assert latencies[0] >= 45 and latencies[-1] >= 100  # the last of 4 sent at once waited for the others


# ---------------------------------------------------------------------- latency: the exchange, not a queue
def test_latency_recorded_against_a_one_slot_server_is_its_service_time(wb):
    with FakeServer(latency=0.05, slots=1) as serial:
        exp = fake_experiment(serial.base_url, name="oneslot", space={"answer.temperature": [i / 100 for i in range(16)]},
                              concurrency=8, endpoints=endpoint(serial, max_concurrency=8))
        handle = wb.start(exp)
        progress = handle.wait(60)
    assert progress.completed == 48
    assert handle.sweep.calls.limits["fake"].limit == 1  # the server's one slot, found from the first calls
    latencies = sorted(r["latency_ms"] for r in wb.runs(exp.key, limit=100))
    # 50 ms of service; 8 calls queued in the server made it ~400 ms (the first calls still do).
    assert latencies[len(latencies) // 2] < 125


def test_a_server_serving_every_call_at_once_keeps_the_full_concurrency(wb):
    from promptlooper.engine.limits import AdaptiveLimit

    with FakeServer(latency=0.05) as parallel:
        exp = fake_experiment(parallel.base_url, name="parallel", space={"answer.temperature": [i / 100 for i in range(16)]},
                              concurrency=8, endpoints=endpoint(parallel, max_concurrency=8))
        handle = wb.start(exp)
        handle.wait(60)
    assert handle.sweep.calls.limits["fake"].limit == 8
    # A burst of 64 replies handled one after another in a busy client: latency rises a little with
    # each call in flight, in a straight line, but far less than a queue in the server would make it.
    limit = AdaptiveLimit(64)
    for n in [*range(1, 65), *[64] * 64]:
        limit.observe(n, 100.0 + 1.0 * n if n < 64 else 100.0)
    assert not limit.calibrating and limit.limit == 64


def test_cli_run_stops_on_its_budget_instead_of_waiting_for_a_resume(db, tmp_path, server):
    # Nobody is there to raise a CLI sweep's budget and resume it: it ends (exit 1, resumable) instead
    # of hanging paused, which would block a CI job for ever.
    exp = fake_experiment(server.base_url, name="budgeted", concurrency=1, budget={"max_tokens": 40})
    res = cli(db, "run", str(write_experiment(tmp_path / "b.yaml", exp)), "--quiet", timeout=120)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "budget exhausted" in res.stderr
    wb = pl.Workbench(db)
    try:
        assert "budget.exhausted" in event_types(wb, "tests/budgeted")
        assert runs_done(db) < 12
    finally:
        wb.close()
