"""Webhooks as a durable outbox: every subscribed event is delivered (or tried until its retry budget
ends) by whichever process has the store open, and a failing receiver never slows a sweep."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import pytest
from helpers import fake_experiment
from helpers import wait as _wait
from mcp import Client

import promptlooper as pl
from promptlooper.mcp_server import build_server
from promptlooper.testing import FakeServer

pytestmark = pytest.mark.both_backends  # each test on a SQLite file and on PostgreSQL (tests/conftest.py)

CLI = [sys.executable, "-m", "promptlooper.cli"]


class Receiver:
    """A loopback HTTP receiver that answers ``status`` (settable) and records every POST."""

    def __init__(self) -> None:
        self.status = 200
        self.retry_after: str | None = None  # sent as Retry-After when set
        self.hits: list[dict[str, Any]] = []  # {"id", "event", "answered", "body", "headers"}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                with outer.lock:
                    answered = outer.status
                    outer.hits.append({"id": body["id"], "event": body["event"], "answered": answered, "body": body,
                                       "headers": dict(self.headers)})
                self.send_response(answered)
                if outer.retry_after is not None:
                    self.send_header("Retry-After", outer.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def ok_ids(self) -> list[int]:
        with self.lock:
            return [h["id"] for h in self.hits if 200 <= h["answered"] < 300]

    def attempts(self) -> dict[int, int]:
        with self.lock:
            out: dict[int, int] = {}
            for h in self.hits:
                out[h["id"]] = out.get(h["id"], 0) + 1
            return out

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _cli(db: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "--db", db, *args], capture_output=True, text=True, timeout=timeout)


def test_a_receiver_answering_500_never_slows_the_sweep_and_every_event_is_tried_to_its_budget(db, receiver):
    receiver.status = 500
    with FakeServer() as srv:
        wb = pl.Workbench(db)
        wb.add_webhook("*", receiver.url, max_attempts=4, backoff=0.05)  # a short budget, to see it end
        exp = fake_experiment(srv.base_url, name="five-hundred")
        started = time.monotonic()
        progress = wb.run(exp)
        took = time.monotonic() - started
        assert progress.status == "completed"
        assert took < 5.0, f"the sweep took {took:.1f}s beside a failing receiver"  # was 10 s; ~0.3 s alone
        events = wb.events(exp.key)
        assert len(events) > 20
        wb.close()
    # The CLI delivers what is left: every event tried until its budget ends, none forgotten.
    res = _cli(db, "webhooks", "deliver", "--wait", "60")
    assert res.returncode == 1, res.stdout + res.stderr  # some deliveries failed for good: say so
    assert f"{len(events)} failed" in res.stdout
    attempts = receiver.attempts()
    assert set(attempts) == {e["id"] for e in events}
    assert set(attempts.values()) == {4}
    wb = pl.Workbench(db)
    outbox = wb.webhook_outbox()
    assert {row["state"] for row in outbox} == {"failed"} and len(outbox) == len(events)
    assert all(row["attempts"] == 4 and "500" in (row["last_error"] or str(row["last_status"])) for row in outbox)
    wb.close()


def test_a_receivers_retry_after_sets_when_an_event_is_tried_again(db, receiver):
    receiver.status, receiver.retry_after = 429, "30"
    started = time.time()
    with FakeServer() as srv:
        wb = pl.Workbench(db)
        wb.add_webhook("*", receiver.url, backoff=0.05)  # its own backoff alone would retry within 0.05 s
        wb.run(fake_experiment(srv.base_url, name="slow-down"))
        wb.close()
    tried = [row for row in pl.Workbench(db).webhook_outbox() if row["attempts"]]
    assert tried and {row["state"] for row in tried} == {"pending"}
    assert {row["attempts"] for row in tried} == {1}  # not again before the 30 s the receiver asked for
    assert min(row["next_attempt"] for row in tried) >= started + 29


def test_events_left_by_a_down_receiver_are_delivered_once_it_is_back(db, receiver):
    receiver.status = 503
    with FakeServer() as srv:
        wb = pl.Workbench(db)
        wb.add_webhook("run.*", receiver.url)
        exp = fake_experiment(srv.base_url, name="comes-back")
        wb.run(exp)
        run_events = wb.events(exp.key, ["run.*"])
        wb.close()
    assert receiver.hits  # tried during the sweep
    receiver.status = 200
    res = _cli(db, "webhooks", "deliver", "--wait", "30")
    assert res.returncode == 0, res.stdout + res.stderr
    assert sorted(receiver.ok_ids()) == [e["id"] for e in run_events]  # each once, only the subscribed family
    assert all(h["event"].startswith("run.") for h in receiver.hits)


def test_events_raised_outside_a_sweep_are_delivered_by_the_cli_and_the_mcp_server(db, receiver, monkeypatch, stored_bytes):
    monkeypatch.setenv("PL_HOOK_TOKEN", "hook-secret-456")
    with FakeServer() as srv:
        wb = pl.Workbench(db)
        wb.add_webhook("*", receiver.url, {"X-Token": "PL_HOOK_TOKEN"})
        exp = fake_experiment(srv.base_url, name="outside")
        wb.run(exp)
        _wait(lambda: len(receiver.ok_ids()) == len(wb.events(exp.key)), timeout=10)
        best = wb.leaderboard(exp.key).iloc[0]["full_config_id"]
        wb.close()
    # CLI: each command delivers the events it raised before it exits.
    before = len(receiver.hits)
    assert _cli(db, "approve", exp.key, best[:10], "--by", "ana").returncode == 0
    assert _cli(db, "request-human", exp.key, "pick one").returncode == 0
    assert [h["event"] for h in receiver.hits[before:]] == ["configuration.approved", "human_needed"]
    # MCP: the server delivers the events its tools raise.
    wb = pl.Workbench(db)
    server = build_server(wb)

    async def go() -> None:
        async with Client(server) as c:
            res = await c.call_tool("request_human", {"experiment": exp.key, "reason": "second opinion"})
            assert not res.is_error, res.content[0].text

    anyio.run(go)
    _wait(lambda: receiver.hits[-1]["event"] == "human_needed" and receiver.hits[-1]["body"]["data"]["reason"] == "second opinion",
          timeout=10)
    assert {h["headers"].get("X-Token") for h in receiver.hits} == {"hook-secret-456"}
    wb.close()
    stored = stored_bytes()
    assert b"human_needed" in b"".join(stored.values())  # the events are in what was read
    for where, data in stored.items():
        assert b"hook-secret-456" not in data, where


def test_new_best_found_carries_the_run_the_scores_and_the_full_configuration(db, receiver):
    with FakeServer() as srv:
        wb = pl.Workbench(db)
        wb.add_webhook("new_best_found", receiver.url)
        exp = fake_experiment(srv.base_url, name="best")
        wb.run(exp)
        _wait(lambda: len(receiver.ok_ids()) == len(wb.events(exp.key, ["new_best_found"])) > 0, timeout=10)
        body = receiver.hits[-1]["body"]["data"]
        assert wb.run_detail(body["run_id"])["config_id"] == body["config_id"]
        assert set(body["scores"]) == {"length", "keyword"}
        assert all(0.0 <= v <= 1.0 for v in body["scores"].values())
        config = wb.store.configuration(wb.experiment(exp.key)["id"], body["config_id"])
        assert body["configuration"] == config["config"]
        assert "fake-small" in json.dumps(body["configuration"]) and body["configuration"]["stages"][0]["system"]
        wb.close()
