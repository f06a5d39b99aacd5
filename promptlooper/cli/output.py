"""Printing for every command: aligned tables, problems with their field paths, the leaderboard,
files written with ``-o``, and the live progress line of a sweep. Standard library only."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import Problem, SpecError


def table(rows: list[dict[str, Any]], columns: list[str] | None = None, *, wide: tuple[str, ...] = ()) -> str:
    """Rows as aligned text; long values are cut to 40 characters except in the ``wide`` columns."""
    if not rows:
        return "(nothing)"
    columns = columns or list(rows[0])

    def fmt(v: Any, limit: int | None = 40) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "–"
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 1000 else f"{v:,.0f}"
        text = str(v).replace("\n", " ")
        return text if limit is None or len(text) <= limit else text[: limit - 3] + "…"

    cells = [[fmt(r.get(c), None if c in wide else 40) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("─" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def print_problems(exc: SpecError) -> int:
    """Every problem (a screenful, then how many more) on stderr; the exit status of invalid input."""
    from ..bounds import shown  # bounds imports yaml: only when there is something to show

    print(f"✗ {len(exc.problems)} problem(s); nothing was run:", file=sys.stderr)
    first, more = shown(exc.problems)
    for p in first:
        print(f"  {p.path}: {p.message}", file=sys.stderr)
        if p.hint:
            print(f"      → {p.hint}", file=sys.stderr)
    if more:
        print(f"  … and {more:,} more", file=sys.stderr)
    return 2


def print_leaderboard(rows: list[dict[str, Any]]) -> None:
    """A leaderboard's rows (``Workbench.leaderboard(as_frame=False)``: no pandas) as a table."""
    hidden = {"full_config_id"} | (set() if any(r.get("decision") for r in rows) else {"decision"})
    failed = any(r.get("failed") for r in rows)
    if not failed:
        hidden |= {"failed", "failure"}
    shown = [{k: v for k, v in r.items() if k not in hidden} for r in rows]
    if failed:
        for r in shown:
            # A configuration with failed runs is marked where the eye starts reading: its rank.
            r["rank"] = f"{r['rank']}!" if r["failed"] else str(r["rank"])
            r["failure"] = r.pop("failure")  # in full, last
    print(table(shown, wide=("failure",)))


def print_frame_json(df: Any) -> None:
    """A DataFrame as JSON records (its float precision, as ``DataFrame.to_json`` writes them)."""
    print(json.dumps(json.loads(df.to_json(orient="records")), indent=2))


def print_unpriced(models: list[str]) -> None:
    if models:
        print(f"no price: {', '.join(models)} (counted as $0; set one with `promptlooper prices set MODEL INPUT OUTPUT`,"
              " USD per million tokens)")


def write_file(data: bytes, output: str) -> None:
    """``data`` to the file ``output``; a missing folder or a refused write is a problem with ``--output``."""
    out = Path(output)
    if not out.parent.is_dir():
        raise SpecError([Problem("--output", f"no folder {str(out.parent)!r} to write {out.name!r} into",
                                 "create the folder first, or name another file")])
    try:
        out.write_bytes(data)
    except OSError as exc:
        raise SpecError([Problem("--output", f"cannot write {output}: {exc.strerror}", "name another file")]) from exc


class Bar:
    """Live one-line progress on a terminal; a line every few seconds otherwise (CI logs)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, progress: Any) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        final = progress.status in ("completed", "stopped")
        if self.tty and (now - self.last > 0.1 or final):
            sys.stderr.write("\r" + progress.line() + "\033[K")
            sys.stderr.flush()
            self.last = now
        elif not self.tty and (now - self.last > 3 or final):
            sys.stderr.write(progress.line() + "\n")
            self.last = now

    def close(self) -> None:
        if self.tty and not self.quiet:
            sys.stderr.write("\n")
