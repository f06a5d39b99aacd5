"""Import what the views need before a page asks for them.

A preheated Voila kernel runs the dashboard notebook up to the point where it waits for the
page's request; whatever is imported before that point is paid before the user asks. The
leaderboard's intervals need ``scipy.stats`` (about 2 s to import on a loaded machine), the
charts plotly, the composed view ipywidgets: measured, these were most of a page's first paint.
"""

from __future__ import annotations

import importlib

MODULES = ("scipy.stats", "pandas", "plotly.graph_objects", "plotly.subplots", "plotly.io", "ipywidgets",
           "promptlooper.ui.dashboard")


def preload() -> None:
    for name in MODULES:
        importlib.import_module(name)
