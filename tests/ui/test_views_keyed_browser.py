"""The Diff, Rate and Timeline views patch their DOM by key: what the user is doing in them
survives live updates (real JupyterLab + Chromium, a sweep running in the kernel).

While a sweep runs, a task in the kernel keeps changing the Diff (alternating two run pairs whose
sections have the same titles) and the Rate view (its run list grows, a notice changes); the
Timeline follows the sweep's events by itself. In each view, the elements the user touched are
the same elements afterwards: text typed in the rating comment stays with its focus, the diff's
"only differences" tick and a focused button stay, the timeline's scrolled-to event stays where
it was on screen.

Uses the JupyterLab server and Chromium page fixtures of test_browser.py.
"""

from __future__ import annotations

import pytest
from test_browser import ARTIFACTS, CHROMIUM, Lab, lab, open_and_run_all, page, sweep_state  # noqa: F401 - fixtures

pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")]

START = r'''
import asyncio
import promptlooper as pl
import promptlooper.ui as plui
from promptlooper.testing import FakeServer

server = FakeServer(latency=0.1).start()
wb = pl.Workbench({db!r})
exp = pl.Experiment(
    project="browser", name="keyed",
    samples=[{{"question": f"q{{i}}", "reference": "alpha"}} for i in range(3)],
    stages=[pl.PromptStage(name="answer", model="fake/fake-small", user="{{{{ question }}}}", params={{"max_tokens": 8}})],
    space={{"answer.temperature": [round(i * 0.005, 3) for i in range(300)]}},
    scorers=[{{"name": "keyword", "words": ["alpha"]}}],
    endpoints={{"fake": {{"base_url": server.base_url}}}},
    concurrency=2,
)
handle = wb.start(exp)
view = plui.workbench(wb, exp, handle)
view
'''

CHURN = r'''
while len(wb.runs(exp.key, limit=3)) < 3:
    await asyncio.sleep(0.2)
a, b, c = [r["id"] for r in wb.runs(exp.key, limit=3)]
view.diff.compare_runs(a, b)
view.rating.show(a)

async def churn():
    # what a live sweep does to these views, every 400 ms: new diff content under the same
    # section titles, a longer run list and a new notice in the Rate view
    for i in range(10_000):
        view.diff.compare_runs(a, c if i % 2 else b)
        view.rating.reload_choices()
        view.rating.notice = f"update {i}"
        await asyncio.sleep(0.4)

ticker = asyncio.get_running_loop().create_task(churn())
'''

COUNT_MUTATIONS = """(sel) => { window.__mut = 0; new MutationObserver(() => window.__mut++)
  .observe(document.querySelector(sel), { subtree: true, childList: true, characterData: true, attributes: true }); }"""


def test_diff_rate_and_timeline_keep_what_the_user_is_doing(lab: Lab, page) -> None:  # noqa: F811 - fixtures
    import nbformat

    db = lab.root / "keyed.db"
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}}
    nb.cells = [nbformat.v4.new_code_cell(START.format(db=str(db)).strip()), nbformat.v4.new_code_cell(CHURN.strip())]
    nbformat.write(nb, lab.root / "keyed.ipynb")
    open_and_run_all(page, lab, "keyed.ipynb")
    try:
        page.wait_for_selector(".pl-leaderboard tr.pl-row", timeout=120_000)
    finally:
        page.screenshot(path=str(ARTIFACTS / "keyed-start.png"), full_page=True)

    # Rate: text typed in the comment keeps its element, its value and the focus
    page.locator(".lm-TabBar-tab:has-text('Rate')").first.click()
    page.wait_for_selector(".pl-rating .pl-comment", timeout=120_000)
    page.wait_for_function("document.querySelector('.pl-rating .pl-notice')?.textContent.startsWith('update')", timeout=60_000)
    page.locator(".pl-rating .pl-comment").click()
    page.keyboard.type("half a thought")
    page.evaluate("() => { window.__c = document.querySelector('.pl-rating .pl-comment');"
                  " window.__s = document.querySelector('.pl-rating .pl-run-select'); }")
    page.evaluate(COUNT_MUTATIONS, ".pl-rating")
    page.wait_for_timeout(3000)
    page.keyboard.type(", finished")
    assert page.evaluate("window.__mut") > 0, "the Rate view should have been updated meanwhile"
    assert page.evaluate("window.__c.isConnected && window.__s.isConnected"), "the editor was rebuilt"
    assert page.evaluate("document.activeElement === window.__c"), "the comment lost the focus"
    assert page.locator(".pl-rating .pl-comment").input_value() == "half a thought, finished"
    page.screenshot(path=str(ARTIFACTS / "keyed-rate.png"), full_page=True)

    # Diff: the tick on "only differences", a focused button and every section cell stay
    page.locator(".lm-TabBar-tab:has-text('Diff')").first.click()
    page.wait_for_selector(".pl-diff .pl-cell", timeout=60_000)
    page.locator(".pl-diff .pl-only-diff").check()
    page.evaluate("() => { window.__cells = [...document.querySelectorAll('.pl-diff .pl-cell')];"
                  " window.__swap = document.querySelector('.pl-diff .pl-swap'); window.__swap.focus(); }")
    page.evaluate(COUNT_MUTATIONS, ".pl-diff")
    page.wait_for_timeout(3000)
    assert page.evaluate("window.__mut") > 0, "the Diff view should have been updated meanwhile"
    assert page.evaluate("window.__cells.length > 0 && window.__cells.every((c) => c.isConnected)"), "diff cells were rebuilt"
    assert page.evaluate("document.activeElement === window.__swap"), "the focused button lost the focus"
    assert page.locator(".pl-diff .pl-only-diff").is_checked()
    page.screenshot(path=str(ARTIFACTS / "keyed-diff.png"), full_page=True)

    # Timeline: new events arrive at the top; the event the user scrolled to stays put on screen
    page.locator(".lm-TabBar-tab:has-text('Timeline')").first.click()
    page.wait_for_function("document.querySelectorAll('.pl-timeline .pl-feed .pl-event').length >= 40", timeout=120_000)
    feed = page.locator(".pl-timeline .pl-feed")
    feed.evaluate("(el) => { el.scrollTop = 200; }")
    page.wait_for_timeout(200)
    mark = """() => { const feed = document.querySelector('.pl-timeline .pl-feed'); const top = feed.getBoundingClientRect().top;
      window.__e = [...feed.querySelectorAll('.pl-event')].find((e) => e.getBoundingClientRect().top >= top);
      window.__first = feed.querySelector('.pl-event'); window.__chip = document.querySelector('.pl-timeline .pl-chip');
      window.__chip.focus(); return window.__e.getBoundingClientRect().top - top; }"""
    where = page.evaluate(mark)
    page.wait_for_timeout(3000)
    assert sweep_state(db)[0] == "running", "the updates should happen during the sweep"
    assert page.evaluate("document.querySelector('.pl-timeline .pl-feed .pl-event') !== window.__first"), "no new event arrived"
    assert page.evaluate("window.__e.isConnected && window.__chip.isConnected"), "timeline elements were rebuilt"
    moved = page.evaluate("() => window.__e.getBoundingClientRect().top"
                          " - document.querySelector('.pl-timeline .pl-feed').getBoundingClientRect().top")
    assert abs(moved - where) <= 2, f"the event scrolled to moved by {moved - where:.0f} px"
    assert page.evaluate("document.activeElement === window.__chip"), "the focused chip lost the focus"
    page.screenshot(path=str(ARTIFACTS / "keyed-timeline.png"), full_page=True)
