"""Charts carry figures, not plotly.js: the library is sent on request, gzipped, as one buffer."""

from __future__ import annotations

import gzip
import json

import pandas as pd

from promptlooper.ui.charts import score_vs_cost, score_vs_params
from promptlooper.ui.plotly_chart import PlotlyChart


def board(cost: float = 0.00015) -> pd.DataFrame:
    return pd.DataFrame([
        {"rank": 1, "config_id": "aaa", "answer.temperature": 0.0, "score": 0.8, "ci_low": 0.6, "ci_high": 1.0, "n": 3,
         "tokens": 30, "cost": cost, "latency_ms": 10.0, "full_config_id": "aaa" * 8},
        {"rank": 2, "config_id": "bbb", "answer.temperature": 0.5, "score": 0.5, "ci_low": 0.3, "ci_high": 0.7, "n": 3,
         "tokens": 20, "cost": cost / 2, "latency_ms": 12.0, "full_config_id": "bbb" * 8},
    ])


def test_chart_state_is_the_figure_and_the_library_comes_on_request():
    chart = PlotlyChart(score_vs_cost(board()))
    state = chart.get_state()
    size = len(json.dumps(state["figure"])) + len(str(state["_esm"])) + len(str(state["_css"]))
    assert size < 50_000  # plotly's FigureWidget carries 4.96 MB in every instance
    sent: list[tuple[dict, list]] = []
    chart.send = lambda content, buffers=None: sent.append((content, buffers))  # the comm's outbox
    assert chart.handle_message({"action": "plotly_library"})
    (content, buffers), = sent
    assert content == {"plotly": "gzip"} and len(buffers) == 1
    assert 1_000_000 < len(buffers[0]) < 2_000_000
    assert b"plotly" in gzip.decompress(buffers[0])[:2000].lower()
    chart.close()


def test_cost_axis_is_in_dollars_and_one_group_has_no_legend():
    fig = score_vs_cost(board())
    assert fig.layout.xaxis.tickprefix == "$" and fig.layout.xaxis.exponentformat == "none"
    params = score_vs_params(board())
    assert not any(t.showlegend for t in params.data)  # one colour: no meaningless "all" legend


def test_leaderboard_rows_reach_the_page_without_raw_values(done):
    from promptlooper.ui.leaderboard import Leaderboard

    wb, exp = done
    board = Leaderboard(wb, exp, live=False, readonly=False)
    sent = board.get_state(key="table")["table"]["rows"]
    assert len(sent) == 4 and all("values" not in r and r["cells"] for r in sent)
    assert all("values" in r for r in board.rows)  # Python still sorts by them
    board.close()


def test_hidden_charts_hold_their_updates_until_shown():
    chart = PlotlyChart(score_vs_cost(board()))
    first = chart.figure
    assert first["data"]  # the state a page (or a saved notebook) starts from
    chart.update(score_vs_cost(board(cost=0.5)))
    assert chart.figure == first  # not shown anywhere: nothing sent
    assert chart.handle_message({"action": "visible", "on": True})
    assert chart.figure != first and chart.figure["data"][0]["x"][0] == 0.5
    chart.update(score_vs_cost(board(cost=0.7)))
    assert chart.figure["data"][0]["x"][0] == 0.7  # shown: sent at once
    chart.close()


def test_long_prompt_labels_are_cut_to_fit():
    frame = board()
    frame.insert(2, "persona", ["You are a meticulous assistant who always answers in full sentences", "terse"])
    labels = [x for t in score_vs_params(frame).data for x in t.x if isinstance(x, str)]
    assert labels and all(len(x) <= 28 for x in labels) and any(x.endswith("…") for x in labels)
