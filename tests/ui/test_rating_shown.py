"""The Rate tab fills itself as the sweep adds runs, and ratings read as given (stars, thumbs)."""

from __future__ import annotations

import promptlooper.ui as plui
from promptlooper.ui.rating import human_value


def test_stars_and_thumbs_read_as_given():
    assert human_value({"scorer": "human_stars", "value": 0.75, "metadata": {"raw": 4}}) == "★★★★☆ 4/5"
    assert human_value({"scorer": "human_thumbs", "value": 1.0, "metadata": {"raw": "up"}}) == "thumbs up"
    assert human_value({"scorer": "human_thumbs", "value": 0.0, "metadata": {}}) == "thumbs down"


def test_rate_tab_fills_itself_when_runs_arrive(wb, make_exp):
    exp = make_exp()
    wb.register(exp)
    view = plui.workbench(wb, exp, readonly=False, live=False)  # before any run: nothing to rate
    assert view.rating.run == {}
    wb.run(exp)
    view.leaderboard.refresh()  # what the live loop does after runs land
    assert view.rating.run.get("id") and view.rating.choices
    view.close()
