"""Endpoint groups: one model served by several endpoints (real loopback servers), calls balanced by
the members' limits, failing members skipped, a fallback endpoint or model, and the endpoint that
answered recorded with every stage result."""

from __future__ import annotations

import collections
from typing import Any

import anyio
import pytest
from helpers import free_port
from mcp import Client

import promptlooper as pl
from promptlooper.errors import SpecError
from promptlooper.mcp_server import build_server
from promptlooper.testing import FakeServer, Faults
from promptlooper.validation import parse_experiment, validate

pytestmark = pytest.mark.both_backends  # each test on a SQLite file and on PostgreSQL (tests/conftest.py)


def _exp(endpoints: dict[str, Any], name: str = "grouped", n: int = 24, model: str = "pool/fake-small", **over: Any) -> pl.Experiment:
    data: dict[str, Any] = {
        "project": "tests", "name": name,
        "samples": [{"question": f"question {i}"} for i in range(n)],
        "stages": [{"name": "answer", "model": model, "user": "Q: {{ question }}", "params": {"max_tokens": 6}}],
        "scorers": [{"name": "length", "max_words": 8}],
        "endpoints": endpoints, "concurrency": 8,
    }
    data.update(over)
    return pl.Experiment.model_validate(data)


def _answered_by(wb: pl.Workbench, exp: pl.Experiment) -> collections.Counter[tuple[str, str]]:
    with wb.store.cx.read() as c:
        rows = c.execute("SELECT s.endpoint, s.model_used FROM stage_results s JOIN runs r ON r.id = s.run_id"
                         " JOIN experiments e ON e.id = r.experiment_id WHERE e.name = ?", (exp.name,)).fetchall()
    return collections.Counter((e, m) for e, m in rows)


def test_calls_are_balanced_by_the_members_limits_and_the_answering_endpoint_recorded(wb):
    with FakeServer(latency=0.05) as a, FakeServer(latency=0.05) as b:
        exp = _exp({"a": {"base_url": a.base_url, "max_concurrency": 2}, "b": {"base_url": b.base_url, "max_concurrency": 6},
                    "pool": {"group": ["a", "b"]}})
        progress = wb.run(exp)
        assert progress.completed == 24 and progress.failed == 0
        served = {"a": a.stats()["completions"], "b": b.stats()["completions"]}
        assert a.stats()["in_flight_max"] <= 2 and b.stats()["in_flight_max"] <= 6  # each member within its limit
        assert served["a"] >= 1 and served["b"] > served["a"]  # 8 in flight: b takes its 6, a its 2
        answered = _answered_by(wb, exp)
        assert answered == {("a", "fake-small"): served["a"], ("b", "fake-small"): served["b"]}
        # run again: served from the cache, no member called
        again = wb.run(_exp(exp.endpoints, name="grouped-again"))
        assert again.cached == 24 and a.stats()["completions"] + b.stats()["completions"] == 24


def test_a_failing_member_hands_its_calls_to_the_others(wb):
    with FakeServer(faults=Faults(server_error=1.0)) as broken, FakeServer() as healthy:
        exp = _exp({"a": {"base_url": broken.base_url, "max_retries": 0}, "b": {"base_url": healthy.base_url},
                    "pool": {"group": ["a", "b"]}}, n=12)
        progress = wb.run(exp)
        assert progress.completed == 12 and progress.failed == 0
        assert _answered_by(wb, exp) == {("b", "fake-small"): 12}
        # a member that failed is tried after the healthy ones: only the calls already on their way hit it
        assert broken.stats()["requests"] <= 8


def test_the_fallback_endpoint_and_fallback_model(wb):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with FakeServer(faults=Faults(server_error=1.0)) as broken, FakeServer() as spare:
        endpoints = {"a": {"base_url": broken.base_url, "max_retries": 0}, "b": {"base_url": dead, "max_retries": 0, "timeout": 5},
                     "c": {"base_url": spare.base_url}, "pool": {"group": ["a", "b"], "fallback": "c"}}
        exp = _exp(endpoints, n=4)
        assert wb.run(exp).completed == 4
        assert _answered_by(wb, exp) == {("c", "fake-small"): 4}
        endpoints["pool"] = {"group": ["a", "b"], "fallback": "c/fake-large"}
        exp = _exp(endpoints, name="fallback-model", n=4)
        assert wb.run(exp).completed == 4
        assert _answered_by(wb, exp) == {("c", "fake-large"): 4}
        assert {body["model"] for body in spare.stats()["bodies"]} == {"fake-small", "fake-large"}
        run = wb.runs(exp.key)[0]
        assert wb.run_detail(run["id"])["stages"][0]["endpoint"] == "c"


def test_a_group_that_fails_everywhere_fails_its_runs_naming_every_member(wb):
    with FakeServer(faults=Faults(server_error=1.0)) as broken:
        exp = _exp({"a": {"base_url": broken.base_url, "max_retries": 0}, "b": {"base_url": broken.base_url, "max_retries": 0},
                    "pool": {"group": ["a", "b"]}}, n=2)
        progress = wb.run(exp)
        assert progress.failed == 2
        error = wb.runs(exp.key)[0]["error"]
        assert "every endpoint of group 'pool' failed" in error and "a: HTTP 500" in error and "b: HTTP 500" in error


def test_groups_are_validated_with_field_paths(server, wb):
    with pytest.raises(SpecError) as err:
        parse_experiment(_exp({"a": {"base_url": server.base_url}}).model_dump(exclude={"base_dir"}) | {
            "endpoints": {"a": {"base_url": server.base_url}, "pool": {"group": ["a", "a"]}}})
    assert err.value.problems[0].path.startswith("endpoints.pool") and "each endpoint once" in err.value.problems[0].message
    exp = _exp({"a": {"base_url": server.base_url}, "inner": {"group": ["a"]},
                "pool": {"group": ["a", "nope", "inner"], "fallback": "gone/fake-large"}})
    problems = {p.path: p.message for p in validate(exp, wb.pool(exp))}
    assert "endpoint 'nope' is not configured" in problems["endpoints.pool.group[1]"]
    assert "is an endpoint group" in problems["endpoints.pool.group[2]"]
    assert "endpoint 'gone' is not configured" in problems["endpoints.pool.fallback"]
    assert "stages[0].model" not in problems  # the group itself is a known endpoint


def test_mcp_schema_and_run_detail_show_groups(server, db):
    w = pl.Workbench(db)
    exp = _exp({"a": {"base_url": server.base_url}, "pool": {"group": ["a"]}}, name="mcp-group", n=2)
    w.run(exp)
    run_id = w.runs(exp.key)[0]["id"]

    async def go() -> tuple[Any, Any]:
        async with Client(build_server(w)) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            return tools, await c.call_tool("get_run_detail", {"run_id": run_id})

    try:
        tools, detail = anyio.run(go)
    finally:
        w.close()
    assert "fallback" in str(tools["create_experiment"].input_schema["properties"]["experiment"]["properties"]["endpoints"])
    assert not detail.is_error and detail.structured_content["stages"][0]["endpoint"] == "a"


def test_cli_validate_reports_a_group_member_by_path(server, db, tmp_path):
    import subprocess
    import sys

    import yaml

    exp = _exp({"a": {"base_url": server.base_url}, "pool": {"group": ["a", "b"]}}, n=2)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(exp.model_dump(mode="json", exclude_none=True)))
    res = subprocess.run([sys.executable, "-m", "promptlooper.cli", "--db", db, "validate", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "endpoints.pool.group[1]" in res.stdout + res.stderr


def test_a_member_that_failed_gets_calls_again_after_its_pause(wb):
    # One sweep, one call at a time: a fails its first call, b (0.25 s a call) answers while a's
    # 0.5 s pause runs, then a (more free slots) is first again.
    with FakeServer(faults=Faults(fail_first=1)) as flaky, FakeServer(latency=0.25) as steady:
        endpoints = {"a": {"base_url": flaky.base_url, "max_retries": 0, "max_concurrency": 8},
                     "b": {"base_url": steady.base_url, "max_concurrency": 1}, "pool": {"group": ["a", "b"]}}
        exp = _exp(endpoints, n=10, concurrency=1)
        assert wb.run(exp).completed == 10
        answered = _answered_by(wb, exp)
        assert answered[("b", "fake-small")] >= 2 and answered[("a", "fake-small")] >= 1, answered
