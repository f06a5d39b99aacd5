"""Reply shapes: compact and intent-level, with details on request.

A leaderboard is the top N configurations with their varied parameters, score, 95% interval and
n; a sweep is its counts and best so far; long texts are cut unless the client asks for ``full``.
Everything a tool returns is made JSON-safe here (numpy scalars, NaN) before it leaves.
"""

from __future__ import annotations

import math
from typing import Any

TRUNCATE = 400  # characters of long text shown unless full=true

_SWEEP_FIELDS = ("status", "requested", "strategy", "done", "total", "cached", "failed", "tokens_in", "tokens_out",
                 "cost", "best_config_id", "best_score", "stop_reason", "started_at", "finished_at")


def clean(value: Any) -> Any:
    """JSON-safe: NaN / inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, str | bytes):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def truncate(text: Any, full: bool) -> Any:
    """Long text cut to TRUNCATE characters unless ``full``."""
    if full or not isinstance(text, str) or len(text) <= TRUNCATE:
        return text
    return text[:TRUNCATE] + f"… [{len(text) - TRUNCATE} more characters; full=true shows all]"


def sweep_summary(sweep: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored sweep row as an agent reads it: short ids, only the fields that are set."""
    if not sweep:
        return None
    out = {"id": sweep["id"][:8], **{k: sweep.get(k) for k in _SWEEP_FIELDS if sweep.get(k) not in (None, "")}}
    if out.get("best_config_id"):
        out["best_config_id"] = out["best_config_id"][:12]
    return out


def board_rows(df: Any, top: int | None) -> list[dict[str, Any]]:
    """The top rows of a leaderboard frame: varied params, score, interval, n, failures, decision."""
    columns = list(df.columns)
    varied = columns[columns.index("config_id") + 1: columns.index("score")] if "score" in columns else []
    rows = []
    for rec in df.head(top).to_dict(orient="records") if top else df.to_dict(orient="records"):
        row = {"rank": rec["rank"], "config_id": rec["config_id"], "params": {k: rec[k] for k in varied},
               "score": rec["score"], "ci": [rec["ci_low"], rec["ci_high"]], "n": rec["n"],
               "distinguishable": rec["distinguishable"]}
        if rec.get("failed"):
            row["failed"], row["failure"] = rec["failed"], rec.get("failure") or ""
        if rec.get("missing"):
            row["missing"] = rec["missing"]  # missing scores: left out of the score, not counted as 0
        if rec.get("decision"):
            row["decision"] = rec["decision"]
        rows.append(row)
    return rows


__all__ = ["TRUNCATE", "board_rows", "clean", "sweep_summary", "truncate"]
