"""Text scorers: keyword presence, length compliance, exact match, contains."""

from __future__ import annotations

import re
from typing import Any, Literal

from .core import ScoreContext, ScoreFn, ScoreResult, scorer


def _field_needed(args: dict[str, Any]) -> list[str]:
    return [args.get("field", "reference")]


def _norm(text: str, case_sensitive: bool, strip: bool = True) -> str:
    text = text.strip() if strip else text
    return text if case_sensitive else text.casefold()


@scorer("keyword", description="Share of the required words present in the output (or 1 if any, with mode=any).")
def keyword(words: list[str], mode: Literal["all", "any"] = "all", case_sensitive: bool = False) -> ScoreFn:
    if not words:
        raise ValueError("words must list at least one word")
    needles = [_norm(w, case_sensitive) for w in words]

    def score(ctx: ScoreContext) -> ScoreResult:
        hay = _norm(ctx.output, case_sensitive)
        found = [w for w in needles if w in hay]
        value = (1.0 if found else 0.0) if mode == "any" else len(found) / len(needles)
        return ScoreResult(value, {"found": found, "missing": [w for w in needles if w not in found]})

    return score


@scorer("length", description="1 inside [min, max] words or characters, falling off linearly outside.")
def length(
    min_words: int | None = None,
    max_words: int | None = None,
    min_chars: int | None = None,
    max_chars: int | None = None,
) -> ScoreFn:
    bounds = {"min_words": min_words, "max_words": max_words, "min_chars": min_chars, "max_chars": max_chars}
    if all(v is None for v in bounds.values()):
        raise ValueError("give at least one of min_words, max_words, min_chars, max_chars")
    for name, v in bounds.items():
        if v is not None and v < 0:
            raise ValueError(f"{name} is {v}; a length is 0 or more")
    for unit in ("words", "chars"):
        lo, hi = bounds[f"min_{unit}"], bounds[f"max_{unit}"]
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min_{unit} ({lo}) is greater than max_{unit} ({hi}); swap them")

    def within(n: int, lo: int | None, hi: int | None) -> float:
        # Linear penalty: twice the allowed length (or zero when a minimum is required) scores 0.
        if lo is not None and n < lo:
            return max(0.0, n / lo)
        if hi is not None and n > hi:
            return max(0.0, 1 - (n - hi) / max(hi, 1))
        return 1.0

    def score(ctx: ScoreContext) -> ScoreResult:
        words = len(ctx.output.split())
        chars = len(ctx.output)
        parts = []
        if min_words is not None or max_words is not None:
            parts.append(within(words, min_words, max_words))
        if min_chars is not None or max_chars is not None:
            parts.append(within(chars, min_chars, max_chars))
        return ScoreResult(min(parts), {"words": words, "chars": chars})

    return score


@scorer("exact", description="1 if the output equals the sample field (trimmed; case-insensitive by default).", needs_fields=_field_needed)
def exact(field: str = "reference", case_sensitive: bool = False) -> ScoreFn:
    def score(ctx: ScoreContext) -> float:
        return float(_norm(ctx.output, case_sensitive) == _norm(str(ctx.sample[field]), case_sensitive))

    return score


@scorer("contains", description="1 if the output contains the sample field's text (any of them, for a list).", needs_fields=_field_needed)
def contains(field: str = "reference", case_sensitive: bool = False, whole_word: bool = False) -> ScoreFn:
    def score(ctx: ScoreContext) -> float:
        expected = ctx.sample[field]
        options = expected if isinstance(expected, list) else [expected]
        hay = _norm(ctx.output, case_sensitive)
        for opt in options:
            needle = _norm(str(opt), case_sensitive)
            if whole_word:
                if re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", hay):
                    return 1.0
            elif needle in hay:
                return 1.0
        return 0.0

    return score
