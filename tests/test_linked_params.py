"""Linked parameters: a space axis of bundles whose values vary together (a system prompt per model,
max_tokens per prompt), in grid, random and guided search, validated with field paths, over MCP."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import Client

import promptlooper as pl
from promptlooper.errors import SpecError
from promptlooper.mcp_server import build_server
from promptlooper.sweeps.guided import distributions, params_to_point, point_to_params
from promptlooper.sweeps.space import build_configuration, grid_points, grid_size
from promptlooper.validation import parse_experiment, validate

pytestmark = pytest.mark.both_backends  # each test on a SQLite file and on PostgreSQL (tests/conftest.py)

BUNDLES = [
    {"answer.model": "fake/fake-small", "answer.system": "Small model, be terse.", "answer.max_tokens": 4},
    {"answer.model": "fake/fake-large", "answer.system": "Large model, {{ tone }}.", "answer.max_tokens": 12},
]


def _data(base_url: str, name: str = "linked", **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "project": "tests", "name": name,
        "samples": [{"question": f"q{i}"} for i in range(4)],
        "stages": [{"name": "answer", "model": "fake/fake-small", "user": "Q: {{ question }}"}],
        "space": {"combo": {"linked": BUNDLES}, "answer.temperature": [0.0, 0.5], "tone": ["be kind"]},
        "scorers": [{"name": "length", "max_words": 8}],
        "endpoints": {"fake": {"base_url": base_url}},
    }
    data.update(over)
    return data


def _never_mixed(fake) -> set[tuple[str, str, int]]:
    seen = {(b["model"], b["messages"][0]["content"], b["max_tokens"]) for b in fake.stats()["bodies"]}
    assert seen <= {("fake-small", "Small model, be terse.", 4), ("fake-large", "Large model, be kind.", 12)}, seen
    return seen


def test_grid_crosses_bundles_with_other_axes_and_never_mixes_them(fake, wb):
    exp = pl.Experiment.model_validate(_data(fake.base_url))
    assert grid_size(exp) == 4
    progress = wb.run(exp)
    assert progress.completed == 16 and progress.failed == 0
    assert len(_never_mixed(fake)) == 2
    board = wb.leaderboard(exp.key)
    assert len(board) == 4
    points = [build_configuration(exp, p).varied for p in grid_points(exp)]
    assert points[0]["combo"] == BUNDLES[0] and points[-1]["combo"] == BUNDLES[1]


def test_random_and_guided_search_draw_whole_bundles(fake, wb):
    exp = pl.Experiment.model_validate(_data(fake.base_url, name="linked-random", strategy="random", max_configs=3))
    assert wb.run(exp).failed == 0
    _never_mixed(fake)
    fake.reset()
    guided = pl.Experiment.model_validate(_data(fake.base_url, name="linked-guided", strategy="guided",
                                                samples=[{"question": f"other {i}"} for i in range(4)],  # none cached
                                                guided={"sampler": "random", "max_configs": 4, "startup": 2, "batch": 2}))
    assert wb.run(guided).failed == 0
    assert len(_never_mixed(fake)) == 2  # both bundles tried
    dist = distributions(guided)["combo"]
    assert list(dist.choices) == [0, 1]
    point = params_to_point(guided, {"combo": 1, "answer.temperature": 1, "tone": 0})
    assert point["combo"] == BUNDLES[1]
    assert point_to_params(guided, point)["combo"] == 1


def test_bundles_are_validated_with_field_paths(fake, wb):
    with pytest.raises(SpecError) as err:
        parse_experiment(_data(fake.base_url, space={"combo": {"linked": [{"answer.model": "fake/a"}, {"answer.system": "x"}]}}))
    problem = err.value.problems[0]
    assert problem.path.startswith("space.combo") and "every bundle must set the same keys" in problem.message
    with pytest.raises(SpecError) as err:
        parse_experiment(_data(fake.base_url, space={"combo": {"linked": []}}))
    assert err.value.problems[0].path.startswith("space.combo")
    exp = pl.Experiment.model_validate(_data(fake.base_url, space={"combo": {"linked": [
        {"answr.model": "fake/fake-small", "answer.temperature": 0.1},
        {"answr.model": "fake/fake-large", "answer.temperature": 9}]}}))
    problems = {p.path: p.message for p in validate(exp, wb.pool(exp))}
    assert "no stage named 'answr'" in problems["space.combo.linked.answr.model"]
    assert "value 9" in problems["space.combo.linked.answer.temperature"]
    exp = pl.Experiment.model_validate(_data(fake.base_url, space={"combo": {"linked": BUNDLES}, "tone": ["x"],
                                                                     "answer.max_tokens": [4, 8]}))
    problems = {p.path: p.message for p in validate(exp, wb.pool(exp))}
    assert "'answer.max_tokens' is also set by space.combo.linked.answer.max_tokens" in problems["space.answer.max_tokens"]
    exp = pl.Experiment.model_validate(_data(fake.base_url, space={"combo": {"linked": [
        {"answer.model": "nowhere/m"}, {"answer.model": "fake/fake-large"}]}}))
    problems = {p.path: p.message for p in validate(exp, wb.pool(exp))}
    assert "endpoint 'nowhere' is not configured" in problems["space.combo.linked.answer.model"]


def test_a_templated_model_is_refused_with_the_linked_syntax_as_the_fix(fake, wb):
    data = _data(fake.base_url, space={"combo": [{"model": "fake/fake-small"}]})
    data["stages"][0]["model"] = "{{ combo.model }}"
    exp = pl.Experiment.model_validate(data)
    problems = {p.path: p for p in validate(exp, wb.pool(exp))}
    assert "is a template" in problems["stages[0].model"].message
    assert "linked" in problems["stages[0].model"].hint


def test_mcp_creates_and_evaluates_a_linked_space(fake, db):
    w = pl.Workbench(db)
    mcp = build_server(w)
    exp = _data(fake.base_url, name="linked-mcp")

    async def go() -> tuple[Any, Any, Any]:
        async with Client(mcp) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            created = await c.call_tool("create_experiment", {"experiment": exp})
            evaluated = await c.call_tool("evaluate_configurations", {
                "experiment": "tests/linked-mcp", "points": [{"combo": BUNDLES[1], "answer.temperature": 0.5, "tone": "be kind"}]})
            return tools, created, evaluated

    try:
        tools, created, evaluated = anyio.run(go)
    finally:
        w.close()
    assert "linked" in str(tools["create_experiment"].input_schema)
    assert not created.is_error and created.structured_content["configurations"] == 4
    assert not evaluated.is_error, evaluated.content[0].text
    assert {b["model"] for b in fake.stats()["bodies"]} == {"fake-large"}


def test_cli_validate_reports_a_bundle_by_path(server, db, tmp_path):
    import subprocess
    import sys

    import yaml

    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(_data(server.base_url, space={"combo": {"linked": [
        {"answer.model": "fake/fake-small", "answer.top_p": 0.5}, {"answer.model": "fake/fake-large", "answer.top_p": 3}]}})))
    cli = [sys.executable, "-m", "promptlooper.cli", "--db", db, "validate", str(path)]
    res = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "space.combo.linked.answer.top_p" in res.stdout + res.stderr
    path.write_text(yaml.safe_dump(_data(server.base_url, space={"combo": {"linked": BUNDLES}, "tone": ["be kind"]})))
    res = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_fork_keeps_the_bundle_of_its_configuration(fake, wb):
    bundles = [{**BUNDLES[0]}, {**BUNDLES[1], "answer.system": "Large model."}]
    exp = pl.Experiment.model_validate(_data(fake.base_url, name="linked-fork", space={
        "combo": {"linked": bundles}, "answer.temperature": [0.0, 0.5]}))
    wb.run(exp)
    n = fake.stats()["completions"]
    child = wb.fork(exp.key, changes={"answer.temperature": 0.0})  # the best's bundle stays as it was
    assert isinstance(child.space["combo"], pl.spec.Linked) and len(child.space["combo"].linked) == 1
    assert wb.run(child).cached == 4 and fake.stats()["completions"] == n  # same configuration: same calls
    other = wb.fork(exp.key, changes={"combo": bundles[1], "answer.temperature": 0.5}, name="linked-fork-b")
    assert other.space["combo"].linked == [bundles[1]]
    assert wb.run(other).cached == 4
