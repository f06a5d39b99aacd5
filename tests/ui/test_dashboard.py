from __future__ import annotations

import asyncio

import pytest

import promptlooper.ui as plui
from promptlooper.ui._base import default_readonly, live_loops


@pytest.mark.parametrize(("env", "expected"), [
    ({}, False), ({"PROMPTLOOPER_READONLY": "1"}, True), ({"PROMPTLOOPER_READONLY": "0", "VOILA_BASE_URL": "/"}, False),
    ({"VOILA_SERVER_URL": "http://x"}, True), ({"VOILA_BASE_URL": "/"}, True)])
def test_default_readonly_from_env(monkeypatch, env, expected):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert default_readonly() is expected


def test_dashboard_composes_and_wires_views(done):
    wb, exp = done
    dash = plui.workbench(wb, exp, live=False, readonly=False)
    assert dash.children[0] is dash.live and len(dash.tabs.children) == 9  # + the data views (test_data_tabs.py)
    assert [dash.tabs.get_title(i) for i in range(5)] == ["Leaderboard", "Diff", "Rate", "Timeline", "Charts"]
    ids = [r["id"] for r in dash.leaderboard.rows]
    dash.leaderboard.handle_message({"action": "select", "config_id": ids[0]})
    assert dash.steering.selected["id"] == ids[0] and dash.diff.sections == []
    dash.leaderboard.handle_message({"action": "select", "config_id": ids[1]})
    assert dash.steering.selected["id"] == ids[1] and dash.diff.sections[0]["title"] == "configuration"
    dash.leaderboard.handle_message({"action": "expand", "config_id": ids[2]})
    runs = [r["id"] for r in dash.leaderboard.runs]
    dash.leaderboard.handle_message({"action": "pick_run", "run_id": runs[0]})
    assert dash.rating.run["id"] == runs[0]
    dash.leaderboard.handle_message({"action": "pick_run", "run_id": runs[1]})
    assert dash.diff.left["title"] == f"run {runs[0][:8]}" and dash.diff.right["title"] == f"run {runs[1][:8]}"
    dash.close()


def test_readonly_everywhere_from_env(done, monkeypatch):
    wb, exp = done
    monkeypatch.setenv("VOILA_BASE_URL", "/voila/")
    dash = plui.workbench(wb, exp, live=False)
    assert dash.readonly and all(v.readonly for v in dash.views())
    cid = dash.leaderboard.rows[0]["id"]
    assert not dash.leaderboard.handle_message({"action": "reject", "config_id": cid})
    assert not dash.steering.handle_message({"action": "redirect", "space": "{}"})
    assert wb.events(exp.key, types=["configuration.*", "experiment.redirected"]) == []
    dash.close()


def test_rerunning_the_dashboard_cell_keeps_one_set_of_loops(done):
    wb, exp = done

    async def scenario() -> None:
        first = plui.workbench(wb, exp)
        n = len(live_loops())
        assert n == 5  # live, leaderboard, steering, timeline, charts
        second = plui.workbench(wb, exp)  # the cell, run again
        await asyncio.sleep(0.05)
        assert len(live_loops()) == n
        assert "stopped updating" in first.leaderboard.notice
        second.close()
        first.close()
        await asyncio.sleep(0.05)
        assert live_loops() == {}

    asyncio.run(scenario())
