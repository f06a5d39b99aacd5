"""A two-variable group-by (:func:`promptlooper.grouping.group_by`) as the cells of a pivot
table for a view: first variable down, second across, each cell "mean ± half-interval (n)"."""

from __future__ import annotations

from typing import Any

from ._format import fmt_score, fmt_value


def cell_text(mean: Any, low: Any, high: Any, n: Any) -> str:
    if mean != mean:  # NaN: no finished run in this pair of values
        return "–"
    half = "" if low != low or high != high else f" ± {(high - low) / 2:.3f}"
    return f"{fmt_score(mean)}{half} (n={int(n)})"


def pivot_cells(table: Any) -> dict[str, Any]:
    """{rows, columns, cells}: the pivot of ``table`` (a group_by over two variables) as text."""
    down, across = table.attrs["by"]
    rows = sorted(table[down].dropna().unique().tolist(), key=_order)
    columns = sorted(table[across].dropna().unique().tolist(), key=_order)
    at = {(r[down], r[across]): r for r in table.to_dict("records")}
    cells = [[cell_text(*(at[(x, y)][k] for k in ("mean", "ci_low", "ci_high", "n"))) if (x, y) in at else "–"
              for y in columns] for x in rows]
    return {"down": down, "across": across, "rows": [fmt_value(x) for x in rows], "columns": [fmt_value(y) for y in columns],
            "cells": cells}


def _order(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))
