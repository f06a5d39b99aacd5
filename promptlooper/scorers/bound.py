"""A scorer bound to its spec: built once, ready to score many runs, its failures kept as data.

The engine scores a run through these objects without knowing any scorer: it asks a bound scorer
for a fresh context (:attr:`BoundScorer.new_context`), hands it to :meth:`~BoundScorer.score_now`
(and :meth:`~BoundScorer.finish` for an async scorer), and stores ``(value, detail)``. A scorer
that raises, returns nothing or returns NaN gives a missing score with the reason, never a 0.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable
from typing import Any

from ..hashing import json_encoder
from ..keys import redact
from ..spec import ScorerSpec
from .base import build
from .core import ScoreContext, ScoreResult

_PLAIN_SCORES = (float, int, ScoreResult)
_dumps = json_encoder(ensure_ascii=False, default=str)  # as the store encodes values


class BoundScorer:
    """A scorer spec with its built function, ready to score many runs (``fn``: the function its
    factory already built, when validation built it: a factory runs once per compiled experiment)."""

    new_context = ScoreContext  # what the engine hands score(): one per scored stage of a run

    def __init__(self, spec: ScorerSpec, fn: Any = None):
        self.spec = spec
        self.fn = build(spec.name, spec.args) if fn is None else fn
        self.is_async = inspect.iscoroutinefunction(self.fn)
        self.args_json = _dumps(spec.args)  # stored with every score: encoded once

    async def score(self, ctx: ScoreContext) -> tuple[float | None, dict[str, Any] | None]:
        scored = self.score_now(ctx)
        return scored if type(scored) is tuple else await self.finish(scored)

    def score_now(self, ctx: ScoreContext) -> tuple[float | None, dict[str, Any] | None] | Awaitable[Any]:
        """The score of a sync scorer at once; otherwise the awaitable it returned (for :meth:`finish`)."""
        try:
            value: Any = self.fn(ctx)
        except Exception as exc:  # noqa: BLE001 - a scorer bug is recorded, not fatal
            return _failed(exc)
        # Most scorers are sync and return one of these; isawaitable's ABC check costs more.
        if type(value) not in _PLAIN_SCORES and inspect.isawaitable(value):
            return value
        return _clamped(value)

    async def finish(self, pending: Awaitable[Any]) -> tuple[float | None, dict[str, Any] | None]:
        try:
            value = await pending
        except Exception as exc:  # noqa: BLE001 - a scorer bug is recorded, not fatal
            return _failed(exc)
        return _clamped(value)


def _failed(exc: Exception) -> tuple[None, dict[str, Any]]:
    # A scorer that broke has no opinion: a missing score, never a 0 that ranks the output as worthless.
    return None, {"error": redact(f"{type(exc).__name__}: {exc}")}


def _clamped(value: Any) -> tuple[float | None, dict[str, Any] | None]:
    detail = None
    if isinstance(value, ScoreResult):
        value, detail = value.value, value.detail
    if type(value) is float and 0.0 <= value <= 1.0:  # the common case (NaN fails the comparison)
        return value, detail
    if value is None:
        return None, detail if detail and detail.get("error") else {**(detail or {}), "error": "the scorer gave no score"}
    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        return _failed(exc)
    if math.isnan(value):
        return None, {"error": "scorer returned NaN"}
    return min(1.0, max(0.0, value)), detail


__all__ = ["BoundScorer"]
