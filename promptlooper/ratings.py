"""Human ratings: thumbs up/down and 1-5 stars on a run, stored as scores with ``source='human'``.

A rating is two score rows at most: ``human_thumbs`` (1 for up, 0 for down) and ``human_stars``
(``(stars - 1) / 4``, so 1 star is 0 and 5 stars is 1), each with the raw value, the comment, who
rated and when in its metadata. Re-scoring and re-running a sweep replace automatic scores only,
never these. They show in the leaderboard as columns and :func:`promptlooper.stats.calibration` compares
judges with them. An experiment weighs them into the score with a ``human`` scorer
(``{name: human, weight: 2}``, see :mod:`promptlooper.scorers.human`): rating a run then writes
that column (a score row with ``source='human'``) and the run's weighted score.

    >>> rate(wb, run_id, thumbs="up", stars=4, comment="clear and right", by="ana")
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .errors import PromptLooperError
from .scoring import weighted_score, weights_of
from .store import now_iso

if TYPE_CHECKING:
    from .workbench import Workbench

THUMBS = "human_thumbs"
STARS = "human_stars"
LABELS = (THUMBS, STARS)
SCORER_NAME = "human_rating"


class RatingError(PromptLooperError, ValueError):
    """A rating is invalid (its message says which value and what is allowed)."""


def _check(thumbs: Any, stars: Any) -> None:
    if thumbs is None and stars is None:
        raise RatingError("give thumbs='up' or 'down', or stars from 1 to 5 (or both)")
    if thumbs is not None and thumbs not in ("up", "down"):
        raise RatingError(f"thumbs must be 'up' or 'down', not {thumbs!r}")
    if stars is not None:
        whole = isinstance(stars, int) and not isinstance(stars, bool)
        if not whole or not 1 <= stars <= 5:
            raise RatingError(f"stars must be a whole number from 1 to 5, not {stars!r}")


def rate(wb: Workbench, run_id: str, *, thumbs: str | None = None, stars: int | None = None, comment: str = "",
         by: str = "") -> dict[str, Any]:
    """Rate a finished run (an id or a unique id prefix); returns its ratings (see :func:`ratings`).

    Only what is given changes: ``rate(wb, r, stars=5)`` keeps an earlier thumbs rating.
    """
    _check(thumbs, stars)
    if not isinstance(comment, str) or not isinstance(by, str):
        raise RatingError("comment and by must be text")
    run = wb.store.run(run_id)  # NotFoundError names the problem (unknown or ambiguous prefix)
    if run["status"] not in ("completed", "cached"):
        raise RatingError(f"run {run['id'][:12]} is {run['status']}; only finished runs (completed or cached) can be rated")
    ts = now_iso()
    rows = []
    base = {"comment": comment, "by": by, "rated_at": ts}
    if thumbs is not None:
        rows.append((THUMBS, 1.0 if thumbs == "up" else 0.0, {"raw": thumbs, **base}))
    if stars is not None:
        rows.append((STARS, (stars - 1) / 4, {"raw": stars, **base}))
    with wb.store.cx.write() as c:
        c.executemany(
            "INSERT OR REPLACE INTO scores (run_id, scorer, value, metadata, scorer_name, scorer_args, source, created_at)"
            " VALUES (?,?,?,?,?,?,'human',?)",
            [(run["id"], label, value, json.dumps(meta, ensure_ascii=False), SCORER_NAME, json.dumps({"kind": label[6:]}), ts)
             for label, value, meta in rows],
        )
    refresh_human_scores(wb, run["experiment_id"], [run["id"]])
    wb.store.add_event(run["experiment_id"], "run.rated",
                       {"run_id": run["id"], "config_id": run["config_id"], "thumbs": thumbs, "stars": stars, "by": by})
    return ratings(wb, run["id"])


def unrate(wb: Workbench, run_id: str, *, thumbs: bool = True, stars: bool = True) -> int:
    """Remove a run's human ratings (both by default); returns how many were removed."""
    run = wb.store.run(run_id)
    labels = [label for label, wanted in ((THUMBS, thumbs), (STARS, stars)) if wanted]
    with wb.store.cx.write() as c:
        removed = sum(c.execute("DELETE FROM scores WHERE run_id = ? AND scorer = ? AND source = 'human'", (run["id"], label)).rowcount
                      for label in labels)
    refresh_human_scores(wb, run["experiment_id"], [run["id"]])
    return removed


def refresh_human_scores(wb: Workbench, experiment_id: str, run_ids: list[str]) -> None:
    """Write the columns of the experiment's ``human`` scorers from the runs' ratings, and the runs'
    weighted scores with them; nothing when the experiment has no ``human`` scorer."""
    from .scorers.human import human_value

    scorers = wb.store.experiment(experiment_id)["spec"].get("scorers", [])
    humans = [s for s in scorers if s["name"] == "human"]
    if not humans or not run_ids:
        return
    weights = weights_of(scorers)
    ts = now_iso()
    with wb.store.cx.write() as c:
        for run_id in run_ids:
            given = dict(c.execute("SELECT scorer, value FROM scores WHERE run_id = ? AND source = 'human' AND scorer IN (?, ?)",
                                   (run_id, THUMBS, STARS)).fetchall())
            for spec in humans:
                column, args = spec.get("label") or spec["name"], spec.get("args") or {}
                value = human_value(args.get("rating", "both"), given.get(THUMBS), given.get(STARS))
                if value is None:
                    c.execute("DELETE FROM scores WHERE run_id = ? AND scorer = ? AND source = 'human'", (run_id, column))
                    continue
                c.execute("INSERT OR REPLACE INTO scores (run_id, scorer, value, metadata, scorer_name, scorer_args, source,"
                          " created_at) VALUES (?,?,?,?,'human',?,'human',?)",
                          (run_id, column, value, json.dumps({"from": sorted(given)}), json.dumps(args), ts))
            rows = c.execute("SELECT scorer, value FROM scores WHERE run_id = ?", (run_id,)).fetchall()
            c.execute("UPDATE runs SET score = ? WHERE id = ?", (weighted_score(rows, weights), run_id))


def ratings(wb: Workbench, run_id: str) -> dict[str, Any]:
    """A run's human ratings: thumbs ('up' / 'down' / None), stars (1-5 / None), comment, by, rated_at."""
    run = wb.store.run(run_id)
    out: dict[str, Any] = {"run_id": run["id"], "thumbs": None, "stars": None, "comment": "", "by": "", "rated_at": None}
    with wb.store.cx.read() as c:
        # rowid order is write order (INSERT OR REPLACE gives a new rowid): the latest comment and author win
        rows = c.execute("SELECT scorer, metadata FROM scores WHERE run_id = ? AND source = 'human' ORDER BY rowid",
                         (run["id"],)).fetchall()
    for label, metadata in rows:
        if label not in LABELS:
            continue
        meta = json.loads(metadata) if metadata else {}
        out["thumbs" if label == THUMBS else "stars"] = meta.get("raw")
        out.update(comment=meta.get("comment", ""), by=meta.get("by", ""), rated_at=meta.get("rated_at"))
    return out


def experiment_ratings(wb: Workbench, experiment_id: str) -> list[dict[str, Any]]:
    """Every human score row of an experiment's finished runs: run_id, config_id, scorer, value, metadata."""
    with wb.store.cx.read() as c:
        rows = c.execute(
            "SELECT r.id, r.config_id, s.scorer, s.value, s.metadata FROM scores s JOIN runs r ON r.id = s.run_id"
            " WHERE r.experiment_id = ? AND s.source = 'human' AND r.status IN ('completed', 'cached')",
            (experiment_id,),
        ).fetchall()
    return [{"run_id": r[0], "config_id": r[1], "scorer": r[2], "value": r[3], "metadata": json.loads(r[4]) if r[4] else {}}
            for r in rows]


__all__ = ["LABELS", "STARS", "THUMBS", "RatingError", "experiment_ratings", "rate", "ratings", "refresh_human_scores", "unrate"]
