"""The read-only Voila dashboard in real headless Chromium, following a sweep run by another process."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers import db_rows, db_value, fake_experiment, free_port, write_experiment

from promptlooper.testing import FakeServer

CHROMIUM = shutil.which("chromium")
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (scripts/install.sh --test)"),
              pytest.mark.slow]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SECRET = "sk-dashboard-NEVER-SHOWN-7731"


def _count(db: str, sql: str) -> int:
    """A count from the store (a file or a PostgreSQL URL); 0 before the sweep made its tables."""
    return int(db_value(db, sql, default=0))


def _wait_http(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer")


@pytest.fixture
def running_sweep(tmp_path, monkeypatch, db):
    """A CLI sweep (another process) on a slow fake server: 600 runs, about a minute; in a SQLite
    file, or in PostgreSQL for a test marked both_backends (tests/conftest.py's ``db``)."""
    monkeypatch.setenv("PL_DASH_KEY", SECRET)
    with FakeServer(latency=0.2, api_key=SECRET) as srv:
        exp = fake_experiment(srv.base_url, name="live", concurrency=2,
                              space={"answer.temperature": [round(i * 0.02, 2) for i in range(100)], "persona": ["terse", "verbose"]},
                              endpoints={"fake": {"base_url": srv.base_url, "api_key_env": "PL_DASH_KEY"}})
        f = write_experiment(tmp_path / "live.yaml", exp)
        proc = subprocess.Popen([sys.executable, "-m", "promptlooper.cli", "--db", db, "run", str(f), "--quiet"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while _count(db, "SELECT COUNT(*) FROM runs") < 6 and time.monotonic() < deadline:
                time.sleep(0.2)
            yield db, proc
        finally:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def dashboard(running_sweep, tmp_path):
    db, sweep_proc = running_sweep
    port = free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"), "IPYTHONDIR": str(tmp_path / "ipy")}
    proc = subprocess.Popen([sys.executable, "-m", "promptlooper.cli", "--db", db, "dashboard", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/")
        yield f"http://127.0.0.1:{port}", db, sweep_proc
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(15)


@pytest.mark.both_backends  # the page follows a sweep in a SQLite file and in PostgreSQL
def test_dashboard_follows_the_sweep_and_cannot_write(dashboard, tmp_path, backend):
    from playwright.sync_api import sync_playwright

    base, db, sweep_proc = dashboard
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path / "chrome"), executable_path=CHROMIUM, headless=True,
                                                   args=ARGS, viewport={"width": 1300, "height": 1000})
        page = ctx.new_page()
        failed: list[str] = []
        page.on("requestfailed", lambda r: failed.append(r.url))
        page.goto(f"{base}/voila/render/experiment.ipynb?experiment=tests/live", timeout=90_000)
        page.wait_for_selector(".pl-table tbody tr", timeout=90_000)

        # Progress advances while the sweep runs (the page reads the store; the sweep is another process).
        def done_shown() -> int:
            text = page.inner_text(".pl-live")
            m = re.search(r"(\d+)\s*/\s*(\d+)\s*runs", text)
            assert m, text
            return int(m.group(1))

        first = done_shown()
        page.wait_for_function(
            f"(() => {{ const m = document.querySelector('.pl-live').innerText.match(/(\\d+)\\s*\\/\\s*(\\d+)\\s*runs/); return m && +m[1] > {first}; }})()",
            timeout=30_000)
        assert done_shown() > first

        # The leaderboard shows the configurations the store has results for: stop the writer, let
        # the page refresh, and compare.
        sweep_proc.kill()
        sweep_proc.wait(10)

        def finished_configs() -> set[str]:
            return {r[0][:12] for r in db_rows(db, "SELECT DISTINCT config_id FROM runs WHERE status IN ('completed','cached')")}

        # The sweep's writer process outlives it long enough to commit what it was handed (nothing
        # finished is lost): compare with the store once that last batch has landed.
        in_store, deadline = finished_configs(), time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(1.0)
            now = finished_configs()
            if now == in_store:
                break
            in_store = now
        page.wait_for_function(
            f"document.querySelector('.pl-count') && document.querySelector('.pl-count').innerText.startsWith('{len(in_store)} ')",
            timeout=30_000)
        rows = page.eval_on_selector_all(".pl-table tbody tr", "rows => rows.map(r => r.innerText)")
        shown_ids = {m.group(0) for row in rows for m in re.finditer(r"\b[0-9a-f]{12}\b", row)}
        assert shown_ids and shown_ids <= in_store

        # No steering controls are rendered ...
        for selector in (".pl-pause", ".pl-stop", ".pl-approve", ".pl-reject", ".pl-fork-btn", ".pl-redirect-btn"):
            assert page.locator(selector).count() == 0, selector  # absent, not merely hidden
        # ... and crafted steering messages sent from the page change nothing in the store.
        before = {t: _count(db, f"SELECT COUNT(*) FROM {t}") for t in ("configurations WHERE decision IS NOT NULL",
                                                                        "scores WHERE source = 'human'")}
        sent = page.evaluate("""async () => {
            const wm = window.jupyterapp.widgetManager; let n = 0;
            for (const p of Object.values(wm._models)) {
                const m = await p;
                if (m.get('_model_name') !== 'AnyModel') continue;
                for (const msg of [{action: 'pause'}, {action: 'stop'}, {action: 'approve', reason: 'x'},
                                   {action: 'reject', reason: 'x'}, {action: 'redirect', space: '{}'},
                                   {action: 'rate', thumbs: 'up', stars: 5}, {action: 'fork', changes: '{}'}]) {
                    m.send(msg); n += 1;
                }
            }
            return n;
        }""")
        assert sent >= 7
        page.wait_for_timeout(3000)
        page.screenshot(path=str(ARTIFACTS / ("voila-dashboard.png" if backend == "sqlite" else f"voila-dashboard-{backend}.png")), full_page=True)
        html = page.content()
        ctx.close()
    for t, n in before.items():
        assert _count(db, f"SELECT COUNT(*) FROM {t}") == n, t
    steering = _count(db, "SELECT COUNT(*) FROM events WHERE type IN ('experiment.paused','experiment.stopped',"
                          "'configuration.approved','configuration.rejected','experiment.redirected','run.rated','experiment.forked')")
    assert steering == 0
    assert _count(db, "SELECT COUNT(*) FROM sweeps WHERE status = 'paused' OR requested IS NOT NULL") == 0
    assert SECRET not in html and "token=" not in html
    assert not [u for u in failed if not u.startswith("http://127.0.0.1")], failed  # nothing asked of the internet


def test_overview_lists_experiments(dashboard):
    from playwright.sync_api import sync_playwright

    base, db, _ = dashboard
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(Path(db).parent / "chrome2"), executable_path=CHROMIUM, headless=True, args=ARGS)
        page = ctx.new_page()
        page.goto(f"{base}/voila/render/overview.ipynb", timeout=90_000)
        page.wait_for_selector(".pl-overview a.pl-link", timeout=90_000)
        assert "live" in page.inner_text(".pl-overview")
        href = page.get_attribute(".pl-overview a.pl-link", "href")
        assert href == "experiment.ipynb?experiment=tests/live"
        ctx.close()
