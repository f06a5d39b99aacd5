"""Live notebook widgets (anywidget): the Python side of the views whose ESM/CSS live in ``widgets/``.

    import promptlooper as pl
    import promptlooper.ui as plui

    handle = wb.start(exp)
    plui.workbench(wb, exp, handle)        # everything, composed (Workbench.dashboard())
    plui.Leaderboard(wb, exp)              # or one view

Views: :class:`LiveSweep`, :class:`Leaderboard`, :class:`DiffView`, :class:`Steering`,
:class:`Rating`, :class:`Timeline`, :class:`Charts`, :class:`MatrixView`, :class:`RatingQueue`,
:class:`CompareView`, :class:`GroupByView`, :class:`SweepPlots`. Everything is imported on first use, so
``import promptlooper`` (and this module) never imports ipywidgets.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._base import default_readonly
    from .charts import Charts
    from .compare_view import CompareView
    from .dashboard import Dashboard, workbench
    from .diff import DiffView
    from .groupby_view import GroupByView
    from .leaderboard import Leaderboard
    from .live import LiveSweep
    from .matrix_view import MatrixView
    from .rating import Rating
    from .rating_queue import RatingQueue
    from .steering import Steering
    from .sweep_plots_view import SweepPlots
    from .timeline import Timeline

_WHERE = {
    "Charts": "charts", "CompareView": "compare_view", "GroupByView": "groupby_view", "Dashboard": "dashboard", "DiffView": "diff", "Leaderboard": "leaderboard",
    "LiveSweep": "live", "MatrixView": "matrix_view", "Rating": "rating", "RatingQueue": "rating_queue", "Steering": "steering", "SweepPlots": "sweep_plots_view", "Timeline": "timeline",
    "default_readonly": "_base", "workbench": "dashboard",
}

__all__ = ["Charts", "CompareView", "GroupByView", "Dashboard", "DiffView", "Leaderboard", "LiveSweep", "MatrixView", "Rating", "RatingQueue", "Steering", "SweepPlots", "Timeline",
           "default_readonly", "workbench"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
