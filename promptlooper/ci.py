"""What a sweep's outcome means to CI: an exit status, the failures grouped, a threshold, JUnit XML.

``promptlooper run`` / ``rerun`` exit 0 only when every run of the sweep finished and none failed
(and, with ``--fail-under``, the best configuration, or the approved one, scores at least that).
The JUnit report (``--junit FILE``) is :mod:`promptlooper.junit`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .engine.failures import summary_reasons
from .engine.progress import Progress


def sweep_ok(progress: Progress) -> bool:
    """Every run of the sweep finished, none failed."""
    return progress.status == "completed" and progress.failed == 0 and progress.done >= progress.total


def failure_lines(progress: Progress) -> list[str]:
    """Why the sweep is not a success: its end, then the failure reasons, most frequent first."""
    lines: list[str] = []
    if progress.status != "completed":
        lines.append(f"sweep {progress.status}" + (f": {progress.stop_reason}" if progress.stop_reason else "")
                     + f" ({progress.total - progress.done} run(s) not run)")
    elif progress.done < progress.total:
        lines.append(f"{progress.total - progress.done} run(s) not run")
    if progress.failed:
        lines.append(f"{progress.failed} run(s) failed:")
        reasons = summary_reasons(progress.failure_reasons)
        lines += [f"  {n:>6} × {reason}" for reason, n in reasons]
        shown = sum(n for _, n in reasons)
        if shown < progress.failed:
            lines.append(f"  {progress.failed - shown:>6} × (other reasons: `promptlooper runs` lists them)")
    return lines


@dataclass
class Threshold:
    ok: bool
    message: str
    config_id: str | None = None
    score: float | None = None


def check_fail_under(board: Any, threshold: float) -> Threshold:
    """The approved configuration (if any), else the best, against ``threshold``."""
    # Rows (``Workbench.leaderboard(as_frame=False)``, what a CLI run prints) or the DataFrame.
    rows = board if isinstance(board, list) else (board.to_dict(orient="records") if len(board) else [])
    approved = [r for r in rows if r.get("decision") == "approved"]
    pick = approved[0] if approved else (rows[0] if rows else None)
    which = "approved" if approved else "best"
    if pick is None or pick.get("score") is None or math.isnan(float(pick["score"])):
        return Threshold(False, f"--fail-under {threshold:g}: no configuration has a score")
    score = float(pick["score"])
    cid = str(pick.get("full_config_id") or pick.get("config_id"))
    verdict = "≥" if score >= threshold else "<"
    return Threshold(score >= threshold, f"{which} configuration {cid[:12]} scores {score:.4f} {verdict} {threshold:g}", cid, score)
