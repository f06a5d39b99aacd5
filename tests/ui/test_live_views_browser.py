"""Live views hold still under the user's hand: the dashboard in real JupyterLab + Chromium
while a sweep updates it about once a second.

- a row element marked before 10 s of updates is the same element after them, and the
  table's scroll position is unchanged;
- 50 human-speed clicks on row checkboxes and sort headers reach the kernel 50 times (the
  notebook records every message the leaderboard receives, through ipywidgets' ``on_msg``);
- no text node of any view reads ``null``, ``None`` or ``undefined``.

Uses the JupyterLab server and Chromium page fixtures of test_browser.py.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from test_browser import ARTIFACTS, CHROMIUM, Lab, lab, open_and_run_all, page, sweep_state  # noqa: F401 - fixtures
from theme_check import THEME_APPLIED, assert_theme, wait_for_jupyterlab_theme

pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")]

NOTEBOOK = r'''
import json
import promptlooper as pl
import promptlooper.ui as plui
from promptlooper.testing import FakeServer

server = FakeServer(latency=0.15).start()
wb = pl.Workbench({db!r})
exp = pl.Experiment(
    project="browser", name="still",
    samples=[{{"question": f"q{{i}}", "reference": "alpha"}} for i in range(4)],
    stages=[pl.PromptStage(name="answer", model="fake/fake-small", user="{{{{ question }}}}", params={{"max_tokens": 8}})],
    space={{"answer.temperature": [round(i * 0.005, 3) for i in range(300)]}},  # a sweep that outlasts the test
    scorers=[{{"name": "keyword", "words": ["alpha"]}}],
    endpoints={{"fake": {{"base_url": server.base_url}}}},
    concurrency=2,
)
handle = wb.start(exp)
view = plui.workbench(wb, exp, handle)
clicks = open({clicks!r}, "a")
view.leaderboard.on_msg(lambda _w, content, _b: (clicks.write(json.dumps(content) + "\n"), clicks.flush()))
view
'''

MARK = """() => {
  const rows = [...document.querySelectorAll('.pl-leaderboard tr.pl-row')].slice(0, 8);
  window.__marked = rows;
  window.__progress = document.querySelector('.pl-live .pl-stat.pl-progress .pl-stat-value');
  return rows.map((r) => r.dataset.id);
}"""
SAME = """() => window.__progress.isConnected && window.__marked.every((el) => el.isConnected
  && document.querySelector(`.pl-leaderboard tr.pl-row[data-id="${el.dataset.id}"]`) === el)"""
BAD_TEXT = """() => {
  const bad = [];
  for (const root of document.querySelectorAll('.pl-root')) {
    const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let n = walk.nextNode(); n; n = walk.nextNode()) {
      if (/\\b(null|None|undefined|NaN)\\b/.test(n.textContent)) bad.push(n.textContent.slice(0, 80));
    }
  }
  return bad;
}"""
PROGRESS = "() => document.querySelector('.pl-live .pl-stat.pl-progress .pl-stat-value').textContent"


def test_views_hold_still_during_a_live_sweep(lab: Lab, page) -> None:  # noqa: F811 - fixtures
    import nbformat

    db, clicks = lab.root / "still.db", lab.root / "still-clicks.jsonl"
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}}
    nb.cells = [nbformat.v4.new_code_cell(NOTEBOOK.format(db=str(db), clicks=str(clicks)).strip())]
    nbformat.write(nb, lab.root / "still.ipynb")

    open_and_run_all(page, lab, "still.ipynb")
    try:
        page.wait_for_function("document.querySelectorAll('.pl-leaderboard tr.pl-row').length >= 24", timeout=120_000)
    finally:
        page.screenshot(path=str(ARTIFACTS / "live-views-running.png"), full_page=True)
    assert sweep_state(db)[0] == "running"

    # 1. ten seconds of updates with the pointer away: same row elements, same scroll position
    page.mouse.move(5, 5)
    marked = page.evaluate(MARK)
    scroller = page.locator(".pl-leaderboard .pl-scroll")
    scroller.evaluate("(el) => { el.scrollTop = 60; }")
    top = scroller.evaluate("(el) => el.scrollTop")
    assert top > 0, "the table should scroll (more rows than its height)"
    before = page.evaluate(PROGRESS)
    page.wait_for_timeout(10_000)
    assert page.evaluate(PROGRESS) != before, "the sweep should have updated the views meanwhile"
    assert sweep_state(db)[0] == "running"
    assert page.evaluate(SAME), "row elements were replaced by an update"
    assert scroller.evaluate("(el) => el.scrollTop") == top
    assert page.evaluate(BAD_TEXT) == []

    # 2. with the pointer over the table the rows hold their order; leaving it applies the ranking
    scroller.evaluate("(el) => { el.scrollTop = 0; }")
    page.locator(".pl-leaderboard tr.pl-row td[data-key='score']").nth(3).hover()
    held = page.evaluate(ORDER)
    page.wait_for_timeout(4000)
    assert [i for i in page.evaluate(ORDER) if i in held] == held, "rows moved under the pointer"
    page.mouse.move(5, 5)
    page.wait_for_timeout(1500)
    ranks = page.evaluate(RANKS)
    assert ranks == sorted(ranks), "leaving the table should apply the current ranking"

    # 3. fifty clicks at human speed on checkboxes and sort headers, all received by the kernel
    scroller.evaluate("(el) => { el.scrollTop = 0; }")
    headers = ["score", "n", "config_id", "score", "latency_ms"]
    sent = 0
    for i in range(50):
        if i % 2:
            page.locator(f".pl-leaderboard th[data-key='{headers[(i // 2) % len(headers)]}']").click()
        else:
            page.locator(f".pl-leaderboard tr.pl-row[data-id='{marked[(i // 2) % 4]}'] td.pl-sel input").click()
        sent += 1
        page.wait_for_timeout(180)
    assert sweep_state(db)[0] == "running", "the clicks should land during the sweep"
    deadline = time.monotonic() + 30
    got: list[dict] = []
    while time.monotonic() < deadline:
        got = [json.loads(line) for line in Path(clicks).read_text().splitlines() if line.strip()]
        if len(got) >= sent:
            break
        time.sleep(0.2)
    assert len(got) == sent == 50, got
    assert [m["action"] for m in got].count("select") == 25
    assert [m["action"] for m in got].count("sort") == 25
    page.wait_for_timeout(1500)
    assert page.evaluate(BAD_TEXT) == []
    assert page.evaluate(ACTIONS_VISIBLE), "approve / reject must be visible without scrolling sideways"
    page.screenshot(path=str(ARTIFACTS / "live-views-after-clicks.png"), full_page=True)

    # 4. a typo in the redirect editor: the text stays, the error is in words
    page.locator(".pl-steering details.pl-redirect summary").click()
    typo = '{"answer.temperature": [0.1, 0.2}'
    page.locator(".pl-steering .pl-space-text").fill(typo)
    page.locator(".pl-steering .pl-redirect-btn").click()
    page.wait_for_function("document.querySelector('.pl-steering .pl-error').textContent.includes('line 1')", timeout=30_000)
    page.wait_for_timeout(2500)  # a few more updates of every view
    assert page.locator(".pl-steering .pl-space-text").input_value() == typo
    assert "ValueError" not in page.inner_text(".pl-steering .pl-error")

    # 5. every view, light then dark (screenshots to look at): each view's surfaces take the
    # theme's colours and its text stays readable; charts follow the theme
    page.locator(".lm-TabBar-tab:has-text('Rate')").first.click()
    page.locator(".pl-rating .pl-thumb-up").click()  # a human score: the rating chips show
    page.locator(".pl-rating .pl-save").click()
    page.wait_for_selector(".pl-rating .pl-human .pl-chip", timeout=30_000)
    if not page.locator(".pl-rating .pl-thumb-up.pl-on").count():
        page.locator(".pl-rating .pl-thumb-up").click()  # a draft choice, drawn as pressed
    page.locator(".lm-TabBar-tab:has-text('Leaderboard')").first.click()
    page.locator(".pl-leaderboard tr.pl-row td[data-key='score']").first.click()  # an expanded row: its runs
    page.wait_for_selector(".pl-leaderboard .pl-run .pl-response", timeout=30_000)
    scroller.evaluate("(el) => { el.scrollLeft = 0; }")  # the header clicks scrolled it sideways: all column names in the shots
    page.mouse.move(5, 5)
    shoot_tabs(page, "light")
    light = page.evaluate(CHART_TEXT)
    page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    wait_for_jupyterlab_theme(page, dark=True)
    page.wait_for_function(f"({CHART_TEXT})() !== {json.dumps(light)}", timeout=30_000)
    rgb = lambda css: re.findall(r"\d+", css)[:3]  # noqa: E731 - plotly moves the alpha to fill-opacity
    assert rgb(page.evaluate(CHART_TEXT)) == rgb(page.evaluate(FONT_COLOR)), "chart text should take the theme's font colour"
    shoot_tabs(page, "dark")
    assert page.evaluate(BAD_TEXT) == []
    page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
    wait_for_jupyterlab_theme(page, dark=False)


# The surfaces checked in each tab besides JupyterLab's own (menu bar, notebook toolbar, file
# browser) and the progress header: a half-applied theme shows in them first.
PAGE = ["#jp-menu-panel", ".jp-NotebookPanel-toolbar", ".jp-FileBrowser", ".pl-live", ".widget-tab > .lm-TabBar .lm-TabBar-tab"]
TABS = {
    "Diff": [".pl-diff", ".pl-diff .pl-cell", ".pl-diff .pl-chip", ".pl-diff select"],
    "Rate": [".pl-rating", ".pl-rating .pl-run-card", ".pl-rating .pl-chip", ".pl-rating .pl-btn.pl-on", ".pl-rating .pl-comment"],
    "Timeline": [".pl-timeline .pl-event", ".pl-timeline .pl-chip"],
    "Leaderboard": [".pl-leaderboard th[data-key='score']", ".pl-leaderboard th.pl-sel", ".pl-leaderboard th.pl-actions-head",
                    ".pl-leaderboard td.pl-sel", ".pl-leaderboard td[data-key='rank']", ".pl-leaderboard td[data-key='config_id']",
                    ".pl-leaderboard td.pl-actions", ".pl-leaderboard tr.pl-row td[data-key='score']", ".pl-leaderboard .pl-btn",
                    ".pl-leaderboard .pl-detail td", ".pl-leaderboard .pl-run .pl-chip",
                    ".pl-steering .pl-btn", ".pl-steering .pl-space-text"],  # steering sits under the leaderboard
    "Matrix": [".pl-matrix td.pl-cell", ".pl-matrix thead th", ".pl-matrix .pl-search", ".pl-matrix select"],
    "Rate queue": [".pl-queue", ".pl-queue .pl-card", ".pl-queue .pl-btn"],
    "Group by": [".pl-groupby select", ".pl-groupby .pl-track"],
    "Sweep plots": [".pl-chart .main-svg"],
    "Charts": [".pl-chart .main-svg"],  # last: the theme is switched with the charts in view
}
# what shows once a tab is drawn (the last four are built when first opened)
READY = {"Matrix": ".pl-matrix td.pl-cell", "Rate queue": ".pl-queue .pl-card:not([hidden])", "Group by": ".pl-groupby .pl-bar-row",
         "Sweep plots": ".pl-chart .main-svg >> visible=true", "Charts": ".pl-chart .main-svg >> visible=true"}


def shoot_tabs(page, theme: str) -> None:  # noqa: F811 - the page fixture, passed in
    dark = theme == "dark"
    for tab, surfaces in TABS.items():
        page.locator(f".lm-TabBar-tab:has-text('{tab}')").first.click()
        if tab in READY:
            page.locator(READY[tab]).first.wait_for(timeout=60_000)
        page.wait_for_timeout(400)
        assert_theme(page, ".pl-root", PAGE + surfaces, dark=dark)
        page.screenshot(path=str(ARTIFACTS / f"live-views-{tab.lower().replace(' ', '-')}-{theme}.png"), full_page=True)
        assert page.evaluate(THEME_APPLIED, dark), f"the {theme} theme changed while {tab} was shot"


ORDER = "() => [...document.querySelectorAll('.pl-leaderboard tr.pl-row')].map((r) => r.dataset.id)"
RANKS = """() => [...document.querySelectorAll('.pl-leaderboard tr.pl-row td[data-key="rank"]')]
  .map((td) => Number(td.textContent)).filter((n) => n > 0)"""
CHART_TEXT = "() => getComputedStyle(document.querySelector('.pl-chart .gtitle')).fill"
FONT_COLOR = """() => { const probe = document.createElement('span'); probe.style.color = 'var(--jp-ui-font-color1)';
  document.body.append(probe); const c = getComputedStyle(probe).color; probe.remove(); return c; }"""
ACTIONS_VISIBLE = """() => { const s = document.querySelector('.pl-leaderboard .pl-scroll').getBoundingClientRect();
  const a = document.querySelector('.pl-leaderboard tr.pl-row td.pl-actions').getBoundingClientRect();
  return a.width > 0 && a.right <= s.right + 1 && a.left >= s.left; }"""
