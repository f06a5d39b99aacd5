"""Steering: state written to the store, so that it crosses processes.

pause / resume / stop / redirect are requests queued in the sweep's row, which the engine polls a
few times a second (wherever it runs); approve / reject are decisions on configurations; fork
makes a new experiment from a configuration. Every verb is recorded as an event, with who asked
(``by``: see :mod:`promptlooper.actors`); a queued request carries its ``by`` to the sweep's
process, which records it in the event it raises (``experiment.paused``, ``…resumed``, …).

Each function takes the store and the experiment's stored row (and plain values); the facade
(:class:`~promptlooper.workbench.Workbench`) resolves references, validates, and delivers the
events these record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import NotFoundError, Problem, SpecError, SweepConflictError, SweepInterruptedError
from .providers.registry import EndpointPool
from .spec import Experiment, Linked
from .store import Store
from .store.liveness import WORKERS
from .store.sweeps import steering_request
from .validation import cost_budget_problems


def live_sweep(store: Store, row: dict[str, Any], verb: str) -> dict[str, Any] | None:
    """The experiment's running or paused sweep (None if there is none); SweepInterruptedError
    if it claims to run but its process is gone."""
    sweep = store.settle_sweep(store.latest_sweep(row["id"]))
    if sweep is not None and sweep["status"] == "interrupted":
        key = f"{row['project']}/{row['name']}"
        why = "is gone" if sweep.get("stop_reason") == "owner process gone" else "stopped without finishing"
        raise SweepInterruptedError(
            f"cannot {verb} {key}: its sweep {sweep['id'][:8]} was interrupted (process {sweep['owner_pid']} on "
            f"{sweep['owner_host']} {why}); finished runs are kept: `promptlooper rerun {key}` resumes it")
    if sweep is None or sweep["status"] not in ("running", "paused"):
        return None
    return sweep


def steer(store: Store, row: dict[str, Any], verb: str, reason: str = "", by: str = "") -> dict[str, Any]:
    """Queue ``verb`` (pause, resume, stop) for the experiment's live sweep, asked by ``by``."""
    live_sweep(store, row, verb)  # a sweep whose process is gone is said so, not asked to pause
    sweep = store.request_steering(row["id"], steering_request(verb, reason, by))
    if sweep is None:
        raise NotFoundError(f"experiment {row['project']}/{row['name']} has no running or paused sweep")
    return sweep


def new_space(exp: Experiment, space: dict[str, Any] | None, changes: dict[str, Any] | None) -> dict[str, Any]:
    """The space a redirect asks for: ``space`` replaces the whole space, ``changes`` only the axes it names."""
    if space is None and changes is None:
        raise SpecError([Problem("space", "nothing to change", "give the new space, or changes to some of its axes")])
    current = exp.model_dump(mode="json")["space"]
    if changes is not None:
        unknown = [k for k in changes if k not in current]
        if unknown:
            raise SpecError([Problem(f"space.{k}", "not an axis of this experiment's space",
                                     f"the axes are: {', '.join(current) or 'none'} (the whole space can be replaced with --space JSON)")
                             for k in unknown])
    return {**current, **(changes or {})} if space is None else {**space, **(changes or {})}


def redirect(store: Store, row: dict[str, Any], changed: Experiment, by: str = "",
             shared: Callable[[dict[str, Any], Experiment, str], object] | None = None) -> bool:
    """Make ``changed`` (validated) the experiment; a live sweep is asked to swap its remaining
    runs, otherwise the new space is the next run's. Returns whether a live sweep was redirected.
    A sweep workers share is re-planned in the database by ``shared(sweep, changed, by)``
    (the facade's: it compiles the new space as the workers will)."""
    record = changed.to_record()
    try:
        sweep = live_sweep(store, row, "redirect")
    except SweepInterruptedError:
        sweep = None  # its process is gone: the new space is the next run's
    if sweep is not None and sweep.get("owner_host") == WORKERS:
        if shared is None:
            raise SweepConflictError(f"the sweep of {row['project']}/{row['name']} is shared by workers and cannot be "
                                     "redirected from here: stop it, then queue the new space (run --workers)")
        store.upsert_experiment(row["project"], row["name"], record, row.get("description") or "")
        shared(sweep, changed, by)
        return True
    store.upsert_experiment(row["project"], row["name"], record, row.get("description") or "")
    if sweep is not None:
        store.merge_sweep_options(sweep["id"], {"redirect_space": record["space"]})
        store.request_steering(row["id"], steering_request("redirect", by=by))
    else:
        store.add_event(row["id"], "experiment.redirected", {"space": record["space"], "live": False, **_by(by)})
    return sweep is not None


def set_budget(store: Store, row: dict[str, Any], spec: Experiment, pool: EndpointPool, *, max_tokens: int | None,
               max_cost: float | None, by: str = "") -> dict[str, Any]:
    """Raise (or set) the budget of the live sweep."""
    sweep = live_sweep(store, row, "change the budget of")
    if sweep is None:
        raise NotFoundError("no running or paused sweep: put the budget in the experiment (budget:) for the next run")
    budget = {k: v for k, v in (("max_tokens", max_tokens), ("max_cost", max_cost)) if v is not None}
    if max_cost is not None:
        # As for a budget in the experiment: a cost budget cannot hold over an unpriced model.
        problems = cost_budget_problems(spec, pool)
        if problems:
            raise SpecError(problems)
    store.merge_sweep_options(sweep["id"], {"budget": budget})
    store.add_event(row["id"], "budget.changed", {"budget": budget, **_by(by)})
    return budget


def decide(store: Store, row: dict[str, Any], config_id: str, decision: str | None, by: str, reason: str) -> dict[str, Any]:
    """Approve, reject (``decision``) or clear (None) a configuration."""
    config = store.configuration(row["id"], config_id)
    store.decide_configuration(row["id"], config["id"], decision, by, reason)
    etype = f"configuration.{decision or 'cleared'}"
    store.add_event(row["id"], etype, {"config_id": config["id"], "by": by, "reason": reason, "varied": config["varied"]})
    return {"config_id": config["id"], "decision": decision, "by": by, "reason": reason}


def fork_of(store: Store, parent: Experiment, config: dict[str, Any], changes: dict[str, Any] | None,
            name: str | None) -> Experiment:
    """A new experiment from ``config`` of ``parent`` with changed parameters (not yet validated).

    ``changes`` maps space keys to a value (fixed) or a list of values (swept). Fixed values become
    one-value axes: same configuration hashes, so every call shared with the parent hits the cache.
    """
    point = dict(config["varied"])
    space: dict[str, Any] = {}
    linked = {k for k, v in parent.space.items() if isinstance(v, Linked)}
    for key, value in (changes or {}).items():
        if key in linked and isinstance(value, dict) and "linked" not in value:
            point[key] = value  # one bundle of a linked axis: a fixed value
        elif isinstance(value, list | dict):
            space[key] = value
            point.pop(key, None)
        else:
            point[key] = value
    data = parent.model_dump(exclude={"stages", "space", "name"})
    data["stages"] = parent.stages
    data["base_dir"] = parent.base_dir
    # (a linked axis's fixed bundle stays a linked axis of one bundle, so it still sets its keys)
    data["space"] = {**{k: {"linked": [v]} if k in linked else [v] for k, v in point.items()}, **space}
    if name is None:
        existing = {e["name"] for e in store.experiments(parent.project, include_archived=True)}
        n = 1
        while f"{parent.name}-fork{n}" in existing:
            n += 1
        name = f"{parent.name}-fork{n}"
    data["name"] = name
    return Experiment.model_validate(data)


def record_fork(store: Store, parent_row: dict[str, Any], child: Experiment, child_id: str, config_id: str,
                changes: dict[str, Any] | None, by: str = "") -> None:
    payload = {"parent": f"{parent_row['project']}/{parent_row['name']}", "child": child.key, "from_config_id": config_id,
               "changes": changes or {}, **_by(by)}
    store.add_event(parent_row["id"], "experiment.forked", payload)
    store.add_event(child_id, "experiment.forked", payload)


def _by(by: str) -> dict[str, str]:
    """``{"by": by}`` for an event's payload, nothing when no one is named."""
    return {"by": by} if by else {}


__all__ = ["decide", "fork_of", "live_sweep", "new_space", "record_fork", "redirect", "set_budget", "steer"]
