"""People's ratings as a scorer: ``{name: human, weight: 2}`` weighs them into the score like any scorer.

Ratings are given with ``promptlooper rate`` / :func:`promptlooper.ratings.rate` (thumbs and 1-5
stars), never computed, so a sweep does not call this scorer: a run nobody has rated simply has
no ``human`` score (it is not a missing score, and it is left out of that run's weighted mean).
When a run is rated (or re-scored), :func:`promptlooper.ratings.refresh_human_scores` writes the
column from the ratings: ``rating: stars`` uses the stars (1 star is 0, 5 stars is 1), ``thumbs``
the thumbs (up is 1), and ``both`` (the default) the mean of whichever of the two are given.
"""

from __future__ import annotations

from typing import Literal

from .core import ScoreContext, ScoreFn, ScoreResult, missing, scorer


def human_value(rating: str, thumbs: float | None, stars: float | None) -> float | None:
    """The ``human`` column's value from a run's normalised ratings (None when it has none that count)."""
    given = {"stars": [stars], "thumbs": [thumbs], "both": [thumbs, stars]}[rating]
    present = [v for v in given if v is not None]
    return sum(present) / len(present) if present else None


@scorer("human", description="People's ratings (promptlooper rate): stars, thumbs or both, weighted into the score.",
        human=True)
def human(rating: Literal["both", "stars", "thumbs"] = "both") -> ScoreFn:
    def score(ctx: ScoreContext) -> ScoreResult:
        # Not reached in a sweep (human scorers are not run): a rating cannot be computed.
        return missing("human ratings are given with `promptlooper rate`, not computed")

    return score
