"""One real widget in a bare Chromium page, without JupyterLab: its joined ES module and CSS are
loaded as anywidget would load them, and its model is the live Python widget.

The page's ``model`` has anywidget's front-end surface (``get``, ``on``, ``off``, ``send``).
``send`` goes to the Python widget's ``handle_message`` through a Playwright binding and brings
back the widget's synced traits, which fire ``change:<name>`` for each trait whose value changed
- what the comm does in a notebook. :func:`push` sends state changed on the Python side (a live
sweep's update). Themes: the ``--jp-*`` variables of JupyterLab's own light and dark themes, read
from the installed JupyterLab's theme stylesheets (its ``:root`` block, as JupyterLab loads it),
with the page's ``color-scheme`` set as JupyterLab sets it, so that a view is checked against the
colours it really gets.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any


def jupyterlab_theme(name: str, scheme: str) -> str:
    """The ``:root`` block of JupyterLab's ``theme-<name>-extension`` stylesheet (every ``--jp-*``
    and ``--md-*`` variable), and the ``color-scheme`` JupyterLab gives the page with it."""
    spec = importlib.util.find_spec("jupyterlab")
    assert spec and spec.submodule_search_locations, "the browser tests need jupyterlab installed"
    css = Path(spec.submodule_search_locations[0], "themes", "@jupyterlab", f"theme-{name}-extension", "index.css").read_text()
    roots = re.findall(r":root\s*\{[^}]*\}", css)
    assert roots, f"no :root block in JupyterLab's {name} theme"
    return "\n".join(roots) + f"\nbody {{ color-scheme: {scheme}; }}"


LIGHT = jupyterlab_theme("light", "light")
DARK = jupyterlab_theme("dark", "dark")

PAGE = """<!doctype html><html><head><meta charset="utf-8"><style id="theme"></style><style id="css"></style></head>
<body style="margin:8px;background:var(--jp-layout-color0);color:var(--jp-ui-font-color1)"><div id="root"></div></body></html>"""

BOOT = """async ([esm, css, state]) => {
  document.getElementById("css").textContent = css;
  const listeners = new Map();
  const model = {
    state,
    get: (k) => model.state[k],
    on: (ev, fn) => { if (!listeners.has(ev)) listeners.set(ev, new Set()); listeners.get(ev).add(fn); },
    off: (ev, fn) => listeners.get(ev)?.delete(fn),
    send: async (msg) => window.plApply(JSON.parse(await window.plSend(JSON.stringify(msg)))),
  };
  window.plApply = (next) => {
    const changed = Object.keys(next).filter((k) => JSON.stringify(next[k]) !== JSON.stringify(model.state[k]));
    model.state = { ...model.state, ...next };
    for (const k of changed) for (const fn of listeners.get(`change:${k}`) || []) fn();
    window.plApplied = (window.plApplied || 0) + 1;
  };
  const url = URL.createObjectURL(new Blob([esm], { type: "text/javascript" }));
  const mod = await import(url);
  mod.default.render({ model, el: document.getElementById("root") });
}"""


def state(view: Any) -> dict[str, Any]:
    """The widget's synced traits, as the comm would send them (assets left out)."""
    names = [n for n in view.trait_names(sync=True) if not n.startswith("_") and n not in ("layout", "tabbable", "tooltip")]
    return json.loads(json.dumps({n: getattr(view, n) for n in names}, default=str))


def theme(page: Any, css: str) -> None:
    """Switch the page to a theme (:data:`LIGHT` or :data:`DARK`)."""
    page.evaluate("(css) => { document.getElementById('theme').textContent = css; }", css)


def render(page: Any, view: Any, variables: str = LIGHT) -> None:
    """Show ``view`` in ``page`` with its messages going to the Python widget."""
    page.expose_function("plSend", lambda msg: (view.handle_message(json.loads(msg)), json.dumps(state(view)))[1])
    page.set_content(PAGE)
    theme(page, variables)
    page.evaluate(BOOT, [view._esm, view._css, state(view)])


def push(page: Any, view: Any) -> None:
    """Send the Python side's current state, as the comm does after a live update."""
    page.evaluate("(s) => window.plApply(s)", state(view))
