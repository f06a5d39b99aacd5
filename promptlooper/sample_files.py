"""Samples from columnar files: .parquet, and a Hugging Face dataset saved to disk.

``Dataset.save_to_disk(folder)`` leaves Arrow IPC stream files (``data-00000-of-00001.arrow``,
listed in ``state.json``) beside ``dataset_info.json``; a ``DatasetDict`` leaves one such folder
per split and a ``dataset_dict.json``. Both are read here with pyarrow alone, so the ``datasets``
package (and its dependencies) is not needed to use what it saved. Values become plain JSON
values (dates as ISO text, bytes refused), as a .jsonl file would give them: sample ids, cache
keys and templates then see the same data whatever file it came from.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from pathlib import Path
from typing import Any

from .errors import Problem

WHERE = "samples"


def read_parquet(path: Path) -> tuple[list[dict[str, Any]], list[Problem]]:
    pa, problem = _pyarrow(path)
    if pa is None:
        return [], [problem]
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        return [], [Problem(WHERE, f"cannot read parquet file {path}: {exc}", "check that it is a parquet file")]
    return _rows(table, path.name)


def read_dataset_folder(path: Path) -> tuple[list[dict[str, Any]], list[Problem]]:
    """A folder: a saved Dataset (its .arrow files), or a folder of .parquet files."""
    splits = path / "dataset_dict.json"
    if splits.is_file():
        try:
            names = json.loads(splits.read_text(encoding="utf-8")).get("splits", [])
        except (OSError, ValueError, AttributeError):
            names = sorted(p.name for p in path.iterdir() if p.is_dir())
        return [], [Problem(WHERE, f"{path} holds several splits ({', '.join(map(str, names))}), not one dataset",
                            f"name the split's folder, e.g. samples: {path.name}/{names[0] if names else 'test'}")]
    files = _arrow_files(path)
    parquet = sorted(path.glob("*.parquet"))
    if not files and not parquet:
        return [], [Problem(WHERE, f"folder {path} holds no dataset (no .arrow files listed in state.json, no .parquet files)",
                            "name a folder written by datasets' save_to_disk, or a .jsonl / .csv / .json / .yaml / .parquet file")]
    pa, problem = _pyarrow(path)
    if pa is None:
        return [], [problem]
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for file in files or parquet:
        try:
            table = _read_arrow(pa, file) if file.suffix == ".arrow" else pq.read_table(file)
        except (OSError, pa.ArrowException) as exc:
            problems.append(Problem(WHERE, f"cannot read {file}: {exc}", "the folder must be as save_to_disk wrote it"))
            continue
        more, bad = _rows(table, f"{path.name}/{file.name}")
        rows += more
        problems += bad
    return rows, problems


def _arrow_files(path: Path) -> list[Path]:
    """The data files in the order state.json lists them (the dataset's row order), else by name."""
    state = path / "state.json"
    if state.is_file():
        try:
            listed = [path / f["filename"] for f in json.loads(state.read_text(encoding="utf-8")).get("_data_files", [])]
            if listed and all(f.is_file() for f in listed):
                return listed
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
    return sorted(path.glob("*.arrow"))


def _read_arrow(pa: Any, file: Path) -> Any:
    # save_to_disk writes the IPC *stream* format; the random-access file format is accepted too.
    import pyarrow.ipc as ipc

    with pa.memory_map(str(file)) as source:
        try:
            return ipc.open_stream(source).read_all()
        except pa.ArrowInvalid:
            source.seek(0)
            return ipc.open_file(source).read_all()


def _pyarrow(path: Path) -> tuple[Any, Problem]:
    try:
        import pyarrow as pa
    except ImportError:
        return None, Problem(WHERE, f"reading {path.name} needs pyarrow, which is not installed",
                             "pip install 'promptlooper[data]' (or pyarrow), or convert the samples to .jsonl")
    return pa, Problem(WHERE, "")


def _rows(table: Any, name: str) -> tuple[list[dict[str, Any]], list[Problem]]:
    try:
        return [_plain(r, name) for r in table.to_pylist()], []
    except ValueError as exc:
        return [], [Problem(f"{WHERE} ({name})", str(exc), "drop binary columns, or convert the samples to .jsonl")]


def _plain(value: Any, name: str) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v, name) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, name) for v in value]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        raise ValueError(f"a binary value ({base64.b64encode(value[:12]).decode()}…): samples hold text, numbers and lists")
    return value


__all__ = ["read_dataset_folder", "read_parquet"]
