"""Housekeeping verbs of the facade: delete or archive experiments and projects, project notes, prices.

Mixed into :class:`~promptlooper.workbench.Workbench`, so the CLI, the MCP server and notebooks
share them. Deleting or archiving is refused (:class:`~promptlooper.errors.SweepConflictError`)
while a live process sweeps the experiment; stop the sweep first. Archived experiments keep
their runs and stay reachable by name; lists leave them out unless asked for everything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import Problem, SpecError

if TYPE_CHECKING:
    from .store import Store

MAX_NOTE = 10_000  # characters in one note


class HousekeepingVerbs:
    store: Store

    def experiment(self, ref: Any) -> dict[str, Any]:  # provided by Workbench
        raise NotImplementedError

    def delete_experiment(self, ref: str) -> dict[str, Any]:
        """Delete an experiment with its runs, scores, sweeps and events (cached responses stay)."""
        row = self.experiment(ref)
        counts = self.store.delete_experiment(row["id"])
        return {"deleted": f"{row['project']}/{row['name']}", **counts}

    def archive_experiment(self, ref: str, archived: bool = True) -> dict[str, Any]:
        """Hide an experiment from lists (``archived=False`` brings it back); its runs are kept."""
        row = self.experiment(ref)
        self.store.set_experiment_archived(row["id"], archived)
        return {"experiment": f"{row['project']}/{row['name']}", "archived": archived}

    def projects(self, include_archived: bool = False) -> list[dict[str, Any]]:
        """Projects with their experiment and note counts (archived ones only with ``include_archived``)."""
        return self.store.project_list(include_archived)

    def delete_project(self, name: str) -> dict[str, Any]:
        """Delete a project, every experiment in it and its notes."""
        return {"deleted": name, **self.store.delete_project(name)}

    def archive_project(self, name: str, archived: bool = True) -> dict[str, Any]:
        """Hide a project and its experiments from lists (``archived=False`` brings them back)."""
        self.store.set_project_archived(name, archived)
        return {"project": name, "archived": archived}

    def add_note(self, project: str, text: str, *, by: str = "") -> dict[str, Any]:
        """A dated note on a project (what was tried, what was decided), listed with its experiments."""
        text = text.strip()
        if not text or len(text) > MAX_NOTE:
            raise SpecError([Problem("text", "a note is empty" if not text else f"a note of {len(text):,} characters "
                                     f"(at most {MAX_NOTE:,})", "write one line or a short paragraph")])
        pid = self.store.project(project)["id"]
        note_id = self.store.add_note(pid, text, by)
        return {"project": project, "id": note_id, "text": text}

    def notes(self, project: str) -> list[dict[str, Any]]:
        return self.store.notes(self.store.project(project)["id"])

    def prices(self) -> list[dict[str, Any]]:
        """Every price known, USD per million tokens: set with ``prices set`` (``user``), then an
        endpoint's own table, then the built-in defaults (globs such as ``gpt-4o*``)."""
        from .providers.pricing import DEFAULT_PRICES

        rows = [{"model": m, "input": p[0], "output": p[1], "source": "user"}
                for m, p in sorted((self.store.get_setting("prices", {}) or {}).items())]
        for name, ep in sorted(self.store.endpoints().items()):
            rows += [{"model": m, "input": p[0], "output": p[1], "source": f"endpoint {name}"}
                     for m, p in sorted((ep.get("prices") or {}).items())]
        rows += [{"model": m, "input": p[0], "output": p[1], "source": "default"} for m, p in DEFAULT_PRICES.items()]
        return rows


__all__ = ["HousekeepingVerbs"]
