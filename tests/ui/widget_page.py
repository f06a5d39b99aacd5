"""One real widget in a bare Chromium page, without JupyterLab: its joined ES module and CSS are
loaded as anywidget would load them, and its model is the live Python widget.

The page's ``model`` has anywidget's front-end surface (``get``, ``on``, ``off``, ``send``).
``send`` goes to the Python widget's ``handle_message`` through a Playwright binding and brings
back the widget's synced traits, which fire ``change:<name>`` for each trait whose value changed
- what the comm does in a notebook. :func:`push` sends state changed on the Python side (a live
sweep's update). Themes: JupyterLab's CSS variables for its light and dark themes.
"""

from __future__ import annotations

import json
from typing import Any

LIGHT = {"--jp-layout-color0": "#fff", "--jp-layout-color1": "#fff", "--jp-layout-color2": "#eee",
         "--jp-ui-font-color1": "rgba(0,0,0,.87)", "--jp-ui-font-color2": "rgba(0,0,0,.54)",
         "--jp-border-color1": "#bdbdbd", "--jp-border-color2": "#e0e0e0", "--jp-brand-color1": "#1976d2"}
DARK = {"--jp-layout-color0": "#111", "--jp-layout-color1": "#212121", "--jp-layout-color2": "#424242",
        "--jp-ui-font-color1": "rgba(255,255,255,1)", "--jp-ui-font-color2": "rgba(255,255,255,.7)",
        "--jp-border-color1": "#616161", "--jp-border-color2": "#424242", "--jp-brand-color1": "#64b5f6",
        "--jp-warn-color1": "#ffb300", "--jp-success-color0": "#81c784", "--jp-error-color1": "#ef9a9a"}

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


def theme(page: Any, variables: dict[str, str]) -> None:
    body = ";".join(f"{k}:{v}" for k, v in variables.items())
    page.evaluate("(css) => { document.getElementById('theme').textContent = `:root{${css}}`; }", body)


def render(page: Any, view: Any, variables: dict[str, str] = LIGHT) -> None:
    """Show ``view`` in ``page`` with its messages going to the Python widget."""
    page.expose_function("plSend", lambda msg: (view.handle_message(json.loads(msg)), json.dumps(state(view)))[1])
    page.set_content(PAGE)
    theme(page, variables)
    page.evaluate(BOOT, [view._esm, view._css, state(view)])


def push(page: Any, view: Any) -> None:
    """Send the Python side's current state, as the comm does after a live update."""
    page.evaluate("(s) => window.plApply(s)", state(view))
