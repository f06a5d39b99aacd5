"""Guided search: the sampler over the store, early dropping, resume, and the ask/tell loop."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys

import pytest
import yaml

import promptlooper as pl
from promptlooper.testing import FakeModel, FakeServer

pytestmark = pytest.mark.both_backends  # each test on a SQLite file and on PostgreSQL (tests/conftest.py)

TEMPS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
PERSONAS = ["p1", "p2", "p3", "p4"]


@pl.scorer("landscape_value", description="Reads value=X from the reply (test landscapes).")
def landscape_value():
    def score(ctx):
        m = re.search(r"value=([0-9.]+)", ctx.output)
        return float(m.group(1)) if m else 0.0

    return score


def reply(body):
    """Known landscape: persona p3 at temperature 0.6 is best; a little per-question noise."""
    t = float(body.get("temperature", 0.0))
    persona = body["messages"][0]["content"]
    q = body["messages"][-1]["content"]
    v = {"p1": 0.4, "p2": 0.5, "p3": 0.6, "p4": 0.45}[persona] + 0.3 * (1 - abs(t - 0.6))
    v += (sum(map(ord, q + persona)) % 7 - 3) * 0.005
    return f"value={max(0.0, min(1.0, v)):.4f}"


def _exp(base_url: str, name: str = "guided", **over) -> pl.Experiment:
    data = dict(
        project="tests", name=name, samples=[{"q": f"question {i}"} for i in range(9)],
        stages=[{"name": "answer", "model": "fake/fake-small", "system": "{{ persona }}", "user": "{{ q }}"}],
        space={"persona": PERSONAS, "answer.temperature": TEMPS}, scorers=[{"name": "landscape_value"}],
        endpoints={"fake": {"base_url": base_url}}, strategy="guided", seed=3, concurrency=8,
        guided={"max_configs": 12, "batch": 3, "startup": 4, "min_configs": 8, "patience": 1},
    )
    data.update(over)
    return pl.Experiment.model_validate(data)


@pytest.fixture
def landscape():
    return FakeModel(reply=reply)


@pytest.fixture
def landscape_server():
    """The landscape over HTTP, for a sweep in another process (the CLI)."""
    with FakeServer(reply=reply) as srv:
        yield srv


def test_guided_sweep_finds_the_best_with_fewer_calls(wb, landscape):
    progress = wb.run(_exp(landscape.base_url))
    grid_calls = len(PERSONAS) * len(TEMPS) * 9
    assert progress.calls < 0.75 * grid_calls
    assert progress.stop_reason in ("max_configs reached", "best separated from the rest", "space exhausted")
    best = wb.leaderboard("tests/guided").iloc[0]
    assert (best["persona"], best["answer.temperature"]) == ("p3", 0.6)
    [event] = wb.events("tests/guided", ["guided.finished"])
    assert event["payload"]["reason"] == progress.stop_reason
    # Early dropping: some configurations got only the first rung of samples.
    counts = wb.leaderboard("tests/guided")["n"]
    assert counts.min() < 9 <= counts.max()


def test_guided_sweep_from_yaml_and_cli(tmp_path, db, landscape_server):
    f = tmp_path / "g.yaml"
    data = _exp(landscape_server.base_url, name="guided-cli").model_dump(mode="json", exclude_none=True)
    data["scorers"] = [{"name": "keyword", "words": ["value=0.9"]}]  # a built-in: the CLI process has no test scorers
    f.write_text(yaml.safe_dump(data))
    res = subprocess.run([sys.executable, "-m", "promptlooper.cli", "--db", db, "run", str(f), "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "search stopped:" in res.stdout and "completed:" in res.stdout


def test_guided_sweep_resumes_from_the_store(wb, landscape):
    exp = _exp(landscape.base_url, name="resume", guided={"max_configs": 6, "batch": 3, "startup": 4, "stop_when_separated": False})
    first = wb.run(exp)
    assert first.stop_reason == "max_configs reached"
    board = wb.leaderboard(exp.key)
    tried_first = {(row["persona"], row["answer.temperature"]) for _, row in board.iterrows()}
    assert len(tried_first) == 6
    landscape.reset()
    # Running it again with a larger budget: the study is rebuilt from the store, nothing repeats.
    more = exp.model_copy(update={"guided": exp.guided.model_copy(update={"max_configs": 12})})
    second = wb.run(more)
    assert second.calls == landscape.stats()["completions"] > 0
    for body in landscape.stats()["bodies"]:
        assert (body["messages"][0]["content"], body.get("temperature", 0.0)) not in tried_first
    runs = wb.runs(exp.key, limit=1000)
    assert len({r["id"] for r in runs}) == len(runs)
    assert len(wb.leaderboard(exp.key)) == 12


def test_ask_evaluate_tell_loop_reaches_the_best(wb, landscape):
    exp = _exp(landscape.base_url, name="asktell", strategy="grid")
    wb.register(exp)
    asked_ids: set[str] = set()
    for _ in range(6):
        proposals = wb.ask(exp, n=2)
        assert len(proposals) == 2 and not ({p["config_id"] for p in proposals} & asked_ids)
        asked_ids |= {p["config_id"] for p in proposals}
        results = wb.evaluate(exp, [p["point"] for p in proposals])
        assert all(r["n"] == 9 and r["score"] is not None for r in results)
    # The driver may also propose (and score) its own configurations.
    told = wb.tell(exp, {"persona": "p3", "answer.temperature": 0.6}, 0.95)
    assert wb.ask(exp, n=1)[0]["config_id"] != told["config_id"]  # known configurations are not asked again
    mine = wb.evaluate(exp, [{"persona": "p3", "answer.temperature": 0.6}])[0]
    board = wb.leaderboard(exp)
    assert board.iloc[0]["full_config_id"] == mine["config_id"]
    with pytest.raises(pl.SpecError):
        wb.evaluate(exp, [{"answer.temperature": 7.0}])
    with pytest.raises(ValueError):
        wb.tell(exp, mine["config_id"][:10], 1.5)


def _lucky_leader_reply():
    """A leader whose mean (0.6) is more than it has surely earned, and a late best whose first
    rung of samples happens to be poor: the first five requests for "late" score about 0.52 (95%
    upper bound 0.554), every later one 0.9, so over all twelve samples it is the best (0.742)."""
    late_calls = itertools.count()  # the server answers on one event loop: no lock needed

    def reply(body):
        persona = body["messages"][0]["content"]
        i = int(body["messages"][-1]["content"].rsplit(" ", 1)[1])
        if persona == "lead":
            v = 0.5 if i % 2 == 0 else 0.7  # mean 0.6, 95% interval 0.534..0.666 over 12 samples
        else:
            k = next(late_calls)
            v = [0.5, 0.55, 0.5, 0.55, 0.5][k] if k < 5 else 0.9
        return f"value={v:.4f}"

    return reply


def test_early_dropping_does_not_trust_a_lucky_leader(wb):
    model = FakeModel(reply=_lucky_leader_reply())
    exp = _exp(model.base_url, name="lucky", samples=[{"q": f"question {i}"} for i in range(12)],
               space={"persona": ["lead", "late"]}, guided={"startup": 1, "batch": 1})
    [lead] = wb.evaluate(exp, [{"persona": "lead"}])  # the leader: measured on every sample first
    assert lead["n"] == 12 and lead["score"] == pytest.approx(0.6)
    progress = wb.run(exp)
    # The first rung (5 samples) of "late" ends below the leader's mean but not below what the
    # leader has surely earned (its interval's lower bound), so it must get every sample.
    board = wb.leaderboard(exp.key)
    top = board.iloc[0]
    assert top["persona"] == "late", board[["persona", "score", "n"]].to_string()
    assert top["n"] == 12 and top["score"] == pytest.approx(0.7417, abs=1e-3)
    [event] = wb.events(exp.key, ["guided.finished"])
    assert event["payload"]["best_config_id"] == top["full_config_id"]
    assert progress.stop_reason in ("space exhausted", "max_configs reached", "max_calls reached")


def test_a_leading_candidate_left_without_samples_gets_them_before_a_winner(wb):
    """The first sweep's calls for "late" beyond its first rung fail (endpoint down, no retries);
    run again, the search completes it before declaring a winner, instead of leaving a candidate
    whose interval still reaches the leader on 5 of 12 samples."""
    reply = _lucky_leader_reply()
    down = {"late": True}

    def flaky(body):
        text = reply(body)
        if body["messages"][0]["content"] == "late" and down["late"] and "0.9" in text:
            raise RuntimeError("endpoint down")  # the fake answers 500
        return text

    model = FakeModel(reply=flaky)
    exp = _exp(model.base_url, name="resumed", samples=[{"q": f"question {i}"} for i in range(12)],
               space={"persona": ["lead", "late"]}, guided={"startup": 1, "batch": 1},
               # breaker_failures: these failures are one configuration's, not an endpoint outage
               # that should pause the sweep (see test_failures.py for that)
               endpoints={"fake": {"base_url": model.base_url, "max_retries": 0, "breaker_failures": 1000}})
    wb.evaluate(exp, [{"persona": "lead"}])
    wb.run(exp)
    ns = dict(zip(wb.leaderboard(exp.key)["persona"], wb.leaderboard(exp.key)["n"], strict=True))
    assert ns == {"lead": 12, "late": 5}
    down["late"] = False
    wb.run(exp)  # the same search again: it resumes from the store
    top = wb.leaderboard(exp.key).iloc[0]
    assert (top["persona"], top["n"]) == ("late", 12) and top["score"] == pytest.approx(0.7417, abs=1e-3)
    finished = wb.events(exp.key, ["guided.finished"])
    assert finished[-1]["payload"]["best_config_id"] == top["full_config_id"]


def test_a_pass_fail_candidate_that_failed_its_first_rung_is_not_surely_below(wb):
    """Pass/fail scores: "late" fails its first five samples, then passes all the rest (7 of 12
    overall); the leader passes 6 of 12. Five failures in a row bound the pass rate below 0.44 at
    95%, not at 0 (Student's t interval collapses to a point when every value is the same)."""
    late_calls = itertools.count()

    def reply(body):
        i = int(body["messages"][-1]["content"].rsplit(" ", 1)[1])
        if body["messages"][0]["content"] == "lead":
            return "value=1" if i % 2 == 0 else "value=0"
        return "value=0" if next(late_calls) < 5 else "value=1"

    model = FakeModel(reply=reply)
    exp = _exp(model.base_url, name="passfail", samples=[{"q": f"question {i}"} for i in range(12)],
               space={"persona": ["lead", "late"]}, guided={"startup": 1, "batch": 1})
    wb.evaluate(exp, [{"persona": "lead"}])
    wb.run(exp)
    top = wb.leaderboard(exp.key).iloc[0]
    assert (top["persona"], top["n"]) == ("late", 12) and top["score"] == pytest.approx(7 / 12)
