"""Tools for projects and experiments: create, list, plan, status, the event timeline."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from ..errors import Problem, SpecError
from ..validation import parse_experiment
from . import grants
from .boundary import ArgumentError, argument
from .context import ToolContext
from .replies import sweep_summary
from .schemas import ExperimentJSON, ExperimentRef, MaxConfigs, Seed, Strategy


def register(server: Any, context: ToolContext) -> None:
    wb, tool = context.wb, context.tool(server)

    @tool
    def create_project(
        name: Annotated[str, Field(min_length=1, description="Project name (experiments reference it as 'project/name').")],
        description: Annotated[str, Field(description="What the project is for.")] = "",
    ) -> dict[str, Any]:
        """Create a project workspace (or return the existing one of that name)."""
        return {"project": name, "id": wb.create_project(name, description)}

    @tool
    def create_experiment(experiment: ExperimentJSON) -> dict[str, Any]:
        """Define (or update) an experiment: samples, 1..N stages, the space to vary, weighted scorers.

        It is validated before anything is stored: every problem comes back with its field path.
        Nothing is called; start it with run_sweep (plan first to see the cost)."""
        if not isinstance(experiment, dict):
            raise ArgumentError("experiment", "give the experiment as a JSON object")
        data = dict(experiment)
        # What a client may not do comes first; the facade's validation adds what it finds elsewhere.
        problems = grants.named_only(data) + grants.experiment_problems(wb, data)
        try:
            exp = parse_experiment(dict(data))
        except SpecError as exc:
            partial = getattr(exc, "partial", None)
            seen = {(p.path, p.message) for p in exc.problems}
            more = [p for p in wb.validate(partial) if (p.path, p.message) not in seen] if partial else []
            raise SpecError(problems + _elsewhere(exc.problems + more, problems)) from None
        problems += _elsewhere(wb.validate(exp), problems)
        if problems:
            raise SpecError(problems)
        experiment_id = wb.register(exp)
        return {"experiment": exp.key, "id": experiment_id, "configurations": len(wb.configurations(exp)),
                "strategy": exp.strategy, "next": "plan / run_sweep / run_single"}

    @tool
    def list_experiments(
        project: Annotated[str | None, Field(description="Only this project's experiments (and its notes).")] = None,
        include_archived: Annotated[bool, Field(description="Archived experiments too.")] = False,
    ) -> dict[str, Any]:
        """Experiments in the store, with status and run counts (archived ones only if asked); with a
        project, its notes too."""
        rows = wb.experiments(project, include_archived=include_archived)
        out: dict[str, Any] = {"experiments": [
            {"experiment": f"{r['project']}/{r['name']}", "status": r["status"], "runs": r["runs"], "updated_at": r["updated_at"],
             **({"parent_id": r["parent_id"]} if r.get("parent_id") else {}), **({"archived": True} if r.get("archived_at") else {})}
            for r in rows]}
        if project and rows:
            out["notes"] = [{"ts": n["created_at"], "text": n["text"], "by": n["by"]} for n in wb.notes(project)]
        return out

    @tool
    def plan(experiment: ExperimentRef, strategy: Strategy = None, max_configs: MaxConfigs = None,
             seed: Seed = None) -> dict[str, Any]:
        """Before any call: configurations, runs, model calls needed (stages and scorers such as a judge), already
        cached, estimated tokens and cost, and the models with no price (counted as $0)."""
        return wb.plan(context.load(experiment), strategy=strategy, max_configs=max_configs, seed=seed)

    @tool
    def get_experiment_status(experiment: ExperimentRef) -> dict[str, Any]:
        """An experiment's status, run counts by status, its latest sweep (progress, best so far), the
        experiment it was forked from (parent) and its forks."""
        with argument("experiment"):
            st = wb.status(experiment)
        return {"experiment": st["experiment"], "status": st["status"], "runs": st["runs"], "sweep": sweep_summary(st["sweep"]),
                "parent": st.get("parent"), "forks": st.get("forks", [])}

    @tool
    def get_events(
        experiment: Annotated[str | None, Field(description="A stored experiment (default: all).")] = None,
        types: Annotated[list[str] | None, Field(description="Event types or families, e.g. ['run.failed', 'experiment.*'].")] = None,
        after_id: Annotated[int, Field(ge=0, description="Only events after this id (poll with the last id you saw).")] = 0,
        limit: Annotated[int, Field(ge=1, le=1000)] = 50,
    ) -> dict[str, Any]:
        """The event timeline (experiment.*, run.*, new_best_found, budget.exhausted, configuration.*, human_needed)."""
        with argument("experiment"):
            events = wb.events(experiment, types or None, after_id, limit)
        return {"events": [{"id": e["id"], "ts": e["ts"], "type": e["type"], "payload": e["payload"]} for e in events],
                "last_id": events[-1]["id"] if events else after_id}


def _elsewhere(problems: list[Problem], seen: list[Problem]) -> list[Problem]:
    """``problems`` at paths not already reported in ``seen``."""
    paths = {p.path for p in seen}
    return [p for p in problems if p.path not in paths]


__all__ = ["register"]
