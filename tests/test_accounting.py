"""Every model call is counted: stage, judge and embedding-endpoint calls, in runs, sweeps,
budgets and `plan`; identical calls in flight go out once; unpriced models are named.

Tokens "served" are the fake endpoint's own count of what it answered (prompt + completion tokens
of chat replies, input tokens of embeddings replies), the figure a provider bills: the in-process
FakeModel's, or the loopback FakeServer's where embeddings or another process are involved.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import anyio
import pytest
from helpers import db_rows, fake_experiment, wait, write_experiment
from mcp import Client

import promptlooper as pl
from promptlooper.mcp_server import build_server
from promptlooper.testing import FakeModel, FakeServer

pytestmark = pytest.mark.both_backends  # each test on a SQLite file and on PostgreSQL (tests/conftest.py)

CLI = [sys.executable, "-m", "promptlooper.cli"]
JUDGE = "fake/judge-model"


def _judged(base_url: str, name: str, temps: list[float], **over: Any) -> pl.Experiment:
    """One prompt stage over ``temps`` x 3 samples, graded by a judge on its own model name."""
    return fake_experiment(base_url, name=name, space={"answer.temperature": temps},
                           **{"scorers": [{"name": "judge", "model": JUDGE}], **over})


def _constant(body: dict[str, Any]) -> str:
    """The same answer whatever the temperature: runs of one sample then make identical later calls."""
    text = " ".join(str(m.get("content")) for m in body["messages"])
    return "4" if "Rate the RESPONSE" in text else "the capital is paris"


def _sql(db: str, query: str) -> Any:
    return db_rows(db, query)[0]


def test_judge_calls_count_in_runs_sweep_and_cost(wb, db):
    model = FakeModel()
    wb.set_price("fake-small", 1.0, 1.0)  # the same price both ways: cost = tokens / 1e6
    wb.set_price("judge-model", 1.0, 1.0)
    progress = wb.run(_judged(model.base_url, "judged", [0.0, 0.3, 0.6, 0.9]))
    served = model.stats()["tokens_served"]
    assert progress.status == "completed" and progress.done == 12
    judge_calls = model.stats()["by_model"][JUDGE.split("/")[1]]
    assert judge_calls == 12
    assert progress.tokens / served >= 0.99 and progress.tokens <= served
    sweep_tokens, sweep_cost = _sql(db, "SELECT tokens_in + tokens_out, cost FROM sweeps")
    assert sweep_tokens == progress.tokens
    assert abs(sweep_cost - served / 1e6) < 1e-9
    # Every call here is distinct (outputs differ by temperature, so judge prompts differ too):
    # the runs' own tokens and cost add up to what the endpoint served.
    run_tokens, run_cost = _sql(db, "SELECT SUM(tokens_in + tokens_out), SUM(cost) FROM runs")
    assert run_tokens == served
    assert abs(run_cost - served / 1e6) < 1e-9


def test_identical_calls_in_flight_go_out_once_for_later_stages_and_judges(wb):
    two_stages = [
        {"name": "answer", "model": "fake/fake-small", "user": "Q: {{ question }}", "params": {"max_tokens": 8}},
        {"name": "polish", "model": "fake/fake-large", "user": "Rewrite: {{ answer }}", "params": {"max_tokens": 8}},
    ]
    model = FakeModel(latency=0.05, reply=_constant)
    exp = _judged(model.base_url, "single-flight", [0.0, 0.2, 0.4, 0.6], stages=two_stages)
    progress = wb.run(exp)
    by_model = model.stats()["by_model"]
    assert progress.done == 12 and progress.failed == 0
    assert by_model["fake-small"] == 12  # one per temperature and sample
    # Every temperature answers the same, so every run's second stage makes the same call, and
    # the judge calls of one sample (its reference differs) are identical.
    assert by_model["fake-large"] == 1
    assert by_model["judge-model"] == 3


def test_embedding_endpoint_calls_are_counted_and_sent_once(wb):
    with FakeServer(latency=0.02, embedding_latency=0.05, reply=_constant) as srv:
        exp = fake_experiment(srv.base_url, name="embedded-score", space={"answer.temperature": [0.0, 0.2, 0.4, 0.6]},
                              scorers=[{"name": "embedding", "base_url": srv.base_url, "model": "emb"}])
        progress = wb.run(exp)
        stats = srv.stats()
    assert progress.done == 12 and progress.failed == 0
    # Texts: the one answer every run gives (4 words) and the three references (1 word each).
    assert stats["embedding_tokens_served"] == 4 + 3
    assert progress.tokens == stats["tokens_served"]


def test_a_token_budget_holds_with_judge_calls(wb, db):
    budget = 400
    model = FakeModel(latency=0.02)
    exp = _judged(model.base_url, "budgeted", [round(i * 0.01, 2) for i in range(30)], concurrency=4,
                  budget={"max_tokens": budget})
    handle = wb.start(exp)
    wait(lambda: handle.status == "paused", timeout=30)
    time.sleep(0.5)  # calls in flight when the budget was reached land meanwhile
    served = model.stats()["tokens_served"]
    assert handle.progress.stop_reason == "budget"
    wb.stop(exp.key)
    handle.wait(30)
    recorded = handle.progress.tokens
    assert budget <= recorded <= served and recorded / served >= 0.99
    # Past the budget: only the calls out when it was reached, the one that reached it included;
    # at most `concurrency` (4) calls are ever out at once.
    largest = _sql(db, "SELECT MAX(tokens_in + tokens_out) FROM response_cache")[0]
    assert served <= budget + 4 * largest, (served, largest)


def _two_stage_judged(base_url: str) -> pl.Experiment:
    stages = [
        {"name": "answer", "model": "fake/fake-small", "user": "Q: {{ question }}", "params": {"max_tokens": 8}},
        {"name": "polish", "model": "fake/fake-small", "user": "Rewrite: {{ answer }}", "params": {"max_tokens": 8}},
    ]
    return _judged(base_url, "planned", [0.0, 0.5], stages=stages)


def test_plan_counts_scorer_calls_and_cached_later_stages(wb, fake):
    exp = _two_stage_judged(fake.base_url)
    before = wb.plan(exp)
    assert before["runs"] == 6
    assert before["scorer_calls"] == 6 and before["calls"] == 6 * 3
    assert before["cached_calls"] == 0 and before["calls_to_make"] == 18
    wb.run(exp)
    after = wb.plan(exp.model_copy(update={"name": "planned-again"}))
    assert after["calls"] == 18 and after["cached_calls"] == 18 and after["calls_to_make"] == 0
    assert after["cached_scorer_calls"] == 6
    assert after["estimated_tokens"] == 0 and after["estimated_cost"] == 0


def test_unpriced_models_are_named_by_plan_and_run(wb, server, tmp_path, db):
    exp = _judged(server.base_url, "unpriced", [0.0, 0.5])
    assert wb.plan(exp)["unpriced_models"] == ["fake/fake-small", JUDGE]
    path = write_experiment(tmp_path / "exp.yaml", exp)
    res = subprocess.run([*CLI, "--db", db, "plan", str(path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "no price: fake/fake-small, fake/judge-model" in res.stdout and "promptlooper prices set" in res.stdout
    res = subprocess.run([*CLI, "--db", db, "run", str(path), "--quiet"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "no price: fake/fake-small, fake/judge-model" in res.stdout
    wb.set_price("fake-small", 0.1, 0.2)
    assert wb.plan(exp)["unpriced_models"] == [JUDGE]


def test_a_cost_budget_over_an_unpriced_model_is_a_validation_problem(wb, server, tmp_path, db):
    exp = _judged(server.base_url, "cost-capped", [0.0, 0.5], budget={"max_cost": 0.5})
    wb.set_price("fake-small", 0.1, 0.2)
    problems = [p for p in wb.validate(exp) if p.path == "budget.max_cost"]
    assert len(problems) == 1
    assert JUDGE in problems[0].message and "fake/fake-small" not in problems[0].message
    assert "promptlooper prices set judge-model" in problems[0].hint
    path = write_experiment(tmp_path / "exp.yaml", exp)
    res = subprocess.run([*CLI, "--db", db, "run", str(path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "budget.max_cost" in res.stderr and JUDGE in res.stderr
    assert server.stats()["completions"] == 0  # nothing was called
    wb.set_price("judge-model", 0.1, 0.2)
    assert not wb.validate(exp)


def test_calls_a_custom_scorer_makes_through_its_context_are_counted(wb, db):
    async def second_opinion(ctx, output):
        result = await ctx.chat("fake/opinion-model", [{"role": "user", "content": f"Is this right? {output}"}],
                                {"max_tokens": 4})
        return 1.0 if result.response.text else 0.0

    pl.register_function("second_opinion", second_opinion)
    model = FakeModel()
    exp = fake_experiment(model.base_url, name="custom-calls", space={"answer.temperature": [0.0, 0.5]},
                          scorers=[{"name": "python", "function": "second_opinion"}])
    progress = wb.run(exp)
    stats = model.stats()
    assert progress.done == 6 and stats["by_model"]["opinion-model"] == 6
    assert progress.tokens == stats["tokens_served"]
    assert _sql(db, "SELECT SUM(tokens_in + tokens_out) FROM runs")[0] == stats["tokens_served"]
    assert _sql(db, "SELECT COUNT(*) FROM runs WHERE status = 'completed' AND score = 1.0")[0] == 6


def test_plan_counts_embedding_endpoint_requests_and_finds_them_cached(wb):
    with FakeServer(reply=_constant) as srv:
        exp = fake_experiment(srv.base_url, name="embed-planned", space={"answer.temperature": [0.0, 0.5]},
                              scorers=[{"name": "embedding", "base_url": srv.base_url, "model": "emb"}])
        before = wb.plan(exp)
        assert before["scorer_calls"] == 6 and before["cached_scorer_calls"] == 0 and before["calls"] == 12
        wb.run(exp)
        after = wb.plan(exp.model_copy(update={"name": "embed-planned-again"}))
    assert after["cached_calls"] == 12 and after["cached_scorer_calls"] == 6 and after["calls_to_make"] == 0


def test_plan_over_mcp_counts_judge_calls_and_names_unpriced_models(wb, fake):
    exp = _judged(fake.base_url, "mcp-planned", [0.0, 0.5]).model_dump(mode="json", exclude_none=True)

    async def go() -> dict[str, Any]:
        async with Client(build_server(wb)) as c:
            assert not (await c.call_tool("create_experiment", {"experiment": exp})).is_error
            res = await c.call_tool("plan", {"experiment": "tests/mcp-planned"})
            assert not res.is_error, res.content[0].text
            return dict(res.structured_content or {})

    plan = anyio.run(go)
    assert plan["calls"] == 12 and plan["scorer_calls"] == 6 and plan["calls_to_make"] == 12
    assert plan["unpriced_models"] == ["fake/fake-small", JUDGE]


def test_a_cost_budget_set_on_a_live_sweep_over_an_unpriced_model_is_refused(wb, db):
    with FakeServer(latency=0.05) as srv:
        exp = _judged(srv.base_url, "live-budget", [round(i * 0.01, 2) for i in range(20)], concurrency=2)
        wb.set_price("fake-small", 0.1, 0.2)
        handle = wb.start(exp)
        wait(lambda: handle.status == "running", timeout=30)
        wb.pause(exp.key)  # held while the command below starts, however slow the machine
        wait(lambda: handle.status == "paused", timeout=30)
        res = subprocess.run([*CLI, "--db", db, "budget", exp.key, "--max-cost", "0.01"], capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 2 and "budget.max_cost" in res.stderr and JUDGE in res.stderr, res.stderr
        assert "promptlooper prices set judge-model" in res.stderr
        wb.set_price("judge-model", 0.1, 0.2)
        assert wb.set_budget(exp.key, max_cost=0.01) == {"max_cost": 0.01}
        wb.stop(exp.key)
        handle.wait(30)
