"""One plotly figure as a light widget: plotly.js is sent once per page, and only when shown.

plotly's own ``FigureWidget`` carries the whole plotly.js bundle (4.96 MB) in every instance,
so a dashboard with three charts pushed 15 MB through the kernel's websocket before showing
its leaderboard. Here the widget carries only the figure (JSON); the browser side asks for the
library the first time a chart is visible, receives it gzipped (about 1.4 MB) as a binary
buffer, and keeps it for every other chart of the page.
"""

from __future__ import annotations

import functools
import gzip
import json
from importlib import resources
from typing import Any

import traitlets

from ._assets import asset, esm
from ._base import PLWidget


@functools.cache
def plotly_library() -> bytes:
    """plotly.js as shipped in the ``plotly`` package, gzipped once per kernel."""
    source = resources.files("plotly") / "package_data" / "plotly.min.js"
    return gzip.compress(source.read_bytes(), compresslevel=6)


def figure_json(fig: Any) -> dict[str, Any]:
    """A figure as plain JSON (numpy arrays and dates become lists and strings)."""
    import plotly.io

    return json.loads(plotly.io.to_json(fig, validate=False, engine="json"))


class PlotlyChart(PLWidget):
    """A plotly figure drawn in the page; ``chart.update(fig)`` redraws it in place."""

    _esm = esm("chart")
    _css = asset("chart", "widget.css")

    figure = traitlets.Dict().tag(sync=True)
    # an SVG data URL of the chart as last drawn, set by the page itself (never sent back here):
    # saved with the notebook's widget state, it is what a reopened notebook without a kernel shows
    snapshot = traitlets.Unicode("").tag(sync=True)

    def __init__(self, fig: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self._in_view = False
        self._pending: dict[str, Any] | None = None
        self.update(fig)
        self.figure, self._pending = self._pending or {}, None

    def update(self, fig: Any, shown: dict[str, Any] | None = None) -> None:
        """Show ``fig``; ``shown`` is its JSON when already made (in a worker thread).

        While no page shows the chart (a hidden tab), the figure waits here: a live sweep would
        otherwise push every redraw of every hidden chart through the websocket."""
        self.fig = fig
        self._pending = figure_json(fig) if shown is None else shown
        if self._in_view:
            self._flush()

    def _flush(self) -> None:
        if self._pending is not None and self._pending != self.figure:
            self.figure = self._pending
        self._pending = None

    def _on_visible(self, on: bool) -> None:
        self._in_view = bool(on)
        if self._in_view:
            self._flush()

    @property
    def data(self) -> Any:
        return self.fig.data

    @property
    def layout(self) -> Any:
        return self.fig.layout

    def _on_plotly_library(self) -> None:
        self.send({"plotly": "gzip"}, buffers=[plotly_library()])
