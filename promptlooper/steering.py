"""The steering verbs of the facade: state written to the store, so they cross processes.

pause / resume / stop / redirect are requests queued in the sweep's row, which the engine polls a
few times a second (wherever it runs); approve / reject are decisions on configurations; fork
makes a new experiment from a configuration. Every verb is recorded as an event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import NotFoundError, Problem, SpecError, SweepInterruptedError
from .spec import Experiment, Linked

if TYPE_CHECKING:
    from .workbench import Workbench


class SteeringVerbs:
    """Mixed into :class:`~promptlooper.workbench.Workbench`."""

    def _steer(self: Workbench, ref: str | Experiment, verb: str, reason: str = "") -> dict[str, Any]:
        exp = self.experiment(ref)
        self._live_sweep(exp, verb)  # a sweep whose process is gone is said so, not asked to pause
        sweep = self.store.request_steering(exp["id"], f"{verb}:{reason}" if reason else verb)
        if sweep is None:
            raise NotFoundError(f"experiment {exp['project']}/{exp['name']} has no running or paused sweep")
        return sweep

    def _live_sweep(self: Workbench, exp: dict[str, Any], verb: str) -> dict[str, Any] | None:
        """The experiment's running or paused sweep (None if there is none); SweepInterruptedError
        if it claims to run but its process is gone."""
        sweep = self.store.settle_sweep(self.store.latest_sweep(exp["id"]))
        if sweep is not None and sweep["status"] == "interrupted":
            key = f"{exp['project']}/{exp['name']}"
            why = "is gone" if sweep.get("stop_reason") == "owner process gone" else "stopped without finishing"
            raise SweepInterruptedError(
                f"cannot {verb} {key}: its sweep {sweep['id'][:8]} was interrupted (process {sweep['owner_pid']} on "
                f"{sweep['owner_host']} {why}); finished runs are kept: `promptlooper rerun {key}` resumes it")
        if sweep is None or sweep["status"] not in ("running", "paused"):
            return None
        return sweep

    def pause(self: Workbench, ref: str | Experiment, reason: str = "") -> dict[str, Any]:
        return self._steer(ref, "pause", reason)

    def resume(self: Workbench, ref: str | Experiment) -> dict[str, Any]:
        return self._steer(ref, "resume")

    def stop(self: Workbench, ref: str | Experiment, reason: str = "") -> dict[str, Any]:
        return self._steer(ref, "stop", reason)

    def redirect(self: Workbench, ref: str | Experiment, space: dict[str, Any] | None = None, *,
                 changes: dict[str, Any] | None = None) -> dict[str, Any]:
        """Change the remaining space of a running sweep (runs already done stay and count).

        ``space`` replaces the whole space; ``changes`` replaces only the axes it names and keeps
        the others (what ``promptlooper redirect --set KEY=VALUES`` does). The new space is
        validated against the experiment first; with no live sweep it becomes the experiment's
        space for the next run.
        """
        exp_row = self.experiment(ref)
        exp = self._experiment_object(exp_row)
        if space is None and changes is None:
            raise SpecError([Problem("space", "nothing to change", "give the new space, or changes to some of its axes")])
        current = exp.model_dump(mode="json")["space"]
        if changes is not None:
            unknown = [k for k in changes if k not in current]
            if unknown:
                raise SpecError([Problem(f"space.{k}", "not an axis of this experiment's space",
                                         f"the axes are: {', '.join(current) or 'none'} (the whole space can be replaced with --space JSON)")
                                 for k in unknown])
        new_space = {**current, **(changes or {})} if space is None else {**space, **(changes or {})}
        changed = self._with_space(exp, new_space)  # raises SpecError with field paths
        record = changed.to_record()
        try:
            sweep = self._live_sweep(exp_row, "redirect")
        except SweepInterruptedError:
            sweep = None  # its process is gone: the new space is the next run's
        self.store.upsert_experiment(exp_row["project"], exp_row["name"], record, exp_row.get("description") or "")
        if sweep is not None:
            self.store.merge_sweep_options(sweep["id"], {"redirect_space": record["space"]})
            self.store.request_steering(exp_row["id"], "redirect")
        else:
            self.store.add_event(exp_row["id"], "experiment.redirected", {"space": record["space"], "live": False})
            self._events_raised()
        return {"experiment": f"{exp_row['project']}/{exp_row['name']}", "space": record["space"],
                "configurations": len(self.configurations(changed)), "live": sweep is not None}

    def set_budget(self: Workbench, ref: str | Experiment, *, max_tokens: int | None = None, max_cost: float | None = None) -> dict[str, Any]:
        """Raise (or set) the budget of the live sweep; `resume` then continues a budget pause."""
        exp = self.experiment(ref)
        sweep = self._live_sweep(exp, "change the budget of")
        if sweep is None:
            raise NotFoundError("no running or paused sweep: put the budget in the experiment (budget:) for the next run")
        budget = {k: v for k, v in (("max_tokens", max_tokens), ("max_cost", max_cost)) if v is not None}
        if max_cost is not None:
            # As for a budget in the experiment: a cost budget cannot hold over an unpriced model.
            from .validation import cost_budget_problems

            spec = self._experiment_object(exp)
            problems = cost_budget_problems(spec, self.pool(spec))
            if problems:
                raise SpecError(problems)
        self.store.merge_sweep_options(sweep["id"], {"budget": budget})
        self.store.add_event(exp["id"], "budget.changed", {"budget": budget})
        self._events_raised()
        return budget

    def approve(self: Workbench, ref: str | Experiment, config_id: str, *, by: str = "", reason: str = "") -> dict[str, Any]:
        """Mark a configuration good enough: it becomes the exported best."""
        return self._decide(ref, config_id, "approved", by, reason)

    def reject(self: Workbench, ref: str | Experiment, config_id: str, *, by: str = "", reason: str = "") -> dict[str, Any]:
        """Exclude a configuration from the leaderboard (its runs are kept)."""
        return self._decide(ref, config_id, "rejected", by, reason)

    def clear_decision(self: Workbench, ref: str | Experiment, config_id: str, *, by: str = "") -> dict[str, Any]:
        return self._decide(ref, config_id, None, by, "")

    def _decide(self: Workbench, ref: str | Experiment, config_id: str, decision: str | None, by: str, reason: str) -> dict[str, Any]:
        exp = self.experiment(ref)
        config = self.store.configuration(exp["id"], config_id)
        self.store.decide_configuration(exp["id"], config["id"], decision, by, reason)
        etype = f"configuration.{decision or 'cleared'}"
        self.store.add_event(exp["id"], etype, {"config_id": config["id"], "by": by, "reason": reason, "varied": config["varied"]})
        self._events_raised()
        return {"config_id": config["id"], "decision": decision, "by": by, "reason": reason}

    def fork(self: Workbench, ref: str | Experiment, config_id: str | None = None, changes: dict[str, Any] | None = None, *,
             name: str | None = None) -> Experiment:
        """A new experiment from a configuration (default: the approved one, else the best) with changed parameters.

        ``changes`` maps space keys to a value (fixed) or a list of values (swept). Every call the
        fork shares with its parent is served from the cache.
        """
        parent_row = self.experiment(ref)
        parent = self._experiment_object(parent_row)
        if config_id is None:
            from .export import best_configuration

            # The same choice as the export: the approved configuration when there is one.
            try:
                config, _ = best_configuration(self.store, parent_row, self.leaderboard(parent_row["id"]))
            except NotFoundError:
                raise NotFoundError("the experiment has no scored configuration to fork from yet") from None
        else:
            config = self.store.configuration(parent_row["id"], config_id)
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
        # Fixed values become one-value axes: same configuration hashes, so shared calls hit the cache.
        data = parent.model_dump(exclude={"stages", "space", "name"})
        data["stages"] = parent.stages
        data["base_dir"] = parent.base_dir
        # (a linked axis's fixed bundle stays a linked axis of one bundle, so it still sets its keys)
        data["space"] = {**{k: {"linked": [v]} if k in linked else [v] for k, v in point.items()}, **space}
        existing = {e["name"] for e in self.store.experiments(parent.project, include_archived=True)}
        if name is None:
            n = 1
            while f"{parent.name}-fork{n}" in existing:
                n += 1
            name = f"{parent.name}-fork{n}"
        data["name"] = name
        child = Experiment.model_validate(data)
        problems = self.validate(child)
        if problems:
            raise SpecError(problems)
        child_id = self.register(child, parent_id=parent_row["id"])
        self._specs[child_id] = child
        payload = {"parent": f"{parent.project}/{parent.name}", "child": child.key, "from_config_id": config["id"], "changes": changes or {}}
        self.store.add_event(parent_row["id"], "experiment.forked", payload)
        self.store.add_event(child_id, "experiment.forked", payload)
        self._events_raised()
        return child

    def request_human(self: Workbench, ref: str | Experiment, reason: str, context: dict[str, Any] | None = None) -> int:
        """Raise the human_needed event (shown in notebooks, dashboards and webhooks)."""
        exp = self.experiment(ref)
        event_id = self.store.add_event(exp["id"], "human_needed", {"reason": reason, "context": context or {}})
        self._events_raised()
        return event_id
