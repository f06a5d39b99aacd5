"""Re-scoring finished runs from stored outputs: no model call, except judges missing from the cache."""

from __future__ import annotations

import sqlite3

import pytest
from helpers import fake_experiment

import promptlooper as pl
from promptlooper.ratings import rate
from promptlooper.rescoring import rescore
from promptlooper.testing import FakeServer
from promptlooper.testing.fake_server import default_reply


def reply(body):
    text = body["messages"][-1]["content"]
    if "Rate the RESPONSE" in text:
        return f"Score: {len(text) % 5 + 1}"
    return default_reply(body)


@pytest.fixture
def swept(wb):
    with FakeServer(reply=reply) as srv:
        exp = fake_experiment(srv.base_url)
        wb.run(exp)
        srv.reset()
        yield exp, srv


def _scores(db, label):
    with sqlite3.connect(db) as c:
        return dict(c.execute("SELECT run_id, value FROM scores WHERE scorer = ?", (label,)).fetchall())


def test_rescore_with_new_scorers_makes_zero_calls(wb, swept, db):
    exp, srv = swept
    pl.register_function("word_share", lambda output, sample: float(sample["reference"] in output.split()))
    summary = rescore(wb.store, exp.key, [{"name": "contains", "field": "reference"}, {"name": "embedding", "field": "reference"},
                                    {"name": "python", "function": "word_share"}, {"name": "length", "max_words": 3, "label": "short"}])
    assert srv.stats()["requests"] == 0
    assert summary["runs"] == 12 and summary["scores"] == 48 and summary["calls"] == 0 and summary["missing_sample"] == 0
    for label in ("contains", "embedding", "python", "short"):
        assert len(_scores(db, label)) == 12
    # the runs' own outputs were scored: `short` agrees with the word counts of runs.output
    with sqlite3.connect(db) as c:
        outputs = dict(c.execute("SELECT id, output FROM runs").fetchall())
    short = _scores(db, "short")
    for run_id, text in outputs.items():
        n = len(text.split())
        assert short[run_id] == pytest.approx(1.0 if n <= 3 else max(0.0, 1 - (n - 3) / 3))
    board = wb.leaderboard(exp.key)
    assert {"contains", "embedding", "python", "short", "length", "keyword"} <= set(board.columns)


def test_judge_calls_come_from_the_cache_the_second_time(wb, swept, db):
    exp, srv = swept
    first = rescore(wb.store, exp.key, [{"name": "judge", "model": "fake/fake-small"}])
    assert first["calls"] == 12 and srv.stats()["completions"] == 12
    values = _scores(db, "judge")
    srv.reset()
    second = rescore(wb.store, exp.key, [{"name": "judge", "model": "fake/fake-small"}])
    assert srv.stats()["requests"] == 0 and second["calls"] == 0 and second["cache_hits"] == 12
    assert _scores(db, "judge") == values
    srv.reset()
    free = rescore(wb.store, exp.key, [{"name": "judge", "model": "fake/fake-small"}, {"name": "json"}], model_calls=False)
    assert free["skipped_scorers"] == ["judge"] and free["scores"] == 12 and srv.stats()["requests"] == 0


def test_rescore_with_the_experiments_own_scorers_updates_scores_and_drops_stale_ones(wb, swept, db):
    exp, srv = swept
    rescore(wb.store, exp.key, [{"name": "json"}])
    assert len(_scores(db, "json")) == 12
    changed = exp.model_copy(update={"scorers": [pl.ScorerSpec(name="length", args={"max_words": 2}, weight=1)]})
    wb.register(changed)
    rid = wb.runs(exp.key)[0]["id"]
    rate(wb.store, rid, thumbs="up")
    summary = rescore(wb.store, exp.key)
    assert srv.stats()["requests"] == 0 and summary["scorers"] == ["length"]
    assert _scores(db, "json") == {} and _scores(db, "keyword") == {}  # no longer in the experiment
    assert _scores(db, "human_thumbs") == {rid: 1.0}  # never touched
    with sqlite3.connect(db) as c:
        run_scores = dict(c.execute("SELECT id, score FROM runs").fetchall())
    assert run_scores == pytest.approx(_scores(db, "length"))  # the weighted score is the only scorer's
    board = wb.leaderboard(exp.key)
    assert "keyword" not in board.columns and board["score"].is_monotonic_decreasing


def test_runs_whose_sample_is_gone_are_skipped(wb, swept):
    exp, _ = swept
    summary = rescore(wb.store, exp.key, ["json"], samples=[{"question": "capital of France", "reference": "paris"}])
    assert summary["runs"] == 4 and summary["missing_sample"] == 8


def test_bad_scorer_specs_are_refused_before_anything_runs(wb, swept):
    exp, srv = swept
    with pytest.raises(pl.SpecError, match=r"scorers\[0\].name"):
        rescore(wb.store, exp.key, [{"name": "nope"}])
    with pytest.raises(pl.SpecError, match=r"scorers\[0\].feild"):
        rescore(wb.store, exp.key, [{"name": "contains", "feild": "x"}])
    assert srv.stats()["requests"] == 0
