"""Import what the views need before a page asks for them.

A preheated Voila kernel runs the dashboard notebook up to the point where it waits for the
page's request; whatever is imported before that point is paid before the user asks. The
frames need pandas, the charts plotly, the composed view ipywidgets: measured, these were most of
a page's first paint (the leaderboard's intervals no longer need scipy).
"""

from __future__ import annotations

import importlib

MODULES = ("pandas", "plotly.graph_objects", "plotly.subplots", "plotly.io", "ipywidgets",
           "promptlooper.ui.dashboard")


def preload() -> None:
    for name in MODULES:
        importlib.import_module(name)
