"""The data views (issue 17) inside the experiment dashboard: one tab each, built when opened,
read-only when the dashboard is, and a Compare tab only where there is something to compare."""

from __future__ import annotations

import promptlooper.ui as plui
from promptlooper.ui.compare_view import CompareView
from promptlooper.ui.groupby_view import GroupByView
from promptlooper.ui.matrix_view import MatrixView
from promptlooper.ui.rating_queue import RatingQueue
from promptlooper.ui.sweep_plots_view import SweepPlots


def titles(dash) -> list[str]:
    return [dash.tabs.get_title(i) for i in range(len(dash.tabs.children))]


def test_data_tabs_are_built_when_first_opened(done):
    wb, exp = done
    dash = plui.workbench(wb, exp, live=False, readonly=False)
    assert titles(dash)[5:] == ["Matrix", "Rate queue", "Group by", "Sweep plots"]  # no parent, no fork: no Compare
    assert dash.data.views == {}
    dash.tabs.selected_index = 5
    matrix = dash.data.views["Matrix"]
    assert isinstance(matrix, MatrixView) and dash.tabs.children[5].children == (matrix,) and not matrix.readonly
    assert len(matrix.rows) == 3
    for i, kind in ((6, RatingQueue), (7, GroupByView), (8, SweepPlots)):
        dash.tabs.selected_index = i
        assert isinstance(dash.tabs.children[i].children[0], kind)
    assert set(dash.data.views["Sweep plots"].charts) >= {"history", "importance", "parallel", "cost"}
    dash.tabs.selected_index = 5  # opening again keeps the view
    assert dash.data.views["Matrix"] is matrix
    dash.close()


def test_read_only_dashboard_gets_read_only_views_and_compare_for_a_fork(done):
    wb, exp = done
    fork = wb.fork(exp.key, changes={"answer.temperature": [0.0, 0.9]}, name="tab-fork")
    wb.run(fork)
    dash = plui.workbench(wb, fork, live=False, readonly=True)
    assert titles(dash)[-1] == "Compare"
    compare = dash.data.open("Compare")
    assert isinstance(compare, CompareView) and compare.names["b"] == exp.key
    assert dash.data.open("Matrix").readonly and dash.data.open("Rate queue").readonly
    dash.close()
