"""Convenience lives on the facade, not on the data: ``pl.run/start/leaderboard/dashboard`` and
``pl.load_experiment`` over the default workbench; an Experiment is only a description."""

from __future__ import annotations

import asyncio

import yaml

import promptlooper as pl
from promptlooper.shortcuts import dashboard, leaderboard


def test_module_level_shortcuts_use_the_default_workbench(make_exp, tmp_path):
    exp = make_exp()
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(exp.model_dump(mode="json")))
    loaded = pl.load_experiment(path)
    assert loaded.to_record() == exp.to_record()
    progress = pl.run(loaded)
    assert (progress.status, progress.done) == ("completed", 12)
    # The default workbench ($PROMPTLOOPER_DB) holds it: another facade on that file sees it.
    assert len(leaderboard(exp)) == 4
    assert len(pl.Workbench(pl.workbench.default_workbench().db_path).leaderboard(exp.key)) == 4


def test_start_returns_a_handle_on_the_default_workbench(make_exp):
    exp = make_exp()
    handle = pl.start(exp)
    progress = asyncio.run(_wait(handle))
    assert progress.status == "completed"


async def _wait(handle):
    return await handle


def test_the_schema_has_no_verbs():
    for verb in ("run", "start", "leaderboard", "dashboard", "from_yaml"):
        assert not hasattr(pl.Experiment, verb), verb


def test_dashboard_is_a_verb_of_the_facade(wb, make_exp):
    exp = make_exp()
    wb.run(exp)
    dash = wb.dashboard(exp, live=False, readonly=True)
    try:
        assert dash.leaderboard.rows and len(dash.leaderboard.rows) == 4
    finally:
        dash.close()
    dash = dashboard(exp.key, wb=wb, live=False, readonly=True)
    dash.close()
