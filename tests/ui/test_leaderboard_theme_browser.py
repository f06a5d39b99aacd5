"""The leaderboard in JupyterLab's light and dark themes, in every row state at once: approved,
rejected, scored on few samples, expanded, under the pointer. The live views test meets these
states only by chance during its sweep; here each is set up, and the page's computed colours are
checked (tests/theme_check.py): every surface in the theme's colours, every text readable.

Its model is the live Python widget in a bare Chromium page (widget_page.py); the "few samples"
rows come from a leaderboard frame whose ``n`` is lowered for two configurations, as a frame
read mid-sweep has it."""

from __future__ import annotations

import pytest
from test_matrix_browser import ARTIFACTS, CHROMIUM, browser, sweep  # noqa: F401 - fixtures
from theme_check import assert_theme
from widget_page import DARK, LIGHT, render, theme

from promptlooper.ui.leaderboard import Leaderboard

pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")]

SURFACES = [".pl-leaderboard th[data-key='score']", ".pl-leaderboard th.pl-sel", ".pl-leaderboard td.pl-sel",
            ".pl-leaderboard td[data-key='config_id']", ".pl-leaderboard td.pl-actions", ".pl-leaderboard .pl-btn",
            ".pl-leaderboard tr.pl-decision-approved td", ".pl-leaderboard tr.pl-few td", ".pl-leaderboard tr.pl-expanded td",
            ".pl-leaderboard .pl-detail td", ".pl-leaderboard .pl-run .pl-chip"]


def test_every_row_state_reads_in_light_and_dark(sweep, browser) -> None:  # noqa: F811 - fixtures
    wb, exp = sweep
    view = Leaderboard(wb, exp, live=False)
    ids = [r["id"] for r in view.rows]
    assert view.handle_message({"action": "approve", "config_id": ids[0]})
    assert view.handle_message({"action": "reject", "config_id": ids[5]})
    view.refresh()
    frame = view.frame.copy()
    few = [ids[1], ids[2]]
    frame.loc[frame["full_config_id"].isin(few), "n"] = 2  # read mid-sweep: two configurations on 2 of 8 samples
    view.show(frame)
    assert [r["id"] for r in view.rows if r.get("few")] and all(r["few"] for r in view.rows if r["id"] in few)

    page = browser.new_page(viewport={"width": 1100, "height": 900})
    render(page, view, LIGHT)
    page.wait_for_selector(".pl-leaderboard tr.pl-row.pl-few")
    assert page.locator(".pl-leaderboard tr.pl-row.pl-decision-approved").count() == 1
    assert page.locator(".pl-leaderboard tr.pl-row.pl-decision-rejected").count() == 1
    page.locator(f".pl-leaderboard tr.pl-row[data-id='{few[0]}'] td[data-key='score']").click()  # expand a few-samples row
    page.wait_for_selector(".pl-leaderboard tr.pl-expanded.pl-few")
    page.wait_for_selector(".pl-leaderboard .pl-run .pl-response")
    page.locator(f".pl-leaderboard tr.pl-row[data-id='{few[1]}'] td[data-key='score']").hover()  # the other, under the pointer
    scroller = page.locator(".pl-leaderboard .pl-scroll")
    assert scroller.evaluate("(el) => el.scrollTop") > 0, "the hover should have scrolled the expanded runs under the header"
    for name, css, dark in (("light", LIGHT, False), ("dark", DARK, True)):
        theme(page, css)
        scroller.evaluate("(el) => { el.scrollTop = 120; }")
        # the header stays above the rows and the expanded runs scrolled under it
        assert_theme(page, ".pl-root", SURFACES, dark=dark, uncovered=[".pl-leaderboard thead th"])
        scroller.evaluate("(el) => { el.scrollTop = 0; }")  # the approved row at the top, the expanded one under it
        page.mouse.move(400, 110)  # over a row
        assert_theme(page, ".pl-root", SURFACES, dark=dark, uncovered=[".pl-leaderboard thead th"])
        page.screenshot(path=str(ARTIFACTS / f"leaderboard-states-{name}.png"), full_page=True)
