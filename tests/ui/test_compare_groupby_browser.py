"""The compare and group-by views in headless Chromium, their models the live Python widgets
(widget_page.py): a fork against its parent side by side, a paired comparison picked by two
clicks, bars with interval whiskers and a pivot after regrouping. Light and dark screenshots."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_matrix_browser import ARTIFACTS, CHROMIUM, browser, sweep  # noqa: F401 - fixtures
from theme_check import assert_theme
from widget_page import DARK, LIGHT, render, theme

from promptlooper.ui.compare_view import CompareView
from promptlooper.ui.groupby_view import GroupByView

pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")]


def test_compare_and_group_by_in_chromium(sweep, browser) -> None:  # noqa: F811 - fixtures
    wb, exp = sweep
    fork = wb.fork(exp.key, changes={"answer.temperature": [0.0, 0.05, 0.9]}, name="matrix-browser-fork")
    wb.run(fork)
    view = CompareView(wb, fork)
    page = browser.new_page(viewport={"width": 1300, "height": 700}, accept_downloads=True)
    render(page, view)
    page.wait_for_selector(".pl-compare .pl-side-b tr.pl-row")
    assert page.locator(".pl-compare .pl-side-a tr.pl-row").count() == len(view.boards["a"])
    assert page.locator(".pl-compare .pl-side-b tr.pl-row").count() == 30
    assert "8 shared samples" in page.locator(".pl-compare .pl-summary").text_content()
    page.locator(".pl-compare .pl-side-a tr.pl-row").first.click()
    page.locator(".pl-compare .pl-side-b tr.pl-row").first.click()
    page.wait_for_selector(".pl-compare .pl-pair:not([hidden])")
    assert "n = 8 paired samples" in page.locator(".pl-compare .pl-pair").text_content()
    assert page.locator(".pl-compare tr.pl-picked").count() == 2
    assert_theme(page, ".pl-root", COMPARE, dark=False)
    page.screenshot(path=str(ARTIFACTS / "compare-light.png"), full_page=True)
    theme(page, DARK)
    assert_theme(page, ".pl-root", COMPARE, dark=True)
    page.screenshot(path=str(ARTIFACTS / "compare-dark.png"), full_page=True)
    with page.expect_download() as got:
        page.click(".pl-compare .pl-export-report")
    assert got.value.suggested_filename.endswith(".md") and "| experiment | rank |" in Path(got.value.path()).read_text()

    group = GroupByView(wb, exp, "persona")
    page = browser.new_page(viewport={"width": 1000, "height": 700}, accept_downloads=True)
    render(page, group, DARK)
    page.wait_for_selector(".pl-groupby .pl-bar-row")
    assert page.locator(".pl-groupby .pl-bar-row").count() == 2 and page.locator(".pl-groupby .pl-pivot").is_hidden()
    page.select_option(".pl-groupby .pl-by2", "answer.temperature")
    page.wait_for_selector(".pl-groupby .pl-pivot:not([hidden]) td")
    assert page.locator(".pl-groupby .pl-bar-row").count() == 30
    assert page.locator(".pl-groupby .pl-pivot tbody tr").count() == 2
    assert page.locator(".pl-groupby .pl-pivot tbody td").first.text_content().endswith("(n=8)")
    assert_theme(page, ".pl-root", GROUPBY, dark=True)
    page.screenshot(path=str(ARTIFACTS / "groupby-dark.png"), full_page=True)
    with page.expect_download() as got:
        page.click(".pl-groupby .pl-export-csv")
    assert len(Path(got.value.path()).read_text().strip().splitlines()) == 1 + 30
    theme(page, LIGHT)
    assert_theme(page, ".pl-root", GROUPBY, dark=False)
    page.screenshot(path=str(ARTIFACTS / "groupby-light.png"), full_page=True)


# surfaces that must take the theme's colours (JupyterLab's own variables, see widget_page.py)
COMPARE = [".pl-compare", ".pl-compare th", ".pl-compare tr.pl-row td", ".pl-compare tr.pl-picked td", ".pl-compare .pl-pair",
           ".pl-compare select", ".pl-compare .pl-btn"]
GROUPBY = [".pl-groupby", ".pl-groupby select", ".pl-groupby .pl-track", ".pl-groupby .pl-pivot th", ".pl-groupby .pl-pivot td"]
