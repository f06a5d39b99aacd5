"""The widgets in a real JupyterLab in headless Chromium (Playwright, Debian's chromium).

1. The quickstart recipe: open it, run all cells, the leaderboard widget shows rows and sorts
   when a header is clicked (a browser -> kernel -> browser round trip).
2. A longer sweep on the fake server: the Pause button of the steering widget pauses it, as the
   store says (``sweeps.status = 'paused'`` and an ``experiment.paused`` event); Stop stops it.

Screenshots go to ``test-artifacts/``. Skipped when chromium (``apt-get install chromium``) or
the Python ``playwright`` package is missing.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-quic"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)"),
]
playwright_api = pytest.importorskip("playwright.sync_api")


class Lab:
    def __init__(self, url: str, token: str, root: Path):
        self.url, self.token, self.root = url, token, root

    def notebook_url(self, name: str) -> str:
        return f"{self.url}lab/tree/{name}?token={self.token}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    root.mkdir()
    shutil.copy(ROOT / "notebooks" / "01-quickstart.ipynb", root)
    settings = base / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "VOILA_"))}
    env.update(HOME=str(base / "home"), JUPYTER_CONFIG_DIR=str(base / "config"), JUPYTER_RUNTIME_DIR=str(base / "runtime"),
               IPYTHONDIR=str(base / "ipython"), JUPYTERLAB_SETTINGS_DIR=str(base / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"), PROMPTLOOPER_READONLY="0",
               PROMPTLOOPER_DB=str(base / "default.db"))
    port, token = free_port(), secrets.token_hex(16)
    log = open(base / "lab.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         "--ServerApp.port_retries=0", f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)  # same process group: dies with the test run
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("jupyter lab did not start:\n" + (base / "lab.log").read_text()[-3000:]) from None
                time.sleep(0.3)
        yield Lab(url, token, root)
    finally:
        if proc.poll() is None:
            proc.terminate()  # the server shuts its kernels down (they also exit when it dies)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[object]:
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path / "chrome"), executable_path=CHROMIUM, headless=True, args=ARGS,
                                                   viewport={"width": 1400, "height": 1000})
        try:
            yield ctx.new_page()
        finally:
            ctx.close()


KERNEL_READY = """(name) => {
    const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
    return !!(w && w.context && w.context.path === name && w.sessionContext.isReady && k && k.status === 'idle'
              && k.connectionStatus === 'connected');
}"""


def open_and_run_all(page, lab: Lab, name: str) -> None:
    page.goto(lab.notebook_url(name) + "&reset", timeout=90_000)  # reset: no tabs restored from an earlier test
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
    page.wait_for_function(KERNEL_READY, arg=name, timeout=90_000)  # the toolbar's "idle" shows before a kernel exists
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function("[...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt')]"
                           ".some(p => /\\[[*0-9]+\\]/.test(p.textContent))", timeout=30_000)


def test_quickstart_leaderboard_in_jupyterlab(lab: Lab, page) -> None:
    open_and_run_all(page, lab, "01-quickstart.ipynb")
    try:
        page.wait_for_selector(".pl-leaderboard tr.pl-row", timeout=280_000)  # the embedded model runs 12 times first
    finally:
        page.screenshot(path=str(ARTIFACTS / "jupyterlab-quickstart.png"), full_page=True)
    rows = page.locator(".pl-leaderboard tr.pl-row")
    assert rows.count() == 4
    # The live view shows the sweep's last count on its next refresh, which may come just after the
    # leaderboard's first rows: wait for it, then read it.
    page.wait_for_function("document.querySelector('.pl-live .pl-stat.pl-progress .pl-stat-value')"
                           "?.textContent === '12 / 12 runs'", timeout=30_000)
    assert page.locator(".pl-live .pl-stat.pl-progress .pl-stat-value").first.text_content() == "12 / 12 runs"
    # a header click is sorted in Python and comes back as a new order
    page.locator(".pl-leaderboard th[data-key='tokens']").first.click()
    page.wait_for_function("document.querySelector('.pl-leaderboard th.pl-sorted').dataset.key === 'tokens'", timeout=30_000)
    tokens = [int(t.replace(",", "")) for t in page.locator(".pl-leaderboard tr.pl-row td.pl-kind-metric:nth-child(1)").all_text_contents()
              if t.replace(",", "").isdigit()]
    assert tokens == sorted(tokens)
    page.locator(".pl-leaderboard tr.pl-row").first.click()  # expand: its runs, prompts and responses
    page.wait_for_selector(".pl-leaderboard .pl-run .pl-response", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "jupyterlab-quickstart-expanded.png"), full_page=True)


PAUSE_NOTEBOOK = r'''
import promptlooper as pl
import promptlooper.ui as plui
from promptlooper.testing import FakeServer

server = FakeServer(latency=0.05).start()
wb = pl.Workbench({db!r})
exp = pl.Experiment(
    project="browser", name="pause",
    samples=[{{"question": f"q{{i}}", "reference": "alpha"}} for i in range(6)],
    stages=[pl.PromptStage(name="answer", model="fake/fake-small", user="{{{{ question }}}}", params={{"max_tokens": 8}})],
    space={{"answer.temperature": [round(i * 0.01, 2) for i in range(100)]}},
    scorers=[{{"name": "keyword", "words": ["alpha"]}}],
    endpoints={{"fake": {{"base_url": server.base_url}}}},
    concurrency=2,
)
handle = wb.start(exp)
plui.LiveSweep(wb, exp, handle)
'''


def sweep_state(db: Path) -> tuple[str | None, int]:
    try:
        with sqlite3.connect(db) as c:
            row = c.execute("SELECT status FROM sweeps ORDER BY started_at DESC LIMIT 1").fetchone()
            paused = c.execute("SELECT COUNT(*) FROM events WHERE type = 'experiment.paused'").fetchone()[0]
    except sqlite3.OperationalError:
        return None, 0
    return (row[0] if row else None), int(paused)


def wait_until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


def test_pause_button_pauses_the_sweep_in_the_store(lab: Lab, page) -> None:
    import nbformat

    db = lab.root / "pause.db"
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}}
    nb.cells = [nbformat.v4.new_code_cell(PAUSE_NOTEBOOK.format(db=str(db)).strip()),
                nbformat.v4.new_code_cell("plui.Steering(wb, exp, poll=0.5)")]
    nbformat.write(nb, lab.root / "pause.ipynb")

    open_and_run_all(page, lab, "pause.ipynb")
    pause = page.locator(".pl-steering button.pl-pause")
    try:
        page.wait_for_selector(".pl-steering button.pl-pause:not([disabled])", timeout=90_000)  # running: 600 runs, ~15 s
    finally:
        page.screenshot(path=str(ARTIFACTS / "jupyterlab-running.png"), full_page=True)
    assert sweep_state(db)[0] == "running"
    pause.click()
    wait_until(lambda: sweep_state(db) == ("paused", 1), timeout=20)
    page.wait_for_selector(".pl-steering .pl-badge.pl-state-paused", timeout=20_000)
    page.wait_for_selector(".pl-live .pl-badge.pl-status-paused", timeout=20_000)
    page.screenshot(path=str(ARTIFACTS / "jupyterlab-paused.png"), full_page=True)
    with sqlite3.connect(db) as c:
        done, total = c.execute("SELECT done, total FROM sweeps ORDER BY started_at DESC LIMIT 1").fetchone()
    assert 0 < done < total

    page.locator(".pl-steering button.pl-stop").click()
    wait_until(lambda: sweep_state(db)[0] == "stopped", timeout=20)
    page.wait_for_selector(".pl-steering .pl-badge.pl-state-stopped", timeout=20_000)
