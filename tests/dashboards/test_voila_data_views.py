"""The data views (issue 17) in the read-only Voila dashboard, real headless Chromium: the Matrix
and Rate queue tabs show a finished sweep's runs with no rating controls in the DOM, rating
messages crafted in the page change nothing in the store, and the Group by and Sweep plots tabs
draw. Screenshots in test-artifacts/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import fake_experiment, free_port
from test_voila_dashboard import ARGS, ARTIFACTS, CHROMIUM, _count, _wait_http

import promptlooper as pl

pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (scripts/install.sh --test)"),
              pytest.mark.slow]

CRAFTED = """async () => {
    const wm = window.jupyterapp.widgetManager; let n = 0;
    for (const p of Object.values(wm._models)) {
        const m = await p;
        if (m.get('_model_name') !== 'AnyModel') continue;
        m.send({action: 'rate', run_id: 'x', thumbs: 'up', stars: 5}); m.send({action: 'rate', stars: 5}); n += 1;
    }
    return n;
}"""


@pytest.fixture
def finished(tmp_path, server):
    db = str(tmp_path / "views.db")
    wb = pl.Workbench(db)
    wb.run(fake_experiment(server.base_url, name="views"))
    wb.close()
    port = free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"), "IPYTHONDIR": str(tmp_path / "ipy")}
    proc = subprocess.Popen([sys.executable, "-m", "promptlooper.cli", "--db", db, "dashboard", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/")
        yield f"http://127.0.0.1:{port}", db
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(15)


def test_matrix_and_queue_tabs_are_read_only_in_voila(finished):
    from playwright.sync_api import sync_playwright

    base, db = finished
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(Path(db).parent / "chrome"), executable_path=CHROMIUM, headless=True,
                                                   args=ARGS, viewport={"width": 1300, "height": 1000})
        page = ctx.new_page()
        page.goto(f"{base}/voila/render/experiment.ipynb?experiment=tests/views", timeout=90_000)
        page.wait_for_selector(".pl-table tbody tr", timeout=90_000)
        page.get_by_role("tab", name="Matrix").click()
        page.wait_for_selector(".pl-matrix td.pl-cell .pl-badge", timeout=30_000)
        assert page.locator(".pl-matrix td.pl-cell").count() == 12
        page.screenshot(path=str(ARTIFACTS / "voila-matrix.png"), full_page=True)
        page.get_by_role("tab", name="Rate queue").click()
        page.wait_for_selector(".pl-queue .pl-card:not([hidden])", timeout=30_000)
        # absent, not merely hidden (in these views; the Rate tab's editor is ui/rating.py's)
        assert page.locator(":is(.pl-matrix, .pl-queue) :is(.pl-thumb, .pl-star, button[data-stars])").count() == 0
        assert page.locator(".pl-matrix .pl-rate").count() == 12  # where the controls would be: the rating as text
        assert page.evaluate(CRAFTED) >= 2
        page.wait_for_timeout(2000)
        page.screenshot(path=str(ARTIFACTS / "voila-queue.png"), full_page=True)
        page.get_by_role("tab", name="Group by").click()
        page.wait_for_selector(".pl-groupby .pl-bar-row", timeout=30_000)
        page.get_by_role("tab", name="Sweep plots").click()
        page.wait_for_function("document.querySelectorAll('.pl-chart .main-svg').length >= 4", timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "voila-sweep-plots.png"), full_page=True)
        ctx.close()
    assert _count(db, "SELECT COUNT(*) FROM scores WHERE source = 'human'") == 0
    assert _count(db, "SELECT COUNT(*) FROM events WHERE type = 'run.rated'") == 0
