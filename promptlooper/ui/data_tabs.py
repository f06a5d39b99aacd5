"""The issue-17 views as tabs of the experiment dashboard, each built the first time its tab is
opened: output matrix, rating queue, group by, sweep plots and (when the experiment has a parent
or forks) compare.

Built lazily because each reads the whole runs table (about half a second at 5,000 runs): a
dashboard that opened all of them up front would make every reader of the leaderboard wait.
Read-only dashboards get the same tabs; the matrix and the queue then draw no rating controls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets

from .compare_view import CompareView
from .groupby_view import GroupByView
from .matrix_view import MatrixView
from .rating_queue import RatingQueue
from .sweep_plots_view import SweepPlots


class DataTabs:
    """Placeholders for ``tabs`` (an ipywidgets.Tab) filled when first selected."""

    TITLES = ("Matrix", "Rate queue", "Group by", "Sweep plots", "Compare")

    def __init__(self, wb: Any, experiment: str, handle: Any = None, *, readonly: bool, live: bool, slot: str = ""):
        self.wb, self.experiment, self.handle = wb, experiment, handle
        self.readonly, self.live, self.slot = readonly, live, slot
        self.views: dict[str, Any] = {}
        status = wb.status(experiment)
        builders: dict[str, Callable[[], Any]] = {
            "Matrix": self._matrix, "Rate queue": self._queue,
            "Group by": lambda: self._live(GroupByView(wb, experiment, readonly=readonly)),
            "Sweep plots": lambda: self._live(SweepPlots(wb, experiment)),
        }
        if status["parent"] or status["forks"]:
            builders["Compare"] = lambda: CompareView(wb, experiment, readonly=readonly)
        self.builders = builders
        self.boxes = {title: ipywidgets.VBox() for title in builders}

    def _live(self, view: Any) -> Any:
        """``view``, following the sweep when the dashboard is live (each view stops with it)."""
        if self.live:
            view.follow(self.handle)
        return view

    def _matrix(self) -> MatrixView:
        return self._live(MatrixView(self.wb, self.experiment, readonly=self.readonly, slot=self.slot))

    def _queue(self) -> RatingQueue:
        return self._live(RatingQueue(self.wb, self.experiment, readonly=self.readonly, slot=self.slot))

    def attach(self, tabs: Any) -> None:
        """Append the placeholders to ``tabs`` and build each view on its first selection."""
        first = len(tabs.children)
        tabs.children = [*tabs.children, *self.boxes.values()]
        for i, title in enumerate(self.boxes):
            tabs.set_title(first + i, title)
        titles = list(self.boxes)
        tabs.observe(lambda change: self.open(titles[change["new"] - first])
                     if change["new"] is not None and change["new"] >= first else None, names="selected_index")

    def open(self, title: str) -> Any:
        """The view of ``title``, built now if it was not yet."""
        if title not in self.views:
            try:
                self.views[title] = self.builders[title]()
            except Exception as exc:  # noqa: BLE001 - shown in its tab, the dashboard keeps working
                self.views[title] = ipywidgets.HTML(f"<p class='pl-error'>{type(exc).__name__}: {exc}</p>")
            self.boxes[title].children = [self.views[title]]
        return self.views[title]

    def close(self) -> None:
        for view in self.views.values():
            view.close()
