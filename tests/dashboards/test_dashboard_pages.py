"""Dashboard front pages in headless Chromium: ``/`` is the experiments overview (styled,
sortable, searchable, status badges, progress bars, real links), an unknown experiment gets a
friendly page, and nothing is fetched from outside the machine."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_voila_dashboard import ARGS, ARTIFACTS, CHROMIUM, dashboard, running_sweep  # noqa: F401 - fixtures
from theme_check import assert_theme

pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (scripts/install.sh --test)"),
              pytest.mark.slow]

# surfaces that must take the page's theme (tests/theme_check.py also checks every text's contrast)
OVERVIEW = ["body", ".pl-overview", ".pl-overview th", ".pl-overview tbody td", ".pl-overview .pl-search"]
EXPERIMENT = ["body", ".pl-live", ".widget-tab > .lm-TabBar .lm-TabBar-tab", ".pl-leaderboard th[data-key='score']",
              ".pl-leaderboard td.pl-sel", ".pl-leaderboard td[data-key='config_id']", ".pl-leaderboard tr.pl-row td[data-key='score']"]
BAD_TEXT = r"""() => [...document.querySelectorAll('.pl-root, .pl-notfound')].flatMap((root) => {
  const out = [], walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) if (/\b(null|None|undefined|NaN)\b/.test(n.textContent)) out.push(n.textContent);
  return out; })"""


def test_front_page_is_the_overview_and_unknown_experiments_are_explained(dashboard) -> None:  # noqa: F811 - fixture
    from playwright.sync_api import sync_playwright

    base, db, _sweep = dashboard
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(Path(db).parent / "chrome-pages"), executable_path=CHROMIUM,
                                                   headless=True, args=ARGS, viewport={"width": 1200, "height": 700})
        page = ctx.new_page()
        outside: list[str] = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else None)

        page.goto(f"{base}/", timeout=90_000)
        page.wait_for_selector(".pl-overview tbody tr", timeout=90_000)
        assert page.url.endswith("/voila/render/overview.ipynb")
        link = page.locator(".pl-overview a.pl-link").first
        assert link.get_attribute("href") == "experiment.ipynb?experiment=tests/live"
        assert page.locator(".pl-overview .pl-badge.pl-status-running").count() == 1
        assert page.locator(".pl-overview .pl-bar-fill").count() == 1
        assert page.locator(".pl-overview .pl-link").evaluate("(a) => getComputedStyle(a).textDecorationLine") == "underline"
        page.locator(".pl-overview th[data-key='best']").click()
        assert page.locator(".pl-overview th[data-key='best'] .pl-arrow").text_content() == " ▼"
        page.locator(".pl-overview .pl-search").fill("no-such-thing")
        assert page.locator(".pl-overview tbody tr").count() == 0
        assert "No experiment matches" in page.inner_text(".pl-overview")
        page.locator(".pl-overview .pl-search").fill("live")
        assert page.locator(".pl-overview tbody tr").count() == 1
        assert page.evaluate(BAD_TEXT) == []
        assert_theme(page, ".pl-root", OVERVIEW, dark=False)
        page.screenshot(path=str(ARTIFACTS / "voila-overview-light.png"), full_page=True)
        page.goto(f"{base}/voila/render/overview.ipynb?theme=dark", timeout=90_000)
        page.wait_for_selector(".pl-overview tbody tr", timeout=90_000)
        assert_theme(page, ".pl-root", OVERVIEW, dark=True)
        page.screenshot(path=str(ARTIFACTS / "voila-overview-dark.png"), full_page=True)

        page.goto(f"{base}/voila/render/experiment.ipynb?experiment=tests/no-such-experiment", timeout=90_000)
        page.wait_for_selector(".pl-notfound", timeout=90_000)
        text = page.inner_text("body")
        assert "No experiment tests/no-such-experiment in this store" in text
        assert "There was an error" not in text and "Traceback" not in text
        assert page.locator(".pl-notfound a.pl-link").get_attribute("href") == "overview.ipynb"
        page.screenshot(path=str(ARTIFACTS / "voila-unknown-experiment.png"), full_page=True)
        page.goto(f"{base}/voila/render/experiment.ipynb?experiment=tests/live&theme=dark", timeout=90_000)
        page.wait_for_selector(".pl-table tbody tr", timeout=90_000)
        assert page.evaluate(BAD_TEXT) == []
        assert_theme(page, ".pl-root", EXPERIMENT, dark=True)
        page.screenshot(path=str(ARTIFACTS / "voila-dashboard-dark.png"), full_page=True)
        ctx.close()
    assert outside == [], outside
