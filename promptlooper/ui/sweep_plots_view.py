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

from ._base import TERMINAL, Reader, every, experiment_key, replace_loop
from .plotly_chart import PlotlyChart

ORDER = ("history", "importance", "parallel", "contour", "slices", "cost")


class SweepPlots(ipywidgets.VBox):  # type: ignore[misc]
    """The sweep's plots of one experiment, one chart each, in :data:`ORDER`."""

    def __init__(self, wb: Any, experiment: Any):
        self.wb = wb
        self.experiment = experiment_key(experiment)
        self.charts: dict[str, PlotlyChart] = {}
        self._reader = Reader(wb)
        self._task: Any = None
        super().__init__()
        self.refresh()

    def refresh(self) -> None:
        self._draw(self.wb.sweep_plots(self.experiment))

    def follow(self, handle: Any = None, interval: float = 3.0) -> None:
        """Redraw every ``interval`` s while the sweep runs; the figures are made in a worker thread
        (with a read-only connection of their own), the charts patched in place."""
        async def step() -> bool:
            ended = bool(handle.done()) if handle is not None else \
                await self._reader.run(lambda ro: ro.status(self.experiment).get("status") in TERMINAL)
            self._draw(await self._reader.run(lambda ro: ro.sweep_plots(self.experiment)))
            return ended

        self._task = replace_loop(("SweepPlots", self.experiment), every(interval, step, self._reader.changes(self.experiment)))

    def _draw(self, figures: dict[str, Any]) -> None:
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
        if self._task is not None:
            self._task.cancel()
        self._reader.close()
        for chart in self.charts.values():
            chart.close()
        super().close()
