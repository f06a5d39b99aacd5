"""The rating queue in headless Chromium, its model the live Python widget (widget_page.py):
keys j / k move, 1-5 and + / - rate (the store has the rating, the page shows stars and thumbs),
and the read-only queue has no rating controls. Light and dark screenshots in test-artifacts/."""

from __future__ import annotations

import pytest
from test_matrix_browser import ARTIFACTS, CHROMIUM, browser, sweep  # noqa: F401 - fixtures
from theme_check import assert_theme
from widget_page import DARK, render

from promptlooper.ui.rating_queue import RatingQueue, queue_order

pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")]


def test_queue_rated_from_the_keyboard(sweep, browser) -> None:  # noqa: F811 - fixtures
    wb, exp = sweep
    ids, _ = queue_order(wb.runs(exp.key, as_frame=True))
    q = RatingQueue(wb, exp, readonly=False, rater="ana")
    page = browser.new_page(viewport={"width": 1000, "height": 600})
    render(page, q)
    page.wait_for_selector(".pl-queue .pl-card:not([hidden])")
    assert "capital number 0" in page.locator(".pl-queue .pl-prompt").text_content()
    page.focus(".pl-queue")
    page.keyboard.press("4")
    page.keyboard.press("+")
    page.wait_for_function("() => document.querySelectorAll('.pl-queue .pl-star.pl-on').length === 4"
                           " && document.querySelector('.pl-queue .pl-up').classList.contains('pl-on')")
    got = wb.ratings(ids[0])
    assert (got["stars"], got["thumbs"], got["by"]) == (4, "up", "ana")
    assert page.locator(".pl-queue .pl-given").text_content().startswith("▲ thumbs up ★★★★☆")
    assert_theme(page, ".pl-root", QUEUE + [".pl-queue .pl-btn"], dark=False)
    page.screenshot(path=str(ARTIFACTS / "queue-light.png"), full_page=True)
    page.keyboard.press("j")
    page.wait_for_function("(id) => !document.querySelector('.pl-queue .pl-meta').textContent.includes(id)", arg=ids[0][:8])
    assert q.run["id"] == ids[1] and page.locator(".pl-queue .pl-given").text_content() == "not rated yet"
    page.keyboard.press("k")
    page.wait_for_function("(id) => document.querySelector('.pl-queue .pl-meta').textContent.includes(id)", arg=ids[0][:8])
    assert "239 unrated" in page.locator(".pl-queue .pl-where").text_content()


def test_read_only_queue_in_dark_theme(sweep, browser) -> None:  # noqa: F811 - fixtures
    wb, exp = sweep
    ids, _ = queue_order(wb.runs(exp.key, as_frame=True))
    wb.rate(ids[0], thumbs="down", stars=2)
    q = RatingQueue(wb, exp, readonly=True)
    q.handle_message({"action": "toggle"})
    q.show(ids[0])
    page = browser.new_page(viewport={"width": 1000, "height": 600})
    render(page, q, DARK)
    page.wait_for_selector(".pl-queue .pl-card:not([hidden])")
    assert page.locator(".pl-queue .pl-star, .pl-queue .pl-thumb").count() == 0
    page.focus(".pl-queue")
    page.keyboard.press("5")  # a rating key does nothing here
    page.keyboard.press("j")
    page.wait_for_function("(id) => !document.querySelector('.pl-queue .pl-meta').textContent.includes(id)", arg=ids[0][:8])
    assert wb.ratings(ids[0])["stars"] == 2
    q.show(ids[0])
    page.evaluate("(s) => window.plApply(s)", {"run": q.run})
    page.wait_for_function("() => document.querySelector('.pl-queue .pl-given').textContent.startsWith('▼ thumbs down ★★☆☆☆')")
    assert_theme(page, ".pl-root", QUEUE, dark=True)
    page.screenshot(path=str(ARTIFACTS / "queue-readonly-dark.png"), full_page=True)


# surfaces that must take the theme's colours (JupyterLab's own variables, see widget_page.py)
QUEUE = [".pl-queue", ".pl-queue .pl-card"]
