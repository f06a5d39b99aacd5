"""Human ratings: thumbs and stars stored as human scores, validated, kept across re-runs."""

from __future__ import annotations

import pytest
from helpers import db_rows

from promptlooper import NotFoundError
from promptlooper.ratings import RatingError, rate, ratings, unrate

pytestmark = pytest.mark.both_backends  # each test on a SQLite file and on PostgreSQL (tests/conftest.py)


@pytest.fixture
def runs(wb, make_fake_exp):
    exp = make_fake_exp()
    wb.run(exp)
    return exp, wb.runs(exp.key)


def test_rate_stores_human_scores(wb, runs, db):
    exp, rs = runs
    out = rate(wb.store, rs[0]["id"][:10], thumbs="up", stars=4, comment="clear", by="ana")
    assert out == {"run_id": rs[0]["id"], "thumbs": "up", "stars": 4, "comment": "clear", "by": "ana", "rated_at": out["rated_at"]}
    rows = dict(db_rows(db, "SELECT scorer, value FROM scores WHERE source = 'human' AND run_id = ?", rs[0]["id"]))
    names = {r[0] for r in db_rows(db, "SELECT scorer_name FROM scores WHERE source = 'human'")}
    assert rows == {"human_thumbs": 1.0, "human_stars": 0.75} and names == {"human_rating"}
    rate(wb.store, rs[1]["id"], thumbs="down", stars=1)
    assert ratings(wb.store, rs[1]["id"])["thumbs"] == "down"
    detail = {s["scorer"]: s for s in wb.run_detail(rs[1]["id"])["scores"]}
    assert detail["human_thumbs"]["value"] == 0.0 and detail["human_stars"]["value"] == 0.0
    assert detail["human_stars"]["metadata"]["raw"] == 1 and detail["human_stars"]["source"] == "human"
    assert [e["payload"]["stars"] for e in wb.events(exp.key, types=["run.rated"])] == [4, 1]


def test_partial_rating_keeps_the_rest(wb, runs):
    _, rs = runs
    rid = rs[0]["id"]
    rate(wb.store, rid, thumbs="down", comment="wrong")
    rate(wb.store, rid, stars=5, comment="actually fine", by="bo")
    got = ratings(wb.store, rid)
    assert got["thumbs"] == "down" and got["stars"] == 5 and got["comment"] == "actually fine" and got["by"] == "bo"
    assert unrate(wb.store, rid, thumbs=False) == 1
    assert ratings(wb.store, rid)["stars"] is None and ratings(wb.store, rid)["thumbs"] == "down"
    assert ratings(wb.store, rs[2]["id"]) == {"run_id": rs[2]["id"], "thumbs": None, "stars": None, "comment": "", "by": "", "rated_at": None}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "give thumbs='up' or 'down', or stars from 1 to 5"),
    ({"thumbs": "yes"}, "thumbs must be 'up' or 'down', not 'yes'"),
    ({"stars": 6}, "stars must be a whole number from 1 to 5, not 6"),
    ({"stars": 0}, "not 0"),
    ({"stars": 2.5}, "not 2.5"),
    ({"stars": True}, "not True"),
    ({"thumbs": "up", "comment": 3}, "comment and by must be text"),
])
def test_invalid_ratings_say_what_is_allowed(wb, runs, kwargs, message):
    with pytest.raises(RatingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rate(wb.store, runs[1][0]["id"], **kwargs)


def test_unknown_and_unfinished_runs(wb, runs, db):
    with pytest.raises(NotFoundError, match="not found"):
        rate(wb.store, "ffffffffffff", thumbs="up")
    rid = runs[1][0]["id"]
    db_rows(db, "UPDATE runs SET status = 'failed' WHERE id = ?", rid)
    with pytest.raises(RatingError, match="is failed; only finished runs"):
        rate(wb.store, rid, thumbs="up")


def test_ratings_survive_a_rerun_and_show_in_the_leaderboard(wb, runs, make_fake_exp):
    exp, rs = runs
    before = wb.leaderboard(exp.key).set_index("full_config_id")["score"]
    for r in rs:
        rate(wb.store, r["id"], stars=5 if r["config_id"] == rs[0]["config_id"] else 1)
    wb.run(make_fake_exp())  # resumes: nothing to run, nothing rewritten
    board = wb.leaderboard(exp.key).set_index("full_config_id")
    assert board.loc[rs[0]["config_id"], "human_stars"] == 1.0
    assert (board.drop(rs[0]["config_id"])["human_stars"] == 0.0).all()
    # weight 0 (the experiment gives human columns none): the weighted score is unchanged
    assert board["score"].sort_index().tolist() == pytest.approx(before.sort_index().tolist())
