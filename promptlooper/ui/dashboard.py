"""The composed view: live progress above tabs for the leaderboard + steering, diff, rating,
timeline and charts, then the data views built when first opened (matrix, rating queue, group by,
sweep plots, compare), wired together (a selected row feeds steering and the diff; picked runs
feed the diff and the rating)."""

from __future__ import annotations

from typing import Any

import ipywidgets

from ._base import default_readonly, experiment_key
from .charts import Charts
from .data_tabs import DataTabs
from .diff import DiffView
from .leaderboard import Leaderboard
from .live import LiveSweep
from .rating import Rating
from .steering import Steering
from .timeline import Timeline


class Dashboard(ipywidgets.VBox):  # type: ignore[misc]
    """A VBox holding every view of one experiment; ``close()`` stops their refresh loops."""

    def __init__(self, wb: Any, experiment: Any, handle: Any = None, *, readonly: bool | None = None, live: bool = True,
                 slot: str = ""):
        ro = default_readonly() if readonly is None else bool(readonly)
        key = experiment_key(experiment)
        self.readonly = ro
        self.live = LiveSweep(wb, key, handle, readonly=ro, slot=slot)
        self.leaderboard = Leaderboard(wb, key, handle, readonly=ro, live=live, slot=slot)
        self.steering = Steering(wb, key, readonly=ro, live=live, slot=slot)
        self.diff = DiffView(wb, key, readonly=ro)
        self.rating = Rating(wb, key, readonly=ro)
        self.timeline = Timeline(wb, key, readonly=ro, live=live, slot=slot)
        self.charts = Charts(wb, key, live=live, slot=slot, source=self.leaderboard)
        self.leaderboard.on_select(self._selected)
        self.leaderboard.on_frame(self._offer_best)
        self._offer_best(self.leaderboard.frame)
        self.leaderboard.on_pick_runs(self._picked)
        tabs = ipywidgets.Tab(children=[
            ipywidgets.VBox([self.leaderboard, self.steering]), self.diff, self.rating, self.timeline, self.charts.widget,
        ])
        for i, title in enumerate(("Leaderboard", "Diff", "Rate", "Timeline", "Charts")):
            tabs.set_title(i, title)
        # issue 17's views (matrix, rating queue, group by, sweep plots, compare), built when opened
        self.data = DataTabs(wb, key, handle, readonly=ro, live=live, slot=slot)
        self.data.attach(tabs)
        self.tabs = tabs
        super().__init__(children=[self.live, tabs])

    def _selected(self, config_ids: list[str]) -> None:
        # the leaderboard's last frame: a big board is not computed again on the kernel's loop
        if config_ids:
            self.steering.select(config_ids[-1], self.leaderboard.varied_of(config_ids[-1]), ticked=len(config_ids))
        else:
            self.steering.select(None)
        if len(config_ids) == 2:
            self.diff.compare_configs(*config_ids, board=self.leaderboard.frame)

    def _offer_best(self, _frame: Any) -> None:
        self.rating.follow()  # the Rate tab fills itself once the sweep has runs
        top = self.leaderboard.best_id()
        self.steering.offer_best(top, self.leaderboard.varied_of(top) if top else None)

    def _picked(self, run_ids: list[str]) -> None:
        if run_ids:
            self.rating.show(run_ids[-1])
        if len(run_ids) == 2:
            self.diff.compare_runs(*run_ids)

    def views(self) -> list[Any]:
        return [self.live, self.leaderboard, self.steering, self.diff, self.rating, self.timeline]

    def close(self) -> None:
        for view in self.views():
            view.close()
        self.charts.close()
        self.data.close()
        self.tabs.close()
        super().close()


def workbench(wb: Any, experiment: Any, handle: Any = None, *, readonly: bool | None = None, live: bool = True,
              slot: str = "") -> Dashboard:
    """Every live view of one experiment in one widget (what ``Workbench.dashboard()`` shows).

        >>> import promptlooper.ui as plui                       # doctest: +SKIP
        >>> plui.workbench(wb, "quickstart/capitals", handle)    # doctest: +SKIP

    ``readonly`` defaults to ``PROMPTLOOPER_READONLY=1`` or a Voila kernel; it hides steering and
    rating buttons and makes the views ignore such messages. Building it again for the same
    experiment (a re-run cell) stops the older one's updates; give ``slot`` to keep several.
    """
    return Dashboard(wb, experiment, handle, readonly=readonly, live=live, slot=slot)
