"""Loading samples: inline objects, a .jsonl file or a .csv file.

A sample's identity is its ``id`` field when it has one, else the hash of its content, so that
reordering a file keeps every finished run and editing one sample re-runs only that sample.
In a .csv file, a column whose every value is a number is read as numbers.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from .errors import Problem
from .hashing import content_hash


def read_samples(path: Path) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Read a samples file; problems name the file and line instead of raising."""
    where = "samples"
    if not path.exists():
        return [], [Problem(where, f"samples file {path} does not exist", "check the path (relative paths are resolved next to the experiment file)")]
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem(where, f"cannot read samples file {path}: {exc}", "make it a readable UTF-8 file")]
    if suffix == ".jsonl":
        rows: list[dict[str, Any]] = []
        problems: list[Problem] = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(Problem(f"{where} ({path.name} line {lineno})", f"invalid JSON: {exc.msg}", "each line must be one JSON object"))
                continue
            if not isinstance(obj, dict):
                problems.append(Problem(f"{where} ({path.name} line {lineno})", "a line is not a JSON object", 'write objects such as {"question": "..."}'))
                continue
            rows.append(obj)
        return rows, problems
    if suffix == ".csv":
        return _numeric_columns([dict(r) for r in csv.DictReader(text.splitlines())]), []
    return [], [Problem(where, f"unsupported samples file type {suffix!r}", "use .jsonl or .csv, or list the samples inline")]


# A number as a person writes one in a spreadsheet; "007" (a code, not a count), "nan" and "inf"
# are not numbers here, and neither is an empty cell.
_NUMBER = re.compile(r"[-+]?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?0?\.\d+")


def _numeric_columns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A CSV column whose every value is a number becomes numbers (int when all are whole), as
    the same data in a .jsonl file would be: ``{{ n + 1 }}`` then works on either."""
    if not rows:
        return rows
    for column in rows[0]:
        values = [r.get(column) for r in rows]
        if not all(isinstance(v, str) and _NUMBER.fullmatch(v.strip()) for v in values):
            continue
        whole = all(re.fullmatch(r"[-+]?\d+", str(v).strip()) for v in values)
        for r in rows:
            r[column] = int(r[column]) if whole else float(r[column])
    return rows


def sample_id(sample: dict[str, Any]) -> str:
    if "id" in sample and isinstance(sample["id"], str | int):
        return f"id:{sample['id']}"
    return content_hash("sample", sample)[:16]
