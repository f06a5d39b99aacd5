"""Sweep plots view: the figures of :func:`promptlooper.ui.sweep_plots.all_figures` (history with
best so far, parameter importance, parallel coordinates, contour, slices, score vs cost with the
Pareto front), each a light :class:`~promptlooper.ui.plotly_chart.PlotlyChart`.

``refresh()`` reads ``wb.sweep_plots`` again and redraws each chart in place (a chart in a hidden
tab waits until it is shown, see PlotlyChart). Figures that cannot be drawn yet (one parameter:
no contour) are left out rather than shown empty.
"""

from __future__ import annotations

from typing import Any

import ipywidgets

from ._base import experiment_key
from .plotly_chart import PlotlyChart

ORDER = ("history", "importance", "parallel", "contour", "slices", "cost")


class SweepPlots(ipywidgets.VBox):  # type: ignore[misc]
    """The sweep's plots of one experiment, one chart each, in :data:`ORDER`."""

    def __init__(self, wb: Any, experiment: Any):
        self.wb = wb
        self.experiment = experiment_key(experiment)
        self.charts: dict[str, PlotlyChart] = {}
        super().__init__()
        self.refresh()

    def refresh(self) -> None:
        figures = self.wb.sweep_plots(self.experiment)
        for name in ORDER:
            fig = figures.get(name)
            if fig is None:
                continue
            if name in self.charts:
                self.charts[name].update(fig)
            else:
                self.charts[name] = PlotlyChart(fig)
        self.children = [self.charts[n] for n in ORDER if n in self.charts]

    def close(self) -> None:
        for chart in self.charts.values():
            chart.close()
        super().close()
