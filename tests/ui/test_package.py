"""The widgets' packaging: lazy imports, shipped assets, and safe DOM code."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from promptlooper.ui import __all__ as views
from promptlooper.ui import _assets
from promptlooper.ui._assets import esm, widgets_dir

ROOT = Path(__file__).resolve().parents[2]
WIDGETS = ["live", "leaderboard", "diff", "steering", "rating", "timeline", "overview", "chart", "matrix", "queue", "compare", "groupby"]
SHARED = ROOT / "widgets" / "_shared" / "dom.js"


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
        # one module per widget: the shared helpers, then the widget's own code
        assert str(cls._esm) == SHARED.read_text() + "\n" + (widgets_dir() / name / "widget.js").read_text()
        assert cls._css._path == widgets_dir() / name / "widget.css"


def test_wheel_ships_the_widgets_folder():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert tool["package-dir"]["promptlooper._widgets"] == "widgets"
    # Every widget folder is a listed package (setuptools finds nothing through package-dir), so a
    # new widget cannot be left out of the wheel; tests/test_packaging.py checks the wheel itself.
    folders = {f"promptlooper._widgets.{d.name}" for d in widgets_dir().iterdir() if d.is_dir() and not d.name.startswith(".")}
    assert {"promptlooper._widgets", *folders} <= set(tool["packages"])
    assert {"*/*.js", "*/*.css"} <= set(tool["package-data"]["promptlooper._widgets"])
    assert fnmatch.fnmatch("_shared/dom.js", "*/*.js")  # the shared helpers ship too


def test_helpers_are_defined_once_in_the_shared_module():
    shared = SHARED.read_text()
    for helper in ("function h(", "const put =", "function setText(", "function keyed(", "function exportButtons("):
        assert helper in shared
        assert not [n for n in WIDGETS if helper in (widgets_dir() / n / "widget.js").read_text()], helper


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
@pytest.mark.parametrize("name", WIDGETS)
def test_each_joined_module_parses_and_exports_render(name, tmp_path):
    # the joined module as the browser gets it, loaded as an ES module: a name defined twice or a
    # syntax error fails here; render must be the default export's method
    module = tmp_path / f"{name}.mjs"
    module.write_text(str(esm(name)))
    code = "import(process.argv[1]).then((m) => { if (typeof m.default.render !== 'function') process.exit(3); })"
    done = subprocess.run(["node", "-e", code, module.as_uri()], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_live_reload_rebuilds_the_joined_module_when_a_source_changes(tmp_path):
    # with ANYWIDGET_HMR=1 anywidget's watcher threads emit `changed` on a save; here the
    # signal is emitted by hand, as the watcher would (no watchfiles needed)
    shared, widget = tmp_path / "dom.js", tmp_path / "widget.js"
    shared.write_text("const a = 1;")
    widget.write_text("export default {};")
    joined = _assets.watched((shared, widget), watch=False)
    assert str(joined) == "const a = 1;\nexport default {};"
    seen: list[str] = []
    joined.changed.connect(seen.append)
    shared.write_text("const a = 2;")
    source = joined.sources[0]
    source._contents = None  # what the watcher does before emitting: read the file again
    source.changed.emit(str(source))
    assert seen == ["const a = 2;\nexport default {};"] and str(joined) == seen[0]


def test_live_reload_is_off_without_the_flag(monkeypatch):
    monkeypatch.delenv("ANYWIDGET_HMR", raising=False)
    assert isinstance(esm("live"), str)
