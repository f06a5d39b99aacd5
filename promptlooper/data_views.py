"""Data views: the output matrix, group by and sweep analysis of one experiment.

Each reads the runs of the experiment's current definition (as the leaderboard ranks), as the tidy
runs table (:mod:`promptlooper.runs_table`), and hands it to the module that knows the view.
Each function takes the store and the experiment's stored row; nothing here speaks SQL. pandas and
the view modules (optuna, plotly underneath) are imported when a view is asked for (start-up time).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .store import Store

if TYPE_CHECKING:
    import pandas as pd

    from .matrix import Matrix


def matrix(store: Store, row: dict[str, Any], *, by: str, differ: bool, failures: bool, where: dict[str, Any] | None,
           score: Sequence[float] | None, search: str | None, threshold: float) -> Matrix:
    from .matrix import matrix as build
    from .runs_table import current_runs

    return build(store, row, current_runs(store, row), by=by, differ=differ, failures=failures, where=where,
                 score=score, search=search, threshold=threshold)


def group_by(store: Store, row: dict[str, Any], by: str | list[str], metric: str) -> pd.DataFrame:
    from .grouping import group_by as grouped
    from .runs_table import current_runs

    return grouped(current_runs(store, row, with_output=False), by, metric)


def sweep_analysis(store: Store, row: dict[str, Any], evaluator: str) -> dict[str, pd.DataFrame]:
    from .analysis import configuration_table, importance
    from .runs_table import current_runs

    configs = configuration_table(current_runs(store, row, with_output=False))
    return {"configurations": configs, "importance": importance(configs, evaluator)}


def sweep_plots(analysis: dict[str, pd.DataFrame]) -> dict[str, Any]:
    from .ui.sweep_plots import all_figures

    return all_figures(analysis["configurations"], analysis["importance"])


__all__ = ["group_by", "matrix", "sweep_analysis", "sweep_plots"]
