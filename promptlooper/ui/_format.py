"""Display strings and JSON-safe values for widget state (numbers are formatted here, not in JS)."""

from __future__ import annotations

import json
import math
from typing import Any

import yaml


def clean(value: Any) -> Any:
    """A JSON-safe copy: NaN/inf become None, numpy scalars plain Python, tuples lists."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [clean(v) for v in value]
    item = getattr(value, "item", None)  # numpy / pandas scalars
    if callable(item):
        try:
            return clean(item())
        except (TypeError, ValueError):
            pass
    return str(value)


def number(value: Any) -> float | None:
    v = clean(value)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def fmt_score(value: Any) -> str:
    v = number(value)
    return "–" if v is None else f"{v:.3f}"


def fmt_interval(low: Any, high: Any) -> str:
    lo, hi = number(low), number(high)
    return "–" if lo is None or hi is None else f"{lo:.2f}–{hi:.2f}"


def fmt_int(value: Any) -> str:
    v = number(value)
    return "–" if v is None else f"{int(v):,}"


def fmt_cost(value: Any) -> str:
    v = number(value)
    if v is None:
        return "–"
    return f"${v:,.4f}" if v < 100 else f"${v:,.2f}"


def fmt_ms(value: Any) -> str:
    v = number(value)
    if v is None:
        return "–"
    return f"{v:,.0f} ms" if v < 10_000 else f"{v / 1000:,.1f} s"


def fmt_pct(value: Any) -> str:
    v = number(value)
    return "–" if v is None else f"{v:.0%}"


def fmt_duration(seconds: Any) -> str:
    v = number(seconds)
    if v is None:
        return "–"
    v = max(0.0, v)
    if v < 60:
        return f"{v:.0f} s"
    if v < 3600:
        return f"{int(v // 60)} min {int(v % 60):02d} s"
    return f"{int(v // 3600)} h {int(v % 3600 // 60):02d} min"


def fmt_value(value: Any) -> str:
    """A parameter value as a short cell text."""
    v = clean(value)
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False)


def short(config_id: Any, n: int = 12) -> str:
    return str(config_id or "")[:n]


def parse_mapping(text: str, what: str) -> dict[str, Any]:
    """A dict from JSON or YAML text typed into a widget, with an error that says what is wrong."""
    text = (text or "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{what}: {yaml_problem(exc)}. Write JSON such as {{\"answer.temperature\": [0.0, 0.5]}} "
                             "or YAML such as 'answer.temperature: [0.0, 0.5]'.") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{what}: expected a mapping like {{\"answer.temperature\": [0.0, 0.5]}}")
    return value


def yaml_problem(exc: Exception) -> str:
    """A parser error in words: where (line, column) and what, without the parser's internals."""
    mark = getattr(exc, "problem_mark", None)
    problem = str(getattr(exc, "problem", "") or "the text cannot be read").strip()
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem} (not valid JSON or YAML)"


def dump_mapping(value: dict[str, Any]) -> str:
    return json.dumps(clean(value), ensure_ascii=False, indent=1)
