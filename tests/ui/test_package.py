"""The widgets' packaging: lazy imports, shipped assets, and safe DOM code."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from promptlooper.ui import __all__ as views
from promptlooper.ui._base import widgets_dir

ROOT = Path(__file__).resolve().parents[2]
WIDGETS = ["live", "leaderboard", "diff", "steering", "rating", "timeline"]


def test_import_promptlooper_does_not_import_ipywidgets():
    code = ("import sys, promptlooper, promptlooper.ui; "
            "bad = [m for m in ('ipywidgets', 'anywidget', 'plotly', 'traitlets') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_view_is_reachable_lazily():
    import promptlooper.ui as plui

    for name in views:
        assert getattr(plui, name) is not None


@pytest.mark.parametrize("name", WIDGETS)
def test_assets_exist_and_js_never_parses_html(name):
    assert widgets_dir() == ROOT / "widgets"
    js = (widgets_dir() / name / "widget.js").read_text()
    assert (widgets_dir() / name / "widget.css").is_file()
    assert "export default" in js and "render(" in js
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", js)


def test_views_point_at_their_assets():
    import promptlooper.ui as plui

    assert sorted(plui.__all__) == sorted(plui._WHERE)
    for cls, name in ((plui.LiveSweep, "live"), (plui.Leaderboard, "leaderboard"), (plui.DiffView, "diff"),
                      (plui.Steering, "steering"), (plui.Rating, "rating"), (plui.Timeline, "timeline")):
        # anywidget keeps a Path as FileContents: ANYWIDGET_HMR=1 then reloads edits live
        assert cls._esm._path == widgets_dir() / name / "widget.js"
        assert cls._css._path == widgets_dir() / name / "widget.css"


def test_wheel_ships_the_widgets_folder():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert tool["package-dir"]["promptlooper._widgets"] == "widgets"
    assert "promptlooper._widgets" in tool["packages"]
    assert {"*/*.js", "*/*.css"} <= set(tool["package-data"]["promptlooper._widgets"])
