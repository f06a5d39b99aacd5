"""Housekeeping: delete or archive experiments and projects, project notes, prices.

Deleting or archiving is refused (:class:`~promptlooper.errors.SweepConflictError`) while a live
process sweeps the experiment; stop the sweep first. Archived experiments keep their runs and stay
reachable by name; lists leave them out unless asked for everything. Each function takes the
store and the experiment's stored row (or plain values); the facade resolves references.
"""

from __future__ import annotations

from typing import Any

from .errors import Problem, SpecError
from .providers.pricing import DEFAULT_PRICES
from .store import Store

MAX_NOTE = 10_000  # characters in one note


def delete_experiment(store: Store, row: dict[str, Any]) -> dict[str, Any]:
    counts = store.delete_experiment(row["id"])
    return {"deleted": f"{row['project']}/{row['name']}", **counts}


def archive_experiment(store: Store, row: dict[str, Any], archived: bool) -> dict[str, Any]:
    store.set_experiment_archived(row["id"], archived)
    return {"experiment": f"{row['project']}/{row['name']}", "archived": archived}


def add_note(store: Store, project: str, text: str, by: str) -> dict[str, Any]:
    text = text.strip()
    if not text or len(text) > MAX_NOTE:
        raise SpecError([Problem("text", "a note is empty" if not text else f"a note of {len(text):,} characters "
                                 f"(at most {MAX_NOTE:,})", "write one line or a short paragraph")])
    note_id = store.add_note(store.project(project)["id"], text, by)
    return {"project": project, "id": note_id, "text": text}


def prices(store: Store) -> list[dict[str, Any]]:
    """Set with ``prices set`` (``user``), then each endpoint's own table, then the built-in defaults."""
    rows = [{"model": m, "input": p[0], "output": p[1], "source": "user"}
            for m, p in sorted((store.get_setting("prices", {}) or {}).items())]
    for name, ep in sorted(store.endpoints().items()):
        rows += [{"model": m, "input": p[0], "output": p[1], "source": f"endpoint {name}"}
                 for m, p in sorted((ep.get("prices") or {}).items())]
    rows += [{"model": m, "input": p[0], "output": p[1], "source": "default"} for m, p in DEFAULT_PRICES.items()]
    return rows


__all__ = ["MAX_NOTE", "add_note", "archive_experiment", "delete_experiment", "prices"]
