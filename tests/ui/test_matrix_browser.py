"""The output matrix in headless Chromium, its model the live Python widget (see widget_page.py):
a real sweep's cells with score colours and badges, paging that keeps the DOM the same size,
search, a cell opened, two cells picked for the diff, a thumbs-up that reaches the store, a live
update that patches cells in place, an export, and a read-only view with no rating controls.
Light and dark screenshots go to test-artifacts/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import fake_experiment
from theme_check import assert_theme
from widget_page import DARK, push, render, theme

from promptlooper.ui.matrix_view import MatrixView

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-quic"]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")]
playwright_api = pytest.importorskip("playwright.sync_api")

# surfaces that must take the theme's colours (JupyterLab's own variables, see widget_page.py)
MATRIX = [".pl-matrix", ".pl-matrix thead th", ".pl-matrix th.pl-sample", ".pl-matrix td.pl-cell", ".pl-matrix .pl-search",
          ".pl-matrix select", ".pl-matrix .pl-btn"]
NODES = "() => document.getElementById('root').querySelectorAll('*').length"
CELLS = "() => document.querySelectorAll('.pl-matrix td.pl-cell').length"


@pytest.fixture
def sweep(wb, server):
    """30 configurations (15 temperatures x 2 personas) x 8 samples, finished."""
    exp = fake_experiment(server.base_url, name="matrix-browser", space={
        "answer.temperature": [round(i * 0.05, 2) for i in range(15)], "persona": ["terse", "verbose"]},
        samples=[{"question": f"capital number {i}", "reference": "paris"} for i in range(8)])
    assert wb.run(exp).done == 240
    return wb, exp


@pytest.fixture
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def test_matrix_in_chromium(sweep, browser) -> None:
    wb, exp = sweep
    view = MatrixView(wb, exp, readonly=False, page_rows=5, page_cols=6, rater="ana")
    page = browser.new_page(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
    render(page, view)
    page.wait_for_selector(".pl-matrix td.pl-cell .pl-badge")
    assert page.evaluate(CELLS) == 30
    assert page.locator(".pl-matrix thead th").count() == 1 + 6
    assert page.locator(".pl-matrix td.pl-tone-good, .pl-matrix td.pl-tone-mid, .pl-matrix td.pl-tone-bad").count() == 30
    assert_theme(page, ".pl-root", MATRIX, dark=False)
    page.screenshot(path=str(ARTIFACTS / "matrix-light.png"), full_page=True)

    # paging: other samples and columns, the same number of elements
    nodes = page.evaluate(NODES)
    first_head = page.locator(".pl-matrix thead th").nth(1).text_content()
    for _ in range(3):
        page.click(".pl-next-cols")
        page.click(".pl-next-rows")
    page.wait_for_function("() => document.querySelector('.pl-where').textContent.startsWith('samples 4–8')")
    assert page.locator(".pl-matrix thead th").nth(1).text_content() != first_head
    assert page.evaluate(CELLS) == 30 and page.evaluate(NODES) <= nodes

    # search over prompts: one sample left
    page.fill(".pl-search", "capital number 3")
    page.press(".pl-search", "Enter")
    page.wait_for_function("() => document.querySelectorAll('.pl-matrix tbody tr').length === 1")
    assert page.locator(".pl-matrix tbody th").text_content() == "#3"

    # open a cell, pick two for the diff, rate one inline
    cells = page.locator(".pl-matrix td.pl-cell")
    cells.nth(0).locator(".pl-out").click()
    page.wait_for_selector(".pl-detail:not([hidden]) .pl-prompt")
    assert "capital number 3" in page.locator(".pl-detail .pl-prompt").text_content()
    cells.nth(0).locator(".pl-pick").click()
    cells.nth(1).locator(".pl-pick").click()
    page.wait_for_selector(".pl-diffbox:not([hidden]) .pl-diff-sec")
    assert "parameters" in page.locator(".pl-diffbox").text_content()
    run = view.rows[0]["cells"][0]["run_id"]
    marked = cells.nth(0).element_handle()
    page.evaluate("(td) => { td.__mark = 'same element'; }", marked)
    cells.nth(0).locator(".pl-thumb[title='thumbs up']").click()
    page.wait_for_selector(".pl-matrix td.pl-cell .pl-thumb.pl-on")
    assert wb.ratings(run)["thumbs"] == "up"

    # a live update (a rating from elsewhere) patches the cells in place
    wb.rate(view.rows[0]["cells"][1]["run_id"], stars=5)
    view.refresh()
    push(page, view)
    page.wait_for_function("() => document.querySelectorAll('.pl-matrix td.pl-cell .pl-star.pl-on').length >= 5")
    assert page.evaluate("(td) => td.isConnected && td.__mark", marked) == "same element"
    theme(page, DARK)
    assert_theme(page, ".pl-root", MATRIX + [".pl-matrix .pl-diffbox"], dark=True)
    page.screenshot(path=str(ARTIFACTS / "matrix-dark.png"), full_page=True)

    # export: the browser saves the file Python built
    with page.expect_download() as got:
        page.click(".pl-export-csv")
    body = Path(got.value.path()).read_text()
    assert got.value.suggested_filename == "tests-matrix-browser-matrix.csv" and len(body.strip().splitlines()) == 1 + 30


def test_read_only_matrix_has_no_rating_controls(sweep, browser) -> None:
    wb, exp = sweep
    run = wb.runs(exp.key, limit=1)[0]["id"]
    wb.rate(run, thumbs="down", stars=2)
    view = MatrixView(wb, exp, readonly=True, page_rows=4, page_cols=4)
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    render(page, view, DARK)
    page.wait_for_selector(".pl-matrix td.pl-cell .pl-badge")
    assert page.locator(".pl-matrix button.pl-thumb, .pl-matrix button.pl-star").count() == 0
    assert page.locator(".pl-matrix .pl-rated", has_text="★★☆☆☆").count() == 1
    assert_theme(page, ".pl-root", MATRIX, dark=True)
    page.screenshot(path=str(ARTIFACTS / "matrix-readonly-dark.png"), full_page=True)
