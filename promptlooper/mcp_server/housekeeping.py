"""Tools that tidy the store: delete or archive experiments and projects, leave project notes.

Deleting asks ``confirm=true`` of the client (an agent's call cannot be undone by a person
noticing); whether it is allowed at all (no sweep running) is the facade's to say.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from .boundary import ArgumentError, argument
from .context import ToolContext
from .schemas import By, Confirm, ExperimentRef, ProjectName


def _confirmed(confirm: bool) -> None:
    if not confirm:
        raise ArgumentError("confirm", "deleting cannot be undone: pass confirm=true, or archive instead to hide it")


def register(server: Any, context: ToolContext) -> None:
    wb, tool = context.wb, context.tool(server)

    @tool
    def delete_experiment(experiment: ExperimentRef, confirm: Confirm = False) -> dict[str, Any]:
        """Delete an experiment with its runs, scores, sweeps and events (cached responses stay). Refused
        while a sweep of it runs or is paused: stop_sweep first."""
        _confirmed(confirm)
        with argument("experiment"):
            return wb.delete_experiment(experiment)

    @tool
    def archive_experiment(
        experiment: ExperimentRef,
        archived: Annotated[bool, Field(description="false brings an archived experiment back.")] = True,
    ) -> dict[str, Any]:
        """Hide an experiment from list_experiments (its runs are kept; it stays reachable by name)."""
        with argument("experiment"):
            return wb.archive_experiment(experiment, archived)

    @tool
    def delete_project(project: ProjectName, confirm: Confirm = False) -> dict[str, Any]:
        """Delete a project, every experiment in it and its notes. Refused while one of its experiments is swept."""
        _confirmed(confirm)
        with argument("project"):
            return wb.delete_project(project)

    @tool
    def archive_project(
        project: ProjectName,
        archived: Annotated[bool, Field(description="false brings an archived project back.")] = True,
    ) -> dict[str, Any]:
        """Hide a project and its experiments from lists (kept, reachable by name)."""
        with argument("project"):
            return wb.archive_project(project, archived)

    @tool
    def add_project_note(
        project: ProjectName,
        text: Annotated[str, Field(min_length=1, max_length=10_000, description="The note: what was tried, found or decided.")],
        by: By = "",
    ) -> dict[str, Any]:
        """Leave a dated note on a project (listed with its experiments, in status and list_experiments)."""
        with argument("project"):
            return wb.add_note(project, text, by=by)


__all__ = ["register"]
