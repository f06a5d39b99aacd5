"""Custom scorers: a Python function (by registered name or as a callable) and an HTTP webhook."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import promptlooper as pl
from promptlooper.scorers import ScoreContext, ScorerError, ScoreResult, build

CTX = ScoreContext(output="Paris, of course", sample={"reference": "Paris"}, input="capital of France?",
                   outputs={"answer": "Paris, of course"}, run={"run_id": "r1", "config_id": "c1", "varied": {"persona": "x"}, "repeat": 0})


def run_scorer(name: str, args: dict, ctx: ScoreContext = CTX) -> ScoreResult:
    fn = build(name, args)
    return asyncio.run(fn(ctx))


def test_python_scorer_by_registered_name_gets_what_it_asks_for():
    seen = {}

    def starts_with_reference(output, sample, run, bonus=0.0):
        seen.update(run=run)
        return output.startswith(sample["reference"]) * (1 - bonus)

    pl.register_function("starts_with_reference", starts_with_reference)
    assert run_scorer("python", {"function": "starts_with_reference"}).value == 1.0
    assert run_scorer("python", {"function": "starts_with_reference", "args": {"bonus": 0.25}}).value == 0.75
    assert seen["run"]["varied"] == {"persona": "x"}


@pytest.mark.parametrize(("returned", "value", "detail"), [
    (0.3, 0.3, None), (True, 1.0, None), ({"score": 0.4, "why": "ok"}, 0.4, {"why": "ok"}),
    ((0.6, {"n": 2}), 0.6, {"n": 2}), (ScoreResult(0.2, {"a": 1}), 0.2, {"a": 1}), (7, 1.0, {"raw": 7.0, "clamped": True}),
])
def test_python_scorer_return_shapes(returned, value, detail):
    result = run_scorer("python", {"function": lambda: returned})
    assert result.value == value and result.detail == detail


def test_python_scorer_async_callable_and_ctx():
    async def judge_length(ctx):
        await asyncio.sleep(0)
        return len(ctx.output) / 100

    assert run_scorer("python", {"function": judge_length}).value == pytest.approx(0.16)


def test_python_scorer_errors_are_clear():
    with pytest.raises(ScorerError, match="no function 'nope': not registered"):
        build("python", {"function": "nope"})
    with pytest.raises(ScorerError, match="needs argument 'banana'"):
        build("python", {"function": lambda banana: 1.0})
    with pytest.raises(ValueError, match="not a number"):
        run_scorer("python", {"function": lambda: "high"})


def test_python_scorer_failure_in_a_sweep_is_recorded(wb, make_fake_exp):
    pl.register_function("explodes", lambda output: 1 / 0)
    exp = make_fake_exp(space={}, scorers=[{"name": "python", "function": "explodes"}, {"name": "length", "max_words": 50}])
    progress = wb.run(exp)
    assert progress.failed == 0
    scores = {s["scorer"]: s for s in wb.run_detail(wb.runs(exp.key)[0]["id"])["scores"]}
    # a scorer that broke is a missing score (NULL, left out of the mean), never a silent 0
    assert scores["python"]["value"] is None and "ZeroDivisionError" in scores["python"]["metadata"]["error"]


class _Hook(BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Hook.bodies.append((self.path, body, self.headers.get("X-Token")))
        if self.path == "/slow":
            time.sleep(1.0)
        status, answer = {
            "/score": (200, json.dumps({"score": 0.8, "metadata": {"by": "hook"}})),
            "/number": (200, "0.25"),
            "/text": (200, "great"),
            "/missing": (200, json.dumps({"value": 1})),
            "/boom": (500, "server exploded"),
            "/slow": (200, "1"),
        }[self.path]
        data = answer.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    _Hook.bodies = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_webhook_posts_the_run_and_reads_the_score(hook, monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", "s3cret")
    result = run_scorer("webhook", {"url": hook + "/score", "headers_env": {"X-Token": "HOOK_TOKEN"}})
    assert result.value == 0.8 and result.detail == {"by": "hook"}
    path, body, token = _Hook.bodies[0]
    assert body == {"input": "capital of France?", "output": "Paris, of course", "sample": {"reference": "Paris"},
                    "run": CTX.run, "outputs": {"answer": "Paris, of course"}}
    assert token == "s3cret"
    assert run_scorer("webhook", {"url": hook + "/number"}).value == 0.25


def test_webhook_failures_score_zero_with_the_reason(hook):
    bad = run_scorer("webhook", {"url": hook + "/text"})
    assert bad.value == 0.0 and "bad webhook answer" in bad.detail["error"]
    missing = run_scorer("webhook", {"url": hook + "/missing"})
    assert missing.value == 0.0 and "without a 'score' key" in missing.detail["error"]
    boom = run_scorer("webhook", {"url": hook + "/boom", "retries": 1})
    assert boom.value == 0.0 and "HTTP 500" in boom.detail["error"]
    assert sum(p == "/boom" for p, _, _ in _Hook.bodies) == 2  # a 5xx is tried again
    slow = run_scorer("webhook", {"url": hook + "/slow", "timeout": 0.2, "retries": 0})
    assert slow.value == 0.0 and "timed out after 0.2s" in slow.detail["error"]
    refused = run_scorer("webhook", {"url": "http://127.0.0.1:9/score", "retries": 0})
    assert refused.value == 0.0 and "failed" in refused.detail["error"]
    unset = run_scorer("webhook", {"url": hook + "/score", "headers_env": {"X-Token": "NOT_SET_ANYWHERE_123"}})
    assert unset.value == 0.0 and "NOT_SET_ANYWHERE_123" in unset.detail["error"]
    with pytest.raises(ScorerError, match="url must start with http"):
        build("webhook", {"url": "ftp://x"})
