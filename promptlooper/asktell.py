"""Ask / tell / evaluate: an outside driver (a notebook cell, an agent over MCP) runs the search.

``ask`` proposes configurations learned from everything in the store (the same Optuna study a
guided sweep rebuilds), ``evaluate`` runs points on every sample (the facade runs them as a sweep
of given points), ``tell`` records a score the driver measured itself. The store stays the only
state, so drivers may come and go. Each function takes the store and plain values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .samples import sample_id
from .scoring import weights_of
from .spec import Experiment, Linked
from .store import Store
from .sweeps.guided import GuidedDriver, distributions, guided_defaults, params_to_point
from .sweeps.space import Configuration, build_configuration
from .validation import load_samples

if TYPE_CHECKING:
    import pandas as pd


def ask(store: Store, exp: Experiment, experiment_id: str, store_path: str, n: int = 1) -> list[dict[str, Any]]:
    """Configurations a guided search would try next, learned from everything in the store."""
    # optuna is heavy: imported when a driver asks (start-up time)
    from optuna.trial import TrialState

    samples, _ = load_samples(exp)
    driver = GuidedDriver(exp, guided_defaults(exp), [(sample_id(s), s) for s in samples], exp.repeat, exp.seed,
                          store_path, experiment_id, weights_of(exp.scorers))
    study = driver.study(store)
    dists = distributions(exp)
    seen = set(driver.candidates) | set(store.told_values(experiment_id))
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
        study.tell(trial, state=TrialState.FAIL)  # keep asking elsewhere; the real value comes later
    configs = [build_configuration(exp, o["point"]) for o in out]
    store.add_configurations(experiment_id, ((c.id, c.as_record(), c.varied) for c in configs))
    return out


def tell(store: Store, exp: Experiment, experiment_id: str, config: str | dict[str, Any], score: float,
         source: str = "agent") -> dict[str, Any]:
    """Record a score (0..1: the facade checks it first) an outside driver measured for a
    configuration (id prefix or point)."""
    if isinstance(config, dict):
        cfg = build_configuration(exp, config)
        store.add_configurations(experiment_id, [(cfg.id, cfg.as_record(), cfg.varied)])
        config_id = cfg.id
    else:
        config_id = store.configuration(experiment_id, config)["id"]
    store.tell(experiment_id, config_id, float(score), source)
    store.add_event(experiment_id, "guided.told", {"config_id": config_id, "score": float(score), "source": source})
    return {"config_id": config_id, "score": float(score), "source": source}


def point_spaces(exp: Experiment, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each point as a space of one configuration, to check it like any space (a linked axis's
    value is one of its bundles: a linked axis of that bundle)."""
    return [{k: {"linked": [v]} if isinstance(exp.space.get(k), Linked) else [v] for k, v in point.items()} for point in points]


def evaluated(configs: list[Configuration], board: pd.DataFrame) -> list[dict[str, Any]]:
    """Each evaluated configuration's score, interval and n from the leaderboard."""
    board = board.set_index("full_config_id")
    out = []
    for config in configs:
        row = board.loc[config.id] if config.id in board.index else None
        out.append({"config_id": config.id, "point": config.varied,
                    "score": None if row is None else float(row["score"]),
                    "ci": None if row is None else [float(row["ci_low"]), float(row["ci_high"])],
                    "n": 0 if row is None else int(row["n"])})
    return out


__all__ = ["ask", "evaluated", "point_spaces", "tell"]
