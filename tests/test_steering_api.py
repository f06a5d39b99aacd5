"""Steering across processes, budgets, webhooks, exports, fork / redirect / approve / reject."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from helpers import (
    db_rows,
    db_value,
    fake_experiment,
    store_exists,
    temperature_sweep,
    write_experiment,
)
from helpers import runs_done as _runs_done
from helpers import sweep_status as _sweep_status
from helpers import wait as _wait

import promptlooper as pl
from promptlooper.testing import FakeServer

pytestmark = pytest.mark.both_backends  # each test on a SQLite file and on PostgreSQL (tests/conftest.py)

CLI = [sys.executable, "-m", "promptlooper.cli"]


def _write_exp(tmp_path: Path, base_url: str, n_temps: int = 40, **over) -> Path:
    return write_experiment(tmp_path / "steer.yaml", temperature_sweep(base_url, "steer", n_temps, **over))


def test_pause_from_this_process_pauses_a_cli_sweep_in_another(tmp_path, db):
    with FakeServer(latency=0.05) as srv:
        f = _write_exp(tmp_path, srv.base_url)
        proc = subprocess.Popen([*CLI, "--db", db, "run", str(f), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait(lambda: store_exists(db) and _sweep_status(db) == "running" and _runs_done(db) >= 4, timeout=60)
            wb = pl.Workbench(db)
            wb.pause("tests/steer")
            # "Within about a second": the sweep reads steering requests 4 times a second; 5 s is the
            # bound on a loaded machine (no wall-clock rate asserted).
            _wait(lambda: _sweep_status(db) == "paused", timeout=5)
            time.sleep(0.4)  # calls in flight land
            frozen = _runs_done(db)
            time.sleep(1.0)
            assert _runs_done(db) == frozen
            wb.resume("tests/steer")
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            assert "completed: 120/120" in out
            types = [e["type"] for e in wb.events("tests/steer", ["experiment.*"])]
            assert types == ["experiment.started", "experiment.paused", "experiment.resumed", "experiment.completed"]
            wb.close()
        finally:
            if proc.poll() is None:
                proc.kill()


def test_cli_pause_pauses_a_sweep_running_in_this_process(tmp_path, db):
    with FakeServer(latency=0.1) as srv:
        # 300 runs at 40/s: long enough to outlast the CLI's start-up on a loaded machine.
        exp = temperature_sweep(srv.base_url, "steer", 100)
        wb = pl.Workbench(db)
        handle = wb.start(exp)
        _wait(lambda: handle.progress.done >= 4, timeout=30)
        res = subprocess.run([*CLI, "--db", db, "pause", "tests/steer"], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr  # the request is in the store when the CLI exits
        _wait(lambda: handle.status == "paused", timeout=5)  # "within about a second" (see above)
        subprocess.run([*CLI, "--db", db, "stop", "tests/steer"], capture_output=True, text=True, timeout=60, check=True)
        progress = handle.wait(30)
        assert progress.status == "stopped" and progress.done < progress.total
        # Running it again resumes: only the missing runs are called.
        srv.reset()
        again = wb.run(exp)
        assert again.status == "completed" and again.done == again.total == 300
        assert srv.stats()["completions"] == 300 - progress.done
        wb.close()


def test_kill_9_midway_then_rerun_repeats_no_completed_call(tmp_path, db):
    counts: dict[str, int] = {}
    lock = threading.Lock()

    from promptlooper.testing.fake_server import default_reply

    def reply(body):
        key = json.dumps(body["messages"], sort_keys=True) + json.dumps(body.get("temperature"))
        with lock:
            counts[key] = counts.get(key, 0) + 1
        return default_reply(body)

    with FakeServer(latency=0.02, reply=reply) as srv:
        f = _write_exp(tmp_path, srv.base_url, n_temps=60)
        proc = subprocess.Popen([*CLI, "--db", db, "run", str(f), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait(lambda: store_exists(db) and _runs_done(db) >= 40, timeout=60, every=0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        done_before = db_rows(db, "SELECT s.prompt_sent, s.parameters FROM stage_results s JOIN runs r ON r.id = s.run_id"
                                  " WHERE r.status = 'completed'")
        assert 40 <= len(done_before) < 180
        res = subprocess.run([*CLI, "--db", db, "run", str(f), "--quiet"], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert "completed: 180/180" in res.stdout
    for prompt_sent, params in done_before:
        key = json.dumps(json.loads(prompt_sent), sort_keys=True) + json.dumps(json.loads(params).get("temperature"))
        assert counts[key] == 1, "a call completed before the kill was made again"
    assert db_rows(db, "SELECT COUNT(*), COUNT(DISTINCT id) FROM runs") == [(180, 180)]
    if not db.startswith("postgresql://"):  # a killed SQLite writer must leave a sound file
        assert db_value(db, "PRAGMA integrity_check") == "ok"


def test_budget_pauses_then_raising_it_and_resuming_continues(db):
    with FakeServer(latency=0.01) as srv:
        exp = fake_experiment(srv.base_url, name="budget", space={"answer.temperature": [round(i * 0.1, 1) for i in range(10)]},
                              concurrency=2, budget={"max_tokens": 60})
        wb = pl.Workbench(db)
        handle = wb.start(exp)
        _wait(lambda: handle.status == "paused", timeout=30)
        assert handle.progress.stop_reason == "budget"
        time.sleep(0.3)
        frozen = handle.progress.done
        assert frozen < 30
        [event] = wb.events(exp.key, ["budget.exhausted"])
        assert event["payload"]["token_count"] >= 60
        time.sleep(0.5)
        assert handle.progress.done == frozen  # paused, not killed
        wb.set_budget(exp.key, max_tokens=100_000)
        wb.resume(exp.key)
        progress = handle.wait(30)
        assert progress.status == "completed" and progress.done == 30
        wb.close()


def test_webhook_receiver_sees_every_event_of_a_small_sweep_in_order(db, monkeypatch, stored_bytes):
    received: list[dict] = []
    headers_seen: list[str | None] = []
    attempts = {"n": 0}

    async def hook(request: web.Request) -> web.Response:
        attempts["n"] += 1
        if attempts["n"] == 3:  # one transient failure: it must be retried, order kept
            return web.Response(status=503)
        received.append(await request.json())
        headers_seen.append(request.headers.get("X-Token"))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    import asyncio

    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("PL_HOOK_TOKEN", "hook-secret-123")
    try:
        with FakeServer() as srv:
            wb = pl.Workbench(db)
            wb.add_webhook("*", f"http://127.0.0.1:{port}/hook", {"X-Token": "PL_HOOK_TOKEN"})
            exp = fake_experiment(srv.base_url, name="hooked")
            wb.run(exp)
            stored = wb.events(exp.key)
            _wait(lambda: len(received) >= len(stored), timeout=10)
            # In id order, but for the one that failed once: retried, it arrives after later events.
            late = stored[2]["id"]  # the third attempt answered 503
            assert [r["id"] for r in received if r["id"] != late] == [e["id"] for e in stored if e["id"] != late]
            assert sorted(r["id"] for r in received) == [e["id"] for e in stored]
            assert [r["event"] for r in sorted(received, key=lambda r: r["id"])] == [e["type"] for e in stored]
            assert received[0]["event"] == "experiment.started" and stored[-1]["type"] == "experiment.completed"
            assert set(headers_seen) == {"hook-secret-123"}
            # The courier records a delivery once its receiver answered: the last row may come just after.
            deliveries = _wait(lambda: (d := wb.webhook_deliveries()) and len(d) >= len(stored) + 1 and d, timeout=10)
            assert len(deliveries) == len(stored) + 1 and any(d["status"] == 503 for d in deliveries)
            wb.close()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    stored = stored_bytes()
    assert b"experiment.completed" in b"".join(stored.values())  # the events are in what was read
    for where, data in stored.items():
        assert b"hook-secret-123" not in data, where


def test_redirect_a_running_sweep(db):
    with FakeServer(latency=0.05) as srv:
        temps = [round(i * 0.05, 2) for i in range(20)]
        exp = fake_experiment(srv.base_url, name="redir", space={"answer.temperature": temps}, concurrency=2)
        wb = pl.Workbench(db)
        handle = wb.start(exp)
        _wait(lambda: handle.progress.done >= 6, timeout=30)
        with pytest.raises(pl.SpecError):
            wb.redirect(exp.key, {"answer.temperature": [5.0]})  # validated first
        out = wb.redirect(exp.key, {"answer.temperature": [0.0, 0.05, 0.9, 0.95]})
        assert out["live"]
        progress = handle.wait(60)
        assert progress.status == "completed"
        assert progress.done == progress.total == len(wb.runs(exp.key, limit=1000))  # no run counted twice
        done_temps = {r["config_id"] for r in wb.runs(exp.key, limit=1000)}
        board = wb.leaderboard(exp.key)
        assert {0.9, 0.95} <= set(board["answer.temperature"])  # the added values ran
        assert len(board) < len(temps)  # the dropped values did not all run
        assert len(done_temps) == len(board)
        assert "experiment.redirected" in [e["type"] for e in wb.events(exp.key)]
        wb.close()


def test_fork_approve_reject_and_exports(db, monkeypatch):
    secret = "sk-live-NEVER-EXPORT-99"
    monkeypatch.setenv("PL_EXPORT_KEY", secret)
    with FakeServer(api_key=secret) as srv:
        wb = pl.Workbench(db)
        exp = fake_experiment(srv.base_url, endpoints={"fake": {"base_url": srv.base_url, "api_key_env": "PL_EXPORT_KEY"}})
        wb.run(exp)
        board = wb.leaderboard(exp.key)
        top, second = board.iloc[0]["full_config_id"], board.iloc[1]["full_config_id"]
        wb.reject(exp.key, top[:10], by="alice", reason="too verbose")
        assert top not in set(wb.leaderboard(exp.key)["full_config_id"])
        wb.approve(exp.key, second, by="bob", reason="good enough")
        best = json.loads(wb.export(exp.key, "json"))
        assert best["config_id"] == second and best["approved"] is True
        decided = [e for e in wb.events(exp.key) if e["type"].startswith("configuration.")]
        assert [(e["type"], e["payload"]["by"], e["payload"]["reason"]) for e in decided] == [
            ("configuration.rejected", "alice", "too verbose"), ("configuration.approved", "bob", "good enough")]
        env = wb.export(exp.key, "env")
        assert "LLM_MODEL=fake-small" in env and f"LLM_API_URL={srv.base_url}" in env
        y = yaml.safe_load(wb.export(exp.key, "yaml"))
        assert y["model"] == "fake-small" and y["metadata"]["config_id"] == second
        report = wb.export(exp.key, "report")
        assert "## Leaderboard" in report and "## Timeline" in report and "ci_low" in report
        for text in (json.dumps(best), env, yaml.safe_dump(y), report):
            assert secret not in text
        # A fork that keeps the best configuration's values is served entirely from the cache.
        srv.reset()
        child = wb.fork(exp.key, second, {"answer.temperature": board.set_index("full_config_id").loc[second, "answer.temperature"]})
        progress = wb.run(child)
        assert progress.cached == 3 and srv.stats()["requests"] == 0
        assert wb.experiment(child.key)["parent_id"] == wb.experiment(exp.key)["id"]
        child2 = wb.fork(exp.key, changes={"answer.top_p": [0.5, 1.0]})
        assert child2.space["answer.top_p"] == [0.5, 1.0]
        wb.close()


def test_plan_counts_calls_and_cache(db, server):
    wb = pl.Workbench(db)
    exp = fake_experiment(server.base_url, name="planned")
    before = wb.plan(exp)
    assert before["calls"] == 12 and before["cached_calls"] == 0 and before["estimated_tokens"] > 0
    assert server.stats()["requests"] == 0
    wb.run(exp)
    other = fake_experiment(server.base_url, name="planned-2", space={"answer.temperature": [0.0, 0.5, 1.0], "persona": ["terse", "verbose"]})
    after = wb.plan(other)
    assert after["calls"] == 18 and after["cached_calls"] == 12 and after["calls_to_make"] == 6
    wb.close()


def test_cli_events_filter_and_human_needed(db, server, tmp_path):
    wb = pl.Workbench(db)
    exp = fake_experiment(server.base_url, name="ev")
    wb.run(exp)
    wb.close()
    subprocess.run([*CLI, "--db", db, "request-human", "tests/ev", "please review the top 2"], check=True, capture_output=True, timeout=60)
    res = subprocess.run([*CLI, "--db", db, "events", "tests/ev", "--type", "human_needed", "--type", "experiment.*", "--json"],
                         capture_output=True, text=True, timeout=60)
    types = [e["type"] for e in json.loads(res.stdout)]
    assert types == ["experiment.started", "experiment.completed", "human_needed"]
