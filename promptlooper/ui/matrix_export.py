"""What the export buttons of the views save: the matrix's runs as CSV or JSON, or a short
Markdown report (per column: runs, mean score, failures, each scorer's pass rate); the group-by
and compare views' tables the same three ways.

Built in Python from the same :class:`~promptlooper.matrix.Matrix` the view shows, so the file
holds exactly the filtered rows on screen (every page, not only the visible one).
"""

from __future__ import annotations

import json
from typing import Any

FORMATS = {"csv": "text/csv", "json": "application/json", "report": "text/markdown"}


def export_text(m: Any, experiment: str, fmt: str, filters: dict[str, Any]) -> tuple[str, str, str]:
    """(file name, MIME type, body) of the matrix ``m`` in ``fmt`` (csv, json or report)."""
    if fmt not in FORMATS:
        raise ValueError(f"export format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    stem = experiment.replace("/", "-") + "-matrix"
    if fmt == "csv":
        return f"{stem}.csv", FORMATS[fmt], m.cells.to_csv(index=False)
    if fmt == "json":
        return f"{stem}.json", FORMATS[fmt], m.cells.to_json(orient="records", force_ascii=False)
    return f"{stem}.md", FORMATS[fmt], report(m, experiment, filters)


def report(m: Any, experiment: str, filters: dict[str, Any]) -> str:
    """Markdown: what was shown (filters) and one line per column."""
    lines = [f"# Output matrix of {experiment}", "",
             f"Filters: {json.dumps(filters, sort_keys=True) if filters else 'none'}  ",
             f"{len(m.samples)} samples x {len(m.columns)} columns ({m.by}), {len(m.cells)} runs, "
             f"a scorer passes at {m.threshold} or above.", ""]
    scorers = list(m.scorers)
    lines += ["| " + " | ".join([m.by, "runs", "mean score", "failed runs", *(f"{s} pass" for s in scorers)]) + " |",
              "|" + "---|" * (4 + len(scorers))]
    for col, g in m.cells.groupby("column", sort=False):
        mean = g["score"].mean()
        rates = [f"{g[f'passed:{s}'].mean():.0%}" for s in scorers]
        lines.append("| " + " | ".join([str(col), str(len(g)), "–" if mean != mean else f"{mean:.3f}",
                                        str(int((g["status"] == "failed").sum())), *rates]) + " |")
    return "\n".join(lines) + "\n"


def export_frame(frame: Any, stem: str, fmt: str, title: str) -> tuple[str, str, str]:
    """(file name, MIME type, body) of any view's table (group by, compare): CSV, JSON records,
    or a report (a Markdown table under ``title``)."""
    if fmt not in FORMATS:
        raise ValueError(f"export format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "csv":
        return f"{stem}.csv", FORMATS[fmt], frame.to_csv(index=False)
    if fmt == "json":
        return f"{stem}.json", FORMATS[fmt], frame.to_json(orient="records", force_ascii=False)
    cols = [str(c) for c in frame.columns]
    cell = lambda v: "–" if v is None or v != v else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = [f"# {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return f"{stem}.md", FORMATS[fmt], "\n".join(lines) + "\n"
