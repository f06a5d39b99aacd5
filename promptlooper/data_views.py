"""The data views of the facade: the output matrix, group by, comparing experiments, forks and
sweep analysis, mixed into :class:`~promptlooper.workbench.Workbench` (as the steering verbs are).

Each reads the tidy runs table (:mod:`promptlooper.runs_table`) and hands it to the module that
knows the view; nothing here speaks SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd  # each view imports pandas when called, never at start-up

    from .matrix import Matrix
    from .spec import Experiment
    from .workbench import Workbench


class DataViews:
    """Each view reads the runs of the experiment's current definition, as the leaderboard ranks."""

    def matrix(self: Workbench, ref: str | Experiment, *, by: str = "config", differ: bool = False, failures: bool = False,
               where: dict[str, Any] | None = None, score: Sequence[float] | None = None, search: str | None = None,
               threshold: float = 0.5) -> Matrix:
        """The output matrix: samples x configurations (``by="config"``) or x the values of any
        varied parameter, each cell a run's output, score and per-scorer pass / fail.

            >>> m = wb.matrix(exp, differ=True, where={"persona": "terse"}, search="paris")
            >>> m.outputs        # samples x columns of outputs; m.scores, m.cells (one row a run)

        Filters: ``differ`` (outputs not all the same), ``failures`` (a failed run or a scorer
        under ``threshold``), ``where`` (parameter values), ``score`` ((low, high) of the weighted
        score), ``search`` (text in the output or the prompts sent, case-insensitive)."""
        from .matrix import matrix
        from .runs_table import current_runs

        row = self.experiment(ref)
        return matrix(self.store, row, current_runs(self.store, row), by=by, differ=differ, failures=failures, where=where,
                      score=score, search=search, threshold=threshold)

    def group_by(self: Workbench, ref: str | Experiment, by: str | list[str], *, metric: str = "score") -> pd.DataFrame:
        """Mean ± 95% interval with n per value of any variable, or per pair of values:

            >>> wb.group_by(exp, "persona")
            >>> wb.group_by(exp, ["persona", "answer.temperature"])   # pl.grouping.pivot(...) for a table

        ``metric``: the weighted score (default), a scorer, cost, tokens or latency_ms."""
        from .grouping import group_by
        from .runs_table import current_runs

        return group_by(current_runs(self.store, self.experiment(ref), with_output=False), by, metric)

    def compare_experiments(self: Workbench, a: str | Experiment, b: str | Experiment, *,
                            scorer: str | None = None) -> pd.DataFrame:
        """Two experiments' leaderboards side by side over their shared samples (a fork and its
        parent, or any two); see :func:`promptlooper.comparing.compare_experiments`."""
        from .comparing import compare_experiments

        return compare_experiments(self, _key(a), _key(b), scorer=scorer)

    def compare_across(self: Workbench, a: str, b: str, *, scorer: str | None = None) -> dict[str, Any]:
        """Paired comparison of two configurations of (possibly) different experiments, each
        ``EXPERIMENT:CONFIG`` (CONFIG: an id prefix, 'best' or a leaderboard rank)."""
        from .comparing import compare_configurations

        return compare_configurations(self, a, b, scorer=scorer)

    def forks(self: Workbench, ref: str | Experiment) -> list[dict[str, Any]]:
        """The experiments forked from this one (``promptlooper fork``), oldest first."""
        return self.store.forks(self.experiment(ref)["id"])

    def sweep_analysis(self: Workbench, ref: str | Experiment, *, evaluator: str = "auto") -> dict[str, pd.DataFrame]:
        """``configurations`` (one row each, in the order finished, with the best so far) and
        ``importance`` (each varied parameter's, from Optuna's evaluator: mean_decrease_impurity with
        scikit-learn installed, else ped_anova; or name one, fanova included) of the experiment's sweep."""
        from .analysis import configuration_table, importance
        from .runs_table import current_runs

        configs = configuration_table(current_runs(self.store, self.experiment(ref), with_output=False))
        return {"configurations": configs, "importance": importance(configs, evaluator)}

    def sweep_plots(self: Workbench, ref: str | Experiment) -> dict[str, Any]:
        """Plotly figures of the sweep: history (best so far), importance, parallel coordinates,
        contour, slices, and score vs cost (USD) with the Pareto front."""
        from .ui.sweep_plots import all_figures

        data = self.sweep_analysis(ref)
        return all_figures(data["configurations"], data["importance"])


def _key(ref: Any) -> str:
    return ref.key if hasattr(ref, "key") else str(ref)


__all__ = ["DataViews"]
