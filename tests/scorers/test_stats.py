"""Rankings you can trust: intervals, paired comparisons with known answers, distinguishability, calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import fake_experiment

import promptlooper as pl
from promptlooper import intervals, stats
from promptlooper.leaderboard import leaderboard
from promptlooper.ratings import rate
from promptlooper.rescoring import rescore
from promptlooper.testing import FakeModel
from promptlooper.testing.fake_server import default_reply

pytestmark = pytest.mark.both_backends  # each test on a SQLite file and on PostgreSQL (tests/conftest.py)

# Per-sample scores each persona will get, by construction (through a python scorer).
A = [0.5, 0.6, 0.7, 0.8, 0.9]
B = [0.4, 0.4, 0.4, 0.7, 0.6]  # A - B = [.1, .2, .3, .1, .3]: mean .2, sd .1
C = [0.54, 0.54, 0.75, 0.75, 0.88]  # A - C averages -0.008 with a large spread: not distinguishable


def table_score(sample, run):
    return sample["scores"][run["varied"]["persona"]]


@pytest.fixture
def controlled(wb, fake):
    pl.register_function("table_score", table_score)
    samples = [{"question": f"q{i}", "scores": {"a": A[i], "b": B[i], "c": C[i]}} for i in range(5)]
    exp = fake_experiment(fake.base_url, name="controlled", samples=samples, space={"persona": ["a", "b", "c"]},
                          scorers=[{"name": "python", "function": "table_score"}])
    wb.run(exp)
    ids = {c["varied"]["persona"]: c["id"] for c in wb.store.configurations(wb.experiment(exp.key)["id"])}
    return exp, ids


def test_paired_t_known_answer():
    r = stats.paired(np.array(A), np.array(B))
    assert r.n == 5 and r.mean_diff == pytest.approx(0.2)
    assert r.t == pytest.approx(4.47213595) and r.p_value == pytest.approx(0.0110565, abs=1e-6)
    assert (r.ci_low, r.ci_high) == pytest.approx((0.2 - 0.1241664, 0.2 + 0.1241664), abs=1e-6)
    same = stats.paired(np.array(A), np.array(A))
    assert same.p_value == 1.0 and same.mean_diff == 0.0 and same.ci_low == same.ci_high == 0.0
    shifted = stats.paired(np.array(A), np.array(A) - 0.1)
    assert shifted.p_value == 0.0 and shifted.ci_low == pytest.approx(0.1)
    assert math.isnan(stats.paired(np.array([0.5]), np.array([0.1])).p_value)


def test_compare_two_configurations_end_to_end(wb, controlled):
    exp, ids = controlled
    out = stats.compare(wb.store, exp.key, ids["a"][:8], ids["b"][:8])
    assert out["n"] == 5 and out["config_a"] == ids["a"] and out["config_b"] == ids["b"]
    assert out["mean_diff"] == pytest.approx(0.2) and out["p_value"] == pytest.approx(0.0110565, abs=1e-6)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((0.0758336, 0.3241664), abs=1e-6)
    assert out["significant"] is True and out["better"] == "a" and out["only_a"] == out["only_b"] == 0
    close = stats.compare(wb.store, exp.key, "best", ids["c"])
    assert close["config_a"] == ids["a"] and close["significant"] is False and close["better"] is None
    assert close["p_value"] > 0.5
    by_rank = stats.compare(wb.store, exp.key, 1, 3, scorer="python")
    assert by_rank["config_b"] == ids["b"] and by_rank["metric"] == "python"
    with pytest.raises(KeyError, match="no scorer column 'nope'"):
        stats.compare(wb.store, exp.key, 1, 2, scorer="nope")
    with pytest.raises(pl.NotFoundError, match="no configuration ranked 9"):
        stats.compare(wb.store, exp.key, 1, 9)


def test_leaderboard_marks_what_is_distinguishable_from_the_best(wb, controlled):
    exp, ids = controlled
    board = wb.leaderboard(exp.key).set_index("full_config_id")
    assert board.loc[ids["a"], "distinguishable"] == "best"
    assert board.loc[ids["b"], "distinguishable"] == "yes"
    assert board.loc[ids["c"], "distinguishable"] == "no"
    assert list(board["rank"]) == [1, 2, 3]


def test_too_few_shared_samples_are_never_distinguishable(wb, fake):
    pl.register_function("table_score", table_score)
    samples = [{"question": f"q{i}", "scores": {"a": 1.0, "b": 0.0}} for i in range(2)]
    exp = fake_experiment(fake.base_url, name="tiny", samples=samples, space={"persona": ["a", "b"]},
                          scorers=[{"name": "python", "function": "table_score"}])
    wb.run(exp)
    board = wb.leaderboard(exp.key)
    assert list(board["distinguishable"]) == ["best", "no"]  # 2 shared samples: too few to tell


def test_bootstrap_interval(wb, controlled):
    values = np.array(A)
    low, high = intervals.bootstrap_interval(values)
    assert low < values.mean() < high and 0.5 <= low and high <= 0.9
    assert intervals.bootstrap_interval(values) == (low, high)  # seeded
    t_low, t_high = intervals.t_interval(values)
    assert high - low < t_high - t_low  # percentile bootstrap is narrower on 5 values
    assert all(math.isnan(x) for x in intervals.bootstrap_interval(np.array([0.3])))
    exp, ids = controlled
    experiment = wb.experiment(exp.key)
    board = leaderboard(wb.store, experiment, interval="bootstrap").set_index("full_config_id")
    boot_low, boot_high = board.loc[ids["a"], "ci_low"], board.loc[ids["a"], "ci_high"]
    assert 0.5 <= boot_low < 0.7 < boot_high <= 0.9 and boot_high - boot_low < t_high - t_low
    assert board.loc[ids["a"], "distinguishable"] == "best"
    with pytest.raises(ValueError, match="interval must be"):
        leaderboard(wb.store, experiment, interval="magic")


def test_cohen_kappa_known_values():
    assert stats.cohen_kappa([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(0.5)
    assert stats.cohen_kappa([1, 0, 1, 0], [1, 0, 1, 0]) == 1.0
    assert stats.cohen_kappa([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)
    assert stats.cohen_kappa([1, 1], [1, 1]) == 1.0


def _judge_reply(body):
    text = body["messages"][-1]["content"]
    if "Rate the RESPONSE" in text:
        return "I cannot say" if "tokyo" in text.lower() else f"Score: {len(text) % 5 + 1}"
    return default_reply(body)


def test_calibration_against_human_ratings(wb):
    model = FakeModel(reply=_judge_reply)
    exp = fake_experiment(model.base_url, name="calib")
    wb.run(exp)
    rescore(wb.store, exp.key, [{"name": "judge", "model": "fake/fake-small"}])
    assert stats.calibration(wb.store, exp.key).empty  # nobody rated anything yet
    rated = 0
    for run in wb.runs(exp.key):
        judge = next(s for s in wb.run_detail(run["id"])["scores"] if s["scorer"] == "judge")
        if "raw" not in judge["metadata"]:
            continue  # the judge gave no score: left out of calibration even if rated
        raw = int(judge["metadata"]["raw"])
        rate(wb.store, run["id"], stars=raw, thumbs="up" if raw >= 3 else "down")  # people agree with the judge
        rated += 1
    for run in wb.runs(exp.key):  # rating the unscored runs changes nothing
        if wb.run_detail(run["id"])["scores"][0]["metadata"].get("error"):
            rate(wb.store, run["id"], stars=5, thumbs="up")
    table = stats.calibration(wb.store, exp.key).set_index("human")
    assert list(table["judge"]) == ["judge", "judge"] and (table["n"] == rated).all() and rated == 8
    assert table.loc["human_stars", "spearman_rho"] == pytest.approx(1.0)
    assert table.loc["human_stars", "kappa"] == 1.0 and table.loc["human_thumbs", "agreement"] == 1.0
    assert table.loc["human_thumbs", "kappa"] == 1.0
    for run in wb.runs(exp.key):  # now people disagree: the opposite ranking
        judge = next(s for s in wb.run_detail(run["id"])["scores"] if s["scorer"] == "judge")
        if "raw" in judge["metadata"]:
            rate(wb.store, run["id"], stars=6 - int(judge["metadata"]["raw"]))
    table = stats.calibration(wb.store, exp.key).set_index("human")
    assert table.loc["human_stars", "spearman_rho"] == pytest.approx(-1.0)
    assert table.loc["human_stars", "kappa"] < 0
    assert set(stats.calibration(wb.store, exp.key, scorers=["length"])["judge"]) == {"length"}
