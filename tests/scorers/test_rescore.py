"""Re-scoring finished runs from stored outputs: no model call, except judges missing from the cache."""

from __future__ import annotations

import pytest
from helpers import db_rows, fake_experiment

import promptlooper as pl
from promptlooper.ratings import rate
from promptlooper.rescoring import rescore
from promptlooper.testing import FakeModel
from promptlooper.testing.fake_server import default_reply

pytestmark = pytest.mark.both_backends  # each test on a SQLite file and on PostgreSQL (tests/conftest.py)


def reply(body):
    text = body["messages"][-1]["content"]
    if "Rate the RESPONSE" in text:
        return f"Score: {len(text) % 5 + 1}"
    return default_reply(body)


@pytest.fixture
def swept(wb):
    fake = FakeModel(reply=reply)
    exp = fake_experiment(fake.base_url)
    wb.run(exp)
    fake.reset()
    return exp, fake


def _scores(db, label):
    return dict(db_rows(db, "SELECT run_id, value FROM scores WHERE scorer = ?", label))


def test_rescore_with_new_scorers_makes_zero_calls(wb, swept, db):
    exp, fake = swept
    pl.register_function("word_share", lambda output, sample: float(sample["reference"] in output.split()))
    summary = rescore(wb.store, exp.key, [{"name": "contains", "field": "reference"}, {"name": "embedding", "field": "reference"},
                                    {"name": "python", "function": "word_share"}, {"name": "length", "max_words": 3, "label": "short"}])
    assert fake.stats()["requests"] == 0
    assert summary["runs"] == 12 and summary["scores"] == 48 and summary["calls"] == 0 and summary["missing_sample"] == 0
    for label in ("contains", "embedding", "python", "short"):
        assert len(_scores(db, label)) == 12
    # the runs' own outputs were scored: `short` agrees with the word counts of runs.output
    outputs = dict(db_rows(db, "SELECT id, output FROM runs"))
    short = _scores(db, "short")
    for run_id, text in outputs.items():
        n = len(text.split())
        assert short[run_id] == pytest.approx(1.0 if n <= 3 else max(0.0, 1 - (n - 3) / 3))
    board = wb.leaderboard(exp.key)
    assert {"contains", "embedding", "python", "short", "length", "keyword"} <= set(board.columns)


def test_judge_calls_come_from_the_cache_the_second_time(wb, swept, db):
    exp, fake = swept
    first = rescore(wb.store, exp.key, [{"name": "judge", "model": "fake/fake-small"}])
    assert first["calls"] == 12 and fake.stats()["completions"] == 12
    values = _scores(db, "judge")
    fake.reset()
    second = rescore(wb.store, exp.key, [{"name": "judge", "model": "fake/fake-small"}])
    assert fake.stats()["requests"] == 0 and second["calls"] == 0 and second["cache_hits"] == 12
    assert _scores(db, "judge") == values
    fake.reset()
    free = rescore(wb.store, exp.key, [{"name": "judge", "model": "fake/fake-small"}, {"name": "json"}], model_calls=False)
    assert free["skipped_scorers"] == ["judge"] and free["scores"] == 12 and fake.stats()["requests"] == 0


def test_rescore_with_the_experiments_own_scorers_updates_scores_and_drops_stale_ones(wb, swept, db):
    exp, fake = swept
    rescore(wb.store, exp.key, [{"name": "json"}])
    assert len(_scores(db, "json")) == 12
    changed = exp.model_copy(update={"scorers": [pl.ScorerSpec(name="length", args={"max_words": 2}, weight=1)]})
    wb.register(changed)
    rid = wb.runs(exp.key)[0]["id"]
    rate(wb.store, rid, thumbs="up")
    summary = rescore(wb.store, exp.key)
    assert fake.stats()["requests"] == 0 and summary["scorers"] == ["length"]
    assert _scores(db, "json") == {} and _scores(db, "keyword") == {}  # no longer in the experiment
    assert _scores(db, "human_thumbs") == {rid: 1.0}  # never touched
    run_scores = dict(db_rows(db, "SELECT id, score FROM runs"))
    assert run_scores == pytest.approx(_scores(db, "length"))  # the weighted score is the only scorer's
    board = wb.leaderboard(exp.key)
    assert "keyword" not in board.columns and board["score"].is_monotonic_decreasing


def test_runs_whose_sample_is_gone_are_skipped(wb, swept):
    exp, _ = swept
    summary = rescore(wb.store, exp.key, ["json"], samples=[{"question": "capital of France", "reference": "paris"}])
    assert summary["runs"] == 4 and summary["missing_sample"] == 8


def test_bad_scorer_specs_are_refused_before_anything_runs(wb, swept):
    exp, fake = swept
    with pytest.raises(pl.SpecError, match=r"scorers\[0\].name"):
        rescore(wb.store, exp.key, [{"name": "nope"}])
    with pytest.raises(pl.SpecError, match=r"scorers\[0\].feild"):
        rescore(wb.store, exp.key, [{"name": "contains", "feild": "x"}])
    assert fake.stats()["requests"] == 0
