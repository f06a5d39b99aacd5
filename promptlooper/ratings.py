"""Human ratings: thumbs up/down and 1-5 stars on a run, stored as scores with ``source='human'``.

A rating is two score rows at most: ``human_thumbs`` (1 for up, 0 for down) and ``human_stars``
(``(stars - 1) / 4``, so 1 star is 0 and 5 stars is 1), each with the raw value, the comment, who
rated and when in its metadata. Re-scoring and re-running a sweep replace automatic scores only,
never these. They show in the leaderboard as columns and :func:`promptlooper.stats.calibration` compares
judges with them. An experiment weighs them into the score with a ``human`` scorer
(``{name: human, weight: 2}``, see :mod:`promptlooper.scorers.human`): rating a run then writes
that column (a score row with ``source='human'``) and the run's weighted score.

    >>> rate(wb.store, run_id, thumbs="up", stars=4, comment="clear and right", by="ana")
"""

from __future__ import annotations

from typing import Any

from .errors import PromptLooperError
from .scorers.human import human_value
from .scoring import weights_of
from .store import Store, now_iso
from .store.scores import ScoreRow

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


def rate(store: Store, run_id: str, *, thumbs: str | None = None, stars: int | None = None, comment: str = "",
         by: str = "") -> dict[str, Any]:
    """Rate a finished run (an id or a unique id prefix); returns its ratings (see :func:`ratings`).

    Only what is given changes: ``rate(store, r, stars=5)`` keeps an earlier thumbs rating.
    """
    _check(thumbs, stars)
    if not isinstance(comment, str) or not isinstance(by, str):
        raise RatingError("comment and by must be text")
    run = store.run(run_id)  # NotFoundError names the problem (unknown or ambiguous prefix)
    if run["status"] not in ("completed", "cached"):
        raise RatingError(f"run {run['id'][:12]} is {run['status']}; only finished runs (completed or cached) can be rated")
    ts = now_iso()
    rows: list[ScoreRow] = []
    base = {"comment": comment, "by": by, "rated_at": ts}
    if thumbs is not None:
        rows.append((THUMBS, 1.0 if thumbs == "up" else 0.0, {"raw": thumbs, **base}, SCORER_NAME, {"kind": "thumbs"}))
    if stars is not None:
        rows.append((STARS, (stars - 1) / 4, {"raw": stars, **base}, SCORER_NAME, {"kind": "stars"}))
    store.rate_run(run["id"], rows, ts)
    refresh_human_scores(store, run["experiment_id"], [run["id"]])
    store.add_event(run["experiment_id"], "run.rated",
                    {"run_id": run["id"], "config_id": run["config_id"], "thumbs": thumbs, "stars": stars, "by": by})
    return ratings(store, run["id"])


def unrate(store: Store, run_id: str, *, thumbs: bool = True, stars: bool = True) -> int:
    """Remove a run's human ratings (both by default); returns how many were removed."""
    run = store.run(run_id)
    removed = store.unrate_run(run["id"], [label for label, wanted in ((THUMBS, thumbs), (STARS, stars)) if wanted])
    refresh_human_scores(store, run["experiment_id"], [run["id"]])
    return removed


def refresh_human_scores(store: Store, experiment_id: str, run_ids: list[str]) -> None:
    """Write the columns of the experiment's ``human`` scorers from the runs' ratings, and the runs'
    weighted scores with them; nothing when the experiment has no ``human`` scorer."""
    scorers = store.experiment(experiment_id)["spec"].get("scorers", [])
    humans = [s for s in scorers if s["name"] == "human"]
    if not humans or not run_ids:
        return

    def columns(given: dict[str, float]) -> dict[str, tuple[float | None, dict[str, Any], dict[str, Any]]]:
        out: dict[str, tuple[float | None, dict[str, Any], dict[str, Any]]] = {}
        for spec in humans:
            args = spec.get("args") or {}
            value = human_value(args.get("rating", "both"), given.get(THUMBS), given.get(STARS))
            out[spec.get("label") or spec["name"]] = (value, {"from": sorted(given)}, args)
        return out

    store.refresh_human_columns(run_ids, LABELS, columns, weights_of(scorers), now_iso())


def ratings(store: Store, run_id: str) -> dict[str, Any]:
    """A run's human ratings: thumbs ('up' / 'down' / None), stars (1-5 / None), comment, by, rated_at."""
    run = store.run(run_id)
    out: dict[str, Any] = {"run_id": run["id"], "thumbs": None, "stars": None, "comment": "", "by": "", "rated_at": None}
    for label, _, meta in store.human_scores(run["id"]):  # write order: the latest comment and author win
        if label not in LABELS:
            continue
        out["thumbs" if label == THUMBS else "stars"] = meta.get("raw")
        out.update(comment=meta.get("comment", ""), by=meta.get("by", ""), rated_at=meta.get("rated_at"))
    return out


__all__ = ["LABELS", "STARS", "THUMBS", "RatingError", "rate", "ratings", "refresh_human_scores", "unrate"]
