"""An experiment's definition: what its ranking depends on (samples, stages, space, scorers).

Editing an experiment and running it again starts a new definition; the leaderboard ranks the
current one, and earlier definitions stay in the store with their runs (``promptlooper
definitions``, ``leaderboard --all``). Sweep settings (concurrency, budget, strategy, seed) are not
part of it: changing them does not change what is being compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .hashing import content_hash
from .spec import Experiment

PARTS = ("stages", "space", "scorers")


def definition_of(exp: Experiment, sample_ids: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """(content hash, stored form) of the experiment's definition on these samples."""
    record = exp.to_record()
    spec = {k: _named(record[k]) for k in PARTS}
    return content_hash("definition", {**spec, "samples": sorted(sample_ids)}), spec


def _named(value: Any) -> Any:
    """Callables (a scorer's Python function, say) by name: their repr holds a per-process address,
    which would make every new kernel look like a new definition."""
    if isinstance(value, dict):
        return {k: _named(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_named(v) for v in value]
    if callable(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', type(value).__name__)}"
    return value


def summary(row: dict[str, Any], current: int | None) -> dict[str, Any]:
    """One definition for listings: number, when, samples, configurations, stages, space, scorers."""
    spec = row["spec"]
    return {
        "number": row["number"], "id": row["id"][:12], "created_at": row["created_at"], "current": row["number"] == current,
        "samples": row["samples"], "configurations": row["configurations"],
        "stages": [s["name"] for s in spec.get("stages", [])], "space": spec.get("space", {}),
        "scorers": [s.get("label") or s["name"] for s in spec.get("scorers", [])],
    }
