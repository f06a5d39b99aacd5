"""A judge's grade is read strictly first and robustly after; a reply with no grade is a missing score, never 0."""

from __future__ import annotations

import asyncio

import pytest
from helpers import db_rows, fake_experiment

from promptlooper.scorers import build
from promptlooper.scorers.env import ScoringEnv, using
from promptlooper.scorers.judge import parse_score
from promptlooper.testing import FakeModel, FakeServer
from promptlooper.testing.fake_server import default_reply


@pytest.mark.parametrize(("reply", "scale", "expected"), [
    ("1. The answer is 5, because it names the city.", (1, 5), 5),  # a list marker is not a grade
    ("1. Accurate.\n2. Concise.\nScore: 4", (1, 5), 4),
    ('{"score": 3, "reason": "partly right"}', (1, 5), 3),
    ('```json\n{"reasoning": "2 facts wrong", "Score": 2}\n```', (1, 5), 2),
    ("A score of 5 would need a source. Score: 3", (1, 5), 3),  # the verdict comes last
    ("Step 1: check the facts. Step 2: weigh them. Score: 2", (1, 5), 2),
    ("On a scale of 1-5, this deserves a 4.", (1, 5), 4),
    ("Rating: 8 out of 10", (0, 10), 8),
    ("Score: 4/5", (1, 5), 4),
    ("4\n\nIt names 1 city out of the 2 asked for.", (1, 5), 4),  # the grade first, then reasons with numbers
    ("4\n\nA score of 5 would need a source.", (1, 5), 4),
    ("A score of 5 would need a source; I give it 3/5.", (1, 5), 3),
    ("**Final score:** 2/5", (1, 5), 2),
    ("I'd give it a 4, maybe 3.", (1, 5), None),  # two candidates: no grade
    ("Score: 10", (1, 5), None),  # a grade outside the scale is not read as another number
    ("4/10", (1, 5), None),  # a fraction of another scale
    ("It is quite good.", (1, 5), None),
])
def test_grade_reading(reply, scale, expected):
    assert parse_score(reply, *scale) == expected


def judge_once(args, db, ctx):
    fn = build("judge", args)

    async def go():
        env = ScoringEnv(store_path=db)
        with using(env):
            try:
                return await fn(ctx)
            finally:
                await env.aclose()

    return asyncio.run(go())


def test_the_judge_asks_for_a_strict_form_and_a_reply_without_a_grade_is_missing(tmp_path):
    from promptlooper.scorers import ScoreContext

    bodies = []
    ctx = ScoreContext(output="Paris.", sample={"reference": "Paris"}, input="Capital of France?")
    with FakeServer(reply=lambda body: bodies.append(body) or "It is quite good.") as srv:
        result = judge_once({"model": "fake/fake-small", "base_url": srv.base_url}, str(tmp_path / "j.db"), ctx)
    prompt = bodies[0]["messages"][-1]["content"]
    assert '"Score: N"' in prompt and "from 1 to 5" in prompt
    assert result.value is None  # not 0: the judge said nothing about the output
    assert "no grade from 1 to 5" in result.detail["error"] and result.detail["reply"] == "It is quite good."


def judge_reply(body):
    text = body["messages"][-1]["content"]
    if "Rate the RESPONSE" not in text:
        return default_reply(body)
    return "I would rather not say." if "France" in text else "Score: 5"


@pytest.mark.both_backends  # a missing grade is NULL in a SQLite file and in PostgreSQL
def test_missing_grades_are_left_out_of_the_mean_and_counted(wb, db):
    model = FakeModel(reply=judge_reply)
    exp = fake_experiment(model.base_url, space={}, scorers=[{"name": "judge", "model": "fake/fake-small"}])
    progress = wb.run(exp)
    assert progress.failed == 0
    board = wb.leaderboard(exp.key)
    row = board.iloc[0]
    # Two samples graded 5 (1.0 on 0..1); the France sample has no grade: it is not a 0.
    assert row["judge"] == 1.0 and row["score"] == 1.0 and row["n"] == 2
    assert row["missing"] == 1
    values = sorted(db_rows(db, "SELECT value FROM scores WHERE scorer = 'judge'"), key=lambda r: r[0] is None)
    assert values == [(1.0,), (1.0,), (None,)]
