"""Tools that steer: pause / resume / stop / redirect a sweep whichever process runs it, fork an
experiment, approve or reject a configuration, ask for a human.

Steering is state in the store, so the verbs here are the facade's; the sweep's own process
applies them within about a second.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from ..spec import Experiment
from .boundary import argument
from .context import ToolContext, key
from .replies import sweep_summary
from .runs import start_sweep
from .schemas import By, ConfigRef, ExperimentRef, Reason


def register(server: Any, context: ToolContext) -> None:
    wb, tool = context.wb, context.tool(server)
    find = context.experiment  # request_human has an argument named context

    def steer(verb: str, experiment: str, reason: str = "") -> dict[str, Any]:
        row = context.experiment(experiment)
        fn = getattr(wb, verb)
        with argument("experiment"):
            sweep = fn(row["id"], reason) if reason else fn(row["id"])
        return {"experiment": key(row), "requested": verb, "sweep": sweep_summary(sweep),
                "note": "applied by the sweep's process within about a second"}

    @tool
    def pause_sweep(experiment: ExperimentRef, reason: Reason = "") -> dict[str, Any]:
        """Pause the experiment's running sweep, whichever process runs it: calls in flight finish, no new ones start."""
        return steer("pause", experiment, reason)

    @tool
    def resume_sweep(experiment: ExperimentRef) -> dict[str, Any]:
        """Resume a paused sweep (also after a budget pause, once the budget is raised)."""
        return steer("resume", experiment)

    @tool
    def stop_sweep(experiment: ExperimentRef, reason: Reason = "") -> dict[str, Any]:
        """Stop the experiment's sweep; finished runs stay (run_sweep again resumes)."""
        return steer("stop", experiment, reason)

    @tool
    def redirect_sweep(
        experiment: ExperimentRef,
        space: Annotated[dict[str, Any], Field(description="The new space: key -> list of values or {min, max, step}. "
                                                           + (Experiment.model_fields["space"].description or ""))],
    ) -> dict[str, Any]:
        """Change the remaining space of a running sweep (runs already done stay and count); with no live
        sweep it becomes the space of the next run."""
        row = context.experiment(experiment)
        with argument("space"):
            return wb.redirect(row["id"], space)

    @tool
    def fork_experiment(
        experiment: ExperimentRef,
        changes: Annotated[dict[str, Any], Field(description="Space key -> a value (fixed) or a list of values (swept).")] = {},  # noqa: B006
        config_id: Annotated[str | None, Field(description="Fork from this configuration (default: the approved one, else the best).")] = None,
        name: Annotated[str | None, Field(description="The fork's name (default: '<name>-forkN').")] = None,
        start: Annotated[bool, Field(description="Start the fork's sweep in the background right away.")] = False,
    ) -> dict[str, Any]:
        """A new experiment from a configuration (default: the approved one, else the best) with changed parameters; calls it
        shares with its parent come from the cache."""
        row = context.experiment(experiment)
        if config_id is not None:
            with argument("config_id"):
                config_id = wb.config_id(row["id"], config_id)
        with argument("changes"):
            child = wb.fork(row["id"], config_id, changes, name=name)
        out: dict[str, Any] = {"experiment": child.key, "parent": key(row), "space": child.model_dump(mode="json")["space"],
                               "configurations": len(wb.configurations(child))}
        if start:
            out["sweep"] = start_sweep(context, child.key)
        return out

    @tool
    def approve_configuration(experiment: ExperimentRef, config_id: ConfigRef, by: By = "", reason: Reason = "") -> dict[str, Any]:
        """Mark a configuration good enough: it becomes the exported best."""
        row = context.experiment(experiment)
        with argument("config_id"):
            return wb.approve(row["id"], config_id, by=by, reason=reason)

    @tool
    def reject_configuration(experiment: ExperimentRef, config_id: ConfigRef, by: By = "", reason: Reason = "") -> dict[str, Any]:
        """Exclude a configuration from the leaderboard (its runs are kept)."""
        row = context.experiment(experiment)
        with argument("config_id"):
            return wb.reject(row["id"], config_id, by=by, reason=reason)

    @tool
    def request_human(
        experiment: ExperimentRef,
        reason: Annotated[str, Field(min_length=1, description="What the human should look at or decide.")],
        context: Annotated[dict[str, Any] | None, Field(description="Anything that helps (config ids, numbers).")] = None,
    ) -> dict[str, Any]:
        """Raise the human_needed event (shown in notebooks, dashboards and webhooks)."""
        row = find(experiment)
        event_id = wb.request_human(row["id"], reason, context)
        return {"experiment": key(row), "event_id": event_id, "type": "human_needed"}


__all__ = ["register"]
