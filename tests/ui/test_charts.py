from __future__ import annotations

import math

import pandas as pd

from promptlooper.ui.charts import (
    Charts,
    figures,
    model_keys,
    pareto_front,
    score_distribution,
    score_vs_cost,
    score_vs_params,
)


def test_pareto_front_keeps_what_nothing_beats():
    costs = [1.0, 2.0, 2.0, 3.0, 0.5, 4.0, math.nan]
    scores = [0.5, 0.7, 0.6, 0.7, 0.2, 0.9, 1.0]
    assert pareto_front(costs, scores) == [4, 0, 1, 5]  # by cost; 2 and 3 are beaten, NaN ignored
    assert pareto_front([], []) == []


def test_model_keys():
    assert model_keys(["answer.model", "persona", "model", "answer.temperature"]) == ["answer.model", "model"]


def board() -> pd.DataFrame:
    rows = []
    for i, (model, t) in enumerate([("a", 0.0), ("a", 0.5), ("b", 0.0), ("b", 0.5)]):
        rows.append({"rank": i + 1, "config_id": f"c{i}", "answer.model": model, "answer.temperature": t, "score": 0.2 * i,
                     "ci_low": 0.1 * i, "ci_high": min(1, 0.3 * i), "n": 3, "distinguishable": False, "length": 0.5,
                     "tokens": 10 * (i + 1), "cost": 0.0, "latency_ms": 5.0, "failed": 0, "decision": "", "full_config_id": f"c{i}" * 8})
    return pd.DataFrame(rows)


def test_figures_from_a_leaderboard():
    fig = score_vs_params(board())
    assert [t.name for t in fig.data] == ["a", "b"]  # one colour per model, one panel per other parameter
    assert list(fig.data[0].x) == [0.0, 0.5] and list(fig.data[1].y) == [0.4, 0.6000000000000001]
    cost = score_vs_cost(board())
    assert cost.layout.xaxis.title.text == "tokens (no prices set)"
    assert [t.name for t in cost.data] == ["configurations", "Pareto front"] and len(cost.data[1].x) == 4
    runs = [{"config_id": "c1" * 8, "score": 0.1, "status": "completed"}, {"config_id": "c1" * 8, "score": 0.3, "status": "cached"},
            {"config_id": "c1" * 8, "score": 0.9, "status": "failed"}]
    dist = figures(board(), runs)["Distribution"]
    assert [list(t.y) for t in dist.data][1] == [0.1, 0.3] and len(dist.data) == 4


def test_charts_widget_updates_in_place(done):
    wb, exp = done
    charts = Charts(wb, exp, live=False)
    widgets = dict(charts.figures)
    assert set(widgets) == {"Score vs parameters", "Distribution", "Score vs cost"}
    assert len(widgets["Distribution"].data) == 4
    charts.refresh()
    assert charts.figures == widgets and len(widgets["Score vs cost"].data) == 2
    charts.close()


def test_patch_changes_data_in_place_or_says_it_cannot():
    import plotly.graph_objects as go

    from promptlooper.ui.charts import patch

    fw = go.FigureWidget(score_vs_cost(board()))
    later = board()
    later.loc[0, "score"] = 0.95
    assert patch(fw, score_vs_cost(later))
    assert fw.data[0].y[0] == 0.95
    assert not patch(fw, score_distribution(board(), []))  # four boxes instead of two scatters: replace
