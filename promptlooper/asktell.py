"""Ask / tell / evaluate: an outside driver (a notebook cell, an agent over MCP) runs the search.

``ask`` proposes configurations learned from everything in the store (the same Optuna study a
guided sweep rebuilds), ``evaluate`` runs points on every sample, ``tell`` records a score the
driver measured itself. The store stays the only state, so drivers may come and go.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .asyncutil import run_sync
from .samples import sample_id
from .spec import Experiment, Linked
from .sweeps.guided import guided_defaults
from .sweeps.space import build_configuration
from .validation import load_samples

if TYPE_CHECKING:
    from .workbench import Workbench


class OutsideDriver:
    """Mixed into :class:`~promptlooper.workbench.Workbench`."""

    def ask(self: Workbench, ref: str | Experiment, n: int = 1) -> list[dict[str, Any]]:
        """Configurations a guided search would try next, learned from everything in the store.

        An outside driver (a notebook cell, an agent over MCP) runs them with :meth:`evaluate`,
        or evaluates them itself and reports with :meth:`tell`.
        """
        from .sweeps.guided import GuidedDriver, distributions, params_to_point

        exp = ref if isinstance(ref, Experiment) else self.load(ref)
        experiment_id = self.register(exp)
        samples, _ = load_samples(exp)
        driver = GuidedDriver(exp, guided_defaults(exp), [(sample_id(s), s) for s in samples], exp.repeat, exp.seed,
                              self.db_path, experiment_id, {s.column: s.weight for s in exp.scorers})
        study = driver._study(self.store)
        dists = distributions(exp)
        seen = set(driver.candidates) | set(self.store.told_values(experiment_id))
        out: list[dict[str, Any]] = []
        for _ in range(max(1, n) * 40):
            if len(out) >= n:
                break
            trial = study.ask(dists)
            config = build_configuration(exp, params_to_point(exp, trial.params))
            if config.id in seen:
                continue
            seen.add(config.id)
            out.append({"config_id": config.id, "point": config.varied})
            from optuna.trial import TrialState

            study.tell(trial, state=TrialState.FAIL)  # keep asking elsewhere; the real value comes later
        configs = [build_configuration(exp, o["point"]) for o in out]
        self.store.add_configurations(experiment_id, ((c.id, c.as_record(), c.varied) for c in configs))
        return out

    def tell(self: Workbench, ref: str | Experiment, config: str | dict[str, Any], score: float, *, source: str = "agent") -> dict[str, Any]:
        """Record a score an outside driver measured for a configuration (id prefix or point)."""
        if not 0.0 <= float(score) <= 1.0:
            raise ValueError(f"score must lie in 0..1, got {score}")
        exp = ref if isinstance(ref, Experiment) else self.load(ref)
        experiment_id = self.register(exp)
        if isinstance(config, dict):
            cfg = build_configuration(exp, config)
            self.store.add_configurations(experiment_id, [(cfg.id, cfg.as_record(), cfg.varied)])
            config_id = cfg.id
        else:
            config_id = self.store.configuration(experiment_id, config)["id"]
        self.store.tell(experiment_id, config_id, float(score), source)
        self.store.add_event(experiment_id, "guided.told", {"config_id": config_id, "score": float(score), "source": source})
        return {"config_id": config_id, "score": float(score), "source": source}

    async def aevaluate(self: Workbench, ref: str | Experiment, points: list[dict[str, Any]], **options: Any) -> list[dict[str, Any]]:
        exp = ref if isinstance(ref, Experiment) else self.load(ref)
        for point in points:  # an agent's own proposals are checked like any space
            # a linked axis's value is one of its bundles: checked as a linked axis of that bundle
            self._with_space(exp, {k: {"linked": [v]} if isinstance(exp.space.get(k), Linked) else [v] for k, v in point.items()})
        sweep, experiment_id = self._prepare(exp, strategy="evaluate", max_configs=None, seed=None,
                                             concurrency=options.get("concurrency"), points=points)
        await self._drive(sweep, exp.key)
        board = self.leaderboard(experiment_id).set_index("full_config_id")
        out = []
        for config in sweep.plan.configurations:
            row = board.loc[config.id] if config.id in board.index else None
            out.append({"config_id": config.id, "point": config.varied,
                        "score": None if row is None else float(row["score"]),
                        "ci": None if row is None else [float(row["ci_low"]), float(row["ci_high"])],
                        "n": 0 if row is None else int(row["n"])})
        return out

    def evaluate(self: Workbench, ref: str | Experiment, points: list[dict[str, Any]], **options: Any) -> list[dict[str, Any]]:
        """Run the given points (space key -> value) on every sample; their scores, intervals and n."""
        return run_sync(self.aevaluate(ref, points, **options))  # type: ignore[no-any-return]
