"""Rating: thumbs up / down, 1–5 stars and a comment on any run, stored as ``human`` scores.

The ratings themselves are written by :func:`promptlooper.ratings.rate`; this view only checks
the input, calls it, and shows the run with the human scores it already has.
"""

from __future__ import annotations

import getpass
from typing import Any

import traitlets

from ._assets import asset, esm
from ._base import PLWidget, experiment_key
from ._format import fmt_score, short

MAX_CHOICES = 200


def rate_function() -> Any:
    """``promptlooper.ratings.rate``, or None where this PromptLooper has no ratings yet."""
    try:
        from promptlooper.ratings import rate
    except ImportError:
        return None
    return rate


def check_rating(thumbs: Any, stars: Any, comment: Any) -> tuple[str | None, int | None, str]:
    """Normalised (thumbs, stars, comment), or ValueError saying what is wrong."""
    if thumbs in ("", None):
        thumbs = None
    elif thumbs not in ("up", "down"):
        raise ValueError("thumbs must be 'up', 'down' or empty")
    if stars in ("", None, 0):
        stars = None
    else:
        try:
            stars = int(stars)
        except (TypeError, ValueError):
            raise ValueError("stars must be a whole number from 1 to 5") from None
        if not 1 <= stars <= 5:
            raise ValueError("stars must be from 1 to 5")
    comment = str(comment or "").strip()
    if thumbs is None and stars is None:
        raise ValueError("give thumbs up / down or 1–5 stars (a comment goes with them)")
    return thumbs, stars, comment


def human_value(score: dict[str, Any]) -> str:
    """A human score as the person gave it: "★★★★☆ 4/5" or "thumbs up", not the stored 0.750."""
    meta = score.get("metadata") if isinstance(score.get("metadata"), dict) else {}
    raw, value = meta.get("raw"), score.get("value")
    if score.get("scorer") == "human_stars" and isinstance(raw, int) and 1 <= raw <= 5:
        return "★" * raw + "☆" * (5 - raw) + f" {raw}/5"
    if score.get("scorer") == "human_thumbs" and value is not None:
        return "thumbs up" if float(value) >= 0.5 else "thumbs down"
    return fmt_score(value)


def rated_run(detail: dict[str, Any]) -> dict[str, Any]:
    """The run as the rating view shows it: output, automatic score, existing human scores."""
    human = [s for s in detail.get("scores") or [] if s.get("source") == "human"]
    return {
        "id": detail.get("id", ""), "short": short(detail.get("id"), 8), "config": short(detail.get("config_id")),
        "sample_index": detail.get("sample_index"), "status": detail.get("status", ""),
        "output": detail.get("output") or detail.get("error") or "", "score": fmt_score(detail.get("score")),
        "human": [{"scorer": s.get("scorer", ""), "value": human_value(s),
                   "comment": str((s.get("metadata") or {}).get("comment", "")) if isinstance(s.get("metadata"), dict) else ""}
                  for s in human],
    }


def run_choice(run: dict[str, Any]) -> dict[str, str]:
    score = fmt_score(run.get("score"))
    return {"id": run["id"], "label": f"sample #{run.get('sample_index')} · config {short(run.get('config_id'), 8)} · {score}"}


class Rating(PLWidget):
    """Rate any run of the experiment: thumbs, stars, comment."""

    _esm = esm("rating")
    _css = asset("rating", "widget.css")

    run = traitlets.Dict().tag(sync=True)
    choices = traitlets.List().tag(sync=True)
    available = traitlets.Bool(False).tag(sync=True)

    STEERING = frozenset({"rate"})

    def __init__(self, wb: Any, experiment: Any, run_id: str | None = None, *, readonly: bool | None = None,
                 by: str | None = None):
        super().__init__(readonly=readonly)
        self.wb = wb
        self.experiment = experiment_key(experiment)
        self.by = by if by is not None else (getattr(wb, "actor", "") or _user())  # the Workbench's actor
        self.available = rate_function() is not None
        self.reload_choices()
        if run_id:
            self.show(run_id)
        elif self.choices:
            self.show(self.choices[0]["id"])

    def follow(self) -> None:
        """Called as the sweep adds runs: a view that had nothing to rate shows the first run."""
        if not self.run:
            self.reload_choices()
            if self.choices:
                self.show(self.choices[0]["id"])

    def reload_choices(self) -> None:
        self.choices = [run_choice(r) for r in self.wb.runs(self.experiment, limit=MAX_CHOICES)]

    def show(self, run_id: str) -> None:
        self.run = rated_run(self.wb.run_detail(run_id))

    def _on_select(self, run_id: str) -> None:
        self.show(run_id)

    def _on_refresh(self) -> None:
        self.reload_choices()
        if self.run:
            self.show(self.run["id"])

    def _on_rate(self, thumbs: Any = None, stars: Any = None, comment: Any = "") -> None:
        if not self.run:
            raise ValueError("pick a run first")
        rate = rate_function()
        if rate is None:
            raise NotImplementedError("ratings are not available in this PromptLooper (promptlooper.ratings)")
        thumbs, stars, comment = check_rating(thumbs, stars, comment)
        rate(self.wb.store, self.run["id"], thumbs=thumbs, stars=stars, comment=comment, by=self.by)
        self.notice = f"rated run {self.run['short']}"
        self.show(self.run["id"])


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return ""
