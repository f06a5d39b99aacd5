"""The compare and group-by views' Python side on real sweeps (a fork and its parent)."""

from __future__ import annotations

import pytest

from promptlooper.ui.compare_view import CompareView
from promptlooper.ui.groupby_view import GroupByView, bars
from promptlooper.ui.grouping_pivot import cell_text


@pytest.fixture
def forked(done):
    wb, exp = done
    fork = wb.fork(exp.key, changes={"persona": ["terse", "verbose"], "answer.temperature": [0.0, 0.9]}, name="views-fork")
    wb.run(fork)
    return wb, exp, fork


def test_a_fork_is_compared_with_its_parent_by_default(forked):
    wb, exp, fork = forked
    view = CompareView(wb, fork)
    assert view.names == {"a": fork.key, "b": exp.key}
    assert view.related == [{"name": exp.key, "relation": "parent"}]
    assert view.shared["shared_samples"] == 3
    assert len(view.boards["a"]) == 4 and len(view.boards["b"]) == 4
    shared = [r for r in view.boards["a"] if r["in_both"]]
    assert len(shared) == 2 and all("persona=" in r["params"] for r in shared)  # temperature 0.0 ran in both
    board = wb.compare_experiments(fork.key, exp.key)
    top = board[board.experiment == fork.key].iloc[0]
    assert view.boards["a"][0]["score"] == f"{top['score']:.3f}" and view.boards["a"][0]["rank"] == 1


def test_picking_one_configuration_per_side_gives_the_paired_comparison(forked):
    wb, exp, fork = forked
    view = CompareView(wb, exp, fork)  # the parent lists its fork
    assert view.related == [{"name": fork.key, "relation": "fork"}]
    a, b = view.boards["a"][0]["key"], view.boards["b"][-1]["key"]
    assert view.handle_message({"action": "pick", "side": "a", "config_id": a}) and view.pair == {}
    assert view.handle_message({"action": "pick", "side": "b", "config_id": b})
    expected = wb.compare_across(f"{exp.key}:{a}", f"{fork.key}:{b}")
    assert view.pair["n"] == expected["n"] == 3 and view.pair["mean_diff"] == f"{expected['mean_diff']:.3f}"
    assert view.pair["verdict"] in ("no significant difference", "A is better", "B is better")
    assert not view.handle_message({"action": "pick", "side": "a", "config_id": "nope"})
    assert not view.handle_message({"action": "against", "name": "tests/other"})


def test_an_experiment_without_relatives_needs_a_second_name(done):
    wb, exp = done
    with pytest.raises(ValueError, match="no parent and no fork"):
        CompareView(wb, exp)


def test_group_by_one_variable_bars_match_the_facade(done):
    wb, exp = done
    view = GroupByView(wb, exp, "persona")
    table = wb.group_by(exp.key, "persona")
    assert [b["key"] for b in view.bars] == table["persona"].tolist()
    assert view.bars[0]["mean"] == f"{table['mean'].iloc[0]:.3f}" and view.bars[0]["n"] == "6"
    assert all(0 <= b["x"] <= 1 for b in view.bars) and view.pivot == {}
    assert view.choices == ["answer.temperature", "persona", "config_id", "sample_id"]


def test_group_by_two_variables_gives_a_pivot(done):
    wb, exp = done
    view = GroupByView(wb, exp, "persona")
    assert view.handle_message({"action": "group", "by": ["persona", "answer.temperature"], "metric": "keyword"})
    assert view.metric == "keyword" and len(view.bars) == 4
    p = view.pivot
    assert (p["down"], p["across"], p["rows"], p["columns"]) == ("persona", "answer.temperature", ["terse", "verbose"], ["0", "0.5"])
    assert all(c.endswith("(n=3)") for row in p["cells"] for c in row)
    assert not view.handle_message({"action": "group", "by": ["persona", "persona"]})
    assert not view.handle_message({"action": "group", "by": ["persona"], "metric": "colour"})


def test_bar_scale_and_cell_text():
    import pandas as pd

    table = pd.DataFrame({"k": ["a", "b"], "n": [4, 1], "mean": [0.5, 0.25], "ci_low": [0.25, float("nan")],
                          "ci_high": [1.0, float("nan")]})
    got = bars(table, ["k"])
    assert [(b["x"], b["low"], b["high"]) for b in got] == [(0.5, 0.25, 1.0), (0.25, None, None)]
    assert cell_text(0.5, 0.25, 0.75, 4) == "0.500 ± 0.250 (n=4)" and cell_text(float("nan"), 0, 0, 0) == "–"


def test_group_by_and_sweep_plots_follow_a_running_sweep(wb, server, make_exp):
    import asyncio

    import plotly.graph_objects  # noqa: F401 - imported before the sweep starts, not while it runs

    from promptlooper.ui.sweep_plots_view import SweepPlots

    server.latency = 0.2  # 24 calls, 2 at a time: over two seconds
    exp = make_exp(space={"answer.temperature": [i / 10 for i in range(8)]}, concurrency=2)

    async def scenario() -> None:
        handle = wb.start(exp)
        while not wb.runs(exp.key, limit=1):
            await asyncio.sleep(0.05)
        group, plots = GroupByView(wb, exp, "answer.temperature"), SweepPlots(wb, exp)
        first_bars, first_points = len(group.bars), len(plots.charts["history"].fig.data[0].x)
        group.follow(handle, interval=0.1)
        plots.follow(handle, interval=0.1)
        await handle
        for _ in range(100):  # both loops end after their read that follows the sweep's end
            if group._loop_task.done() and plots._task.done():
                break
            await asyncio.sleep(0.1)
        assert first_bars < 8 and len(group.bars) == 8 and all(b["n"] == "3" for b in group.bars)
        assert first_points < 8 and len(plots.charts["history"].fig.data[0].x) == 8
        group.close()
        plots.close()

    asyncio.run(scenario())


def test_group_by_and_compare_export_their_tables(forked):
    import json

    wb, exp, fork = forked
    group = GroupByView(wb, exp, ["persona", "answer.temperature"])
    assert group.handle_message({"action": "export", "fmt": "json"})
    rows = json.loads(group.download["text"])
    assert group.download["name"] == "tests-fake-exp-by-persona-answer.temperature.json" and len(rows) == 4
    assert {"persona", "answer.temperature", "n", "mean", "ci_low", "ci_high"} <= set(rows[0])
    assert group.handle_message({"action": "export", "fmt": "report"}) and group.download["n"] == 2
    assert group.download["text"].startswith("# tests/fake-exp: score by persona x answer.temperature")
    assert group.download["text"].count("\n| ") == 1 + 4
    compare = CompareView(wb, fork)
    assert compare.handle_message({"action": "export", "fmt": "csv"})
    assert compare.download["name"] == "compare-tests-views-fork-vs-tests-fake-exp.csv"
    assert len(compare.download["text"].strip().splitlines()) == 1 + 4 + 4
    assert not compare.handle_message({"action": "export", "fmt": "pdf"}) and "export format" in compare.error
