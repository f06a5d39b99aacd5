"""Loading samples: inline objects, or a file: .jsonl, .csv, .json (an array), .yaml, .parquet, or a
folder a Hugging Face dataset was saved to (:mod:`promptlooper.sample_files`).

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

from .bounds import load_yaml
from .errors import Problem, SpecError
from .hashing import content_hash
from .sample_files import read_dataset_folder, read_parquet


def read_samples(path: Path) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Read a samples file; problems name the file and line instead of raising."""
    where = "samples"
    if not path.exists():
        return [], [Problem(where, f"samples file {path} does not exist", "check the path (relative paths are resolved next to the experiment file)")]
    suffix = path.suffix.lower()
    if path.is_dir():
        return read_dataset_folder(path)
    if suffix == ".parquet":
        return read_parquet(path)
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
    if suffix in (".json", ".yaml", ".yml"):
        return _document(text, path)
    return [], [Problem(where, f"unsupported samples file type {suffix!r}",
                        "use .jsonl, .csv, .json, .yaml, .parquet or a saved dataset folder, or list the samples inline")]


def _document(text: str, path: Path) -> tuple[list[dict[str, Any]], list[Problem]]:
    """A .json or .yaml file holding one list of objects (YAML read with the experiment file's bounds)."""
    where = f"samples ({path.name})"
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else load_yaml(text, path.name)
    except json.JSONDecodeError as exc:
        return [], [Problem(f"{where} line {exc.lineno}", f"invalid JSON: {exc.msg}", "the file must hold one JSON array of objects")]
    except SpecError as exc:
        return [], exc.problems
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))  # {"samples": [...]} / {"data": [...]}, as many exports are
    if not isinstance(data, list):
        return [], [Problem(where, f"the file holds a {type(data).__name__}, not a list of samples",
                            "write a list of objects: [{question: ..., reference: ...}, ...]")]
    bad = [i for i, row in enumerate(data) if not isinstance(row, dict)]
    if bad:
        return [], [Problem(f"{where} [{bad[0]}]", f"{len(bad)} item(s) are not objects (the first: {data[bad[0]]!r:.60})",
                            'each sample is an object such as {"question": "..."}')]
    return data, []


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
