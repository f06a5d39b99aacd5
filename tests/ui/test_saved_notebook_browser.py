"""A saved notebook keeps what it showed: with the project's JupyterLab setting defaults
(``promptlooper/jupyter_data/lab/overrides.d``, installed under <prefix>/share/jupyter/lab/settings),
saving stores the widgets' state in the notebook, and reopening it after its kernel is gone
shows the last leaderboard instead of "Error displaying widget: model not found", and its chart
as last drawn (a picture the page keeps in the chart's saved state: no kernel sends plotly.js)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import free_port
from test_browser import ARGS, ARTIFACTS, CHROMIUM, KERNEL_READY, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")]
playwright_api = pytest.importorskip("playwright.sync_api")

NOTEBOOK = r'''
import promptlooper as pl
import promptlooper.ui as plui
from promptlooper.testing import FakeServer

server = FakeServer().start()
wb = pl.Workbench({db!r})
exp = pl.Experiment(
    project="browser", name="saved",
    samples=[{{"question": "q1", "reference": "alpha"}}, {{"question": "q2", "reference": "alpha"}}],
    stages=[pl.PromptStage(name="answer", model="fake/fake-small", user="{{{{ question }}}}", params={{"max_tokens": 8}})],
    space={{"answer.temperature": [0.0, 0.3, 0.6, 0.9]}},
    scorers=[{{"name": "keyword", "words": ["alpha"]}}],
    endpoints={{"fake": {{"base_url": server.base_url}}}},
)
wb.run(exp)
plui.Leaderboard(wb, exp, live=False)
'''
CHART = '''from promptlooper.ui.charts import score_vs_params
from promptlooper.ui.plotly_chart import PlotlyChart
PlotlyChart(score_vs_params(wb.leaderboard(exp)))'''


def test_reopened_notebook_shows_its_last_leaderboard(tmp_path: Path) -> None:
    import nbformat

    root = tmp_path / "notebooks"
    root.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}}
    nb.cells = [nbformat.v4.new_code_cell(NOTEBOOK.format(db=str(tmp_path / "saved.db")).strip()), nbformat.v4.new_code_cell(CHART)]
    nbformat.write(nb, root / "saved.ipynb")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "VOILA_"))}
    env.update(HOME=str(tmp_path / "home"), JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
               IPYTHONDIR=str(tmp_path / "ipython"), JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"), PROMPTLOOPER_READONLY="0")
    port, token = free_port(), secrets.token_hex(16)
    app_settings = ROOT / "promptlooper" / "jupyter_data" / "lab"  # what the wheel installs as .../lab/settings
    log = open(tmp_path / "lab.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         "--ServerApp.port_retries=0", f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True", f"--LabApp.app_settings_dir={app_settings}"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}api/status?token={token}", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "lab.log").read_text()[-3000:]
                time.sleep(0.3)
        ARTIFACTS.mkdir(exist_ok=True)
        with playwright_api.sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(str(tmp_path / "chrome"), executable_path=CHROMIUM, headless=True, args=ARGS,
                                                       viewport={"width": 1300, "height": 900})
            page = ctx.new_page()
            page.goto(f"{url}lab/tree/saved.ipynb?token={token}&reset", timeout=90_000)
            page.wait_for_function(KERNEL_READY, arg="saved.ipynb", timeout=90_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_selector(".pl-leaderboard tr.pl-row", timeout=120_000)
            page.wait_for_selector(".pl-chart .main-svg", timeout=120_000)
            page.wait_for_timeout(2500)  # the chart keeps a picture of itself once drawn
            page.screenshot(path=str(ARTIFACTS / "saved-notebook-live.png"), full_page=True)
            page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
            deadline = time.monotonic() + 30
            while "application/vnd.jupyter.widget-state+json" not in json.loads((root / "saved.ipynb").read_text()).get("metadata", {}).get("widgets", {}):
                assert time.monotonic() < deadline, "the widget state was not saved with the notebook"
                time.sleep(0.3)
            state = json.loads((root / "saved.ipynb").read_text())["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]
            boards = [m["state"] for m in state["state"].values() if len((m["state"].get("table") or {}).get("rows") or []) == 4]
            assert boards, "the leaderboard's rows are in the saved state"
            pictures = [m["state"]["snapshot"] for m in state["state"].values() if m["state"].get("snapshot")]
            assert len(pictures) == 1 and pictures[0].startswith("data:image/svg+xml"), "the chart's picture is in the saved state"
            # the kernel goes away (a notebook opened tomorrow): shut every session down, open the file again
            page.evaluate("window.jupyterapp.commands.execute('kernelmenu:shutdown')")
            page.wait_for_timeout(1500)
            sessions = json.loads(urllib.request.urlopen(f"{url}api/sessions?token={token}").read())
            for s in sessions:
                req = urllib.request.Request(f"{url}api/sessions/{s['id']}?token={token}", method="DELETE")
                urllib.request.urlopen(req)
            page.close()
            page = ctx.new_page()
            page.goto(f"{url}lab/tree/saved.ipynb?token={token}&reset", timeout=90_000)
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
            page.wait_for_selector(".pl-leaderboard tr.pl-row", timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "saved-notebook-reopened.png"), full_page=True)
            assert page.locator(".pl-leaderboard tr.pl-row").count() == 4
            page.wait_for_function("(() => { const img = document.querySelector('.pl-chart img.pl-snapshot');"
                                   " return img && img.complete && img.naturalWidth > 100; })()", timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "saved-notebook-reopened.png"), full_page=True)
            assert "model not found" not in page.inner_text(".jp-NotebookPanel")
            ctx.close()
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
