"""Reading a judge's grade out of its reply: the strict forms first, then one unambiguous number.

The judge is asked to end with a line ``Score: N`` (see :mod:`promptlooper.scorers.judge`), and
models that prefer JSON write ``{"score": N}``. Replies do not always obey, so the grade is
looked for in this order, and the first form found decides:

1. a JSON object with a ``score`` / ``grade`` / ``rating`` key (the last such object);
2. a line that is only a ``Score: N`` / ``**Rating:** N/5`` statement (the last such line: the
   verdict comes after the reasoning);
3. a first line that is only a number (the prompt ends with ``Score:``, so a model that continues
   it writes the grade first, then perhaps its reasons, numbers included);
4. ``N/max`` or ``N out of max`` with ``max`` the top of the scale (the last one);
5. a statement inside a sentence, "... so my score is 4" (the last one: "a score of 5 needs X;
   score 3" is 3);
6. a bare number, only when every candidate number in the reply agrees: list markers ("1. The
   answer is 5" is 5, not 1), step numbers and fractions of another scale are not candidates, and
   "4, maybe 3" has no grade.

A form that is found but outside the scale is no grade (``Score: 10`` on 1-5 is not read as some
other number of the reply). No grade is ``None``: the judge scorer turns it into a missing score,
never into a 0.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_NUMBER = r"[-+]?\d+(?:\.\d+)?"
_KEYS = ("score", "grade", "rating")
_JSON_OBJECT = re.compile(r"\{[^{}]*\}")
_STATEMENT_TEXT = rf"\b(?:score|grade|rating)\b\**\s*(?:is|of|=|:)?\s*\**\s*({_NUMBER})(?:\s*(?:/|out of)\s*(\d+))?(?![\w.]\d)"
_STATEMENT = re.compile(_STATEMENT_TEXT, re.I)
_STATEMENT_LINE = re.compile(rf"^[^\w\n]*(?:final\s+)?{_STATEMENT_TEXT}[^\w\n]*$", re.I | re.M)
_FRACTION = re.compile(rf"(?<![\w.])({_NUMBER})\s*(?:/|out of)\s*(\d+)(?![\w.]\d)", re.I)
_LIST_MARKER = re.compile(r"^\s*(?:\d+[.)](?=\s)|step\s+\d+\b)", re.I | re.M)
_STEP = re.compile(r"\b(?:step|item|point|question|part|line)\s+\d+\b", re.I)
_LONE_NUMBER = re.compile(rf"\s*\**\s*({_NUMBER})\s*\**\s*\.?\s*")
_RANGE = re.compile(r"\d+(?:\.\d+)?\s*(?:-|–|to)\s*\d+(?:\.\d+)?", re.I)  # "1-5", "0 to 10": the scale, not a grade
_BARE = re.compile(rf"(?<![\w.]){_NUMBER}(?![\w]|\.\d)")


@dataclass(frozen=True)
class Grade:
    """A grade on the judge's scale and the form it was read from (json, statement line, first line, ...)."""

    value: float
    form: str


def read_grade(reply: str, low: float, high: float) -> Grade | None:
    """The grade in ``reply`` on the scale ``low..high``, or None when it has none (see the module docstring)."""
    for form, finder in (("json", _from_json), ("statement line", _from_statement_line), ("first line", _from_first_line),
                         ("fraction", _from_fraction), ("statement", _from_statement)):
        found = finder(reply, high)
        if found is not None:
            return Grade(found, form) if low <= found <= high else None
    value = _only_number(reply)
    if value is not None and low <= value <= high:
        return Grade(value, "number")
    return None


def parse_score(reply: str, low: float, high: float) -> float | None:
    """The grade's value in ``reply``, or None (:func:`read_grade` without the form)."""
    grade = read_grade(reply, low, high)
    return grade.value if grade else None


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and re.fullmatch(_NUMBER, value.strip()):
        return float(value)
    return None


def _from_json(reply: str, high: float) -> float | None:
    found = None
    for m in _JSON_OBJECT.finditer(reply):
        try:
            obj = json.loads(m.group(0))
        except ValueError:
            continue
        if isinstance(obj, dict):
            keys = {str(k).lower(): v for k, v in obj.items()}
            for key in _KEYS:
                if key in keys and _number(keys[key]) is not None:
                    found = _number(keys[key])
                    break
    return found


def _last_statement(pattern: re.Pattern[str], reply: str, high: float) -> float | None:
    """The last statement's number whose "/max", if written, is this scale's top."""
    for m in reversed(list(pattern.finditer(reply))):
        if m.group(2) is None or float(m.group(2)) == high:
            return float(m.group(1))
    return None


def _from_statement_line(reply: str, high: float) -> float | None:
    return _last_statement(_STATEMENT_LINE, reply, high)


def _from_statement(reply: str, high: float) -> float | None:
    return _last_statement(_STATEMENT, reply, high)


def _from_fraction(reply: str, high: float) -> float | None:
    for m in reversed(list(_FRACTION.finditer(reply))):
        if float(m.group(2)) == high:
            return float(m.group(1))
    return None


def _from_first_line(reply: str, high: float) -> float | None:
    lines = [line for line in reply.splitlines() if line.strip()]
    m = _LONE_NUMBER.fullmatch(lines[0]) if lines else None
    return float(m.group(1)) if m else None


def _only_number(reply: str) -> float | None:
    text = _LIST_MARKER.sub(" ", reply)
    text = _STEP.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _FRACTION.sub(" ", text)  # fractions of another scale are not grades on this one
    values = {float(m.group(0)) for m in _BARE.finditer(text)}
    return values.pop() if len(values) == 1 else None


__all__ = ["Grade", "parse_score", "read_grade"]
