"""The output matrix: samples down, configurations (or the values of any variable) across, each
cell a run's output with its score and each scorer's pass / fail, as in promptfoo's eval table.

:func:`matrix` returns a :class:`Matrix`: ``cells`` (one row per run kept, long form, for a view to
render or a notebook to query) and pivots of it (``outputs``, ``scores``). A scorer passes at
``threshold`` (0.5 by default, the line the judge calibration binarises at) or above; a failed run
fails every scorer. Filters narrow the rows (samples) or the cells:

* ``differ``: only samples whose outputs are not all the same across the columns;
* ``failures``: only samples with a failing cell (a failed run or a scorer under the threshold);
* ``where``: only runs whose parameters have these values (a value or a list of values);
* ``score``: only cells whose weighted score is inside ``(low, high)`` (inclusive);
* ``search``: only runs whose output or prompt contains this text (case-insensitive).

Everything is vectorised over the tidy runs table: 200 configurations x 100 samples (20,000 runs)
take well under a second.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import NotFoundError
from .hashing import short
from .store import Store


@dataclass
class Matrix:
    """``cells``: one row per run kept: sample_index, sample_id, column (its configuration's short id,
    or its value of ``by``), run_id, config_id, repeat, status, output, score, failed_scorers, error
    and one boolean ``passed:<scorer>`` per scorer. ``columns`` and ``samples`` are in display order."""

    cells: pd.DataFrame
    by: str
    columns: list[str]
    samples: list[str]
    scorers: list[str]
    threshold: float

    @property
    def outputs(self) -> pd.DataFrame:
        """Samples x columns of outputs (the first repeat's, when a cell holds several runs)."""
        return self._pivot("output", "first")

    @property
    def scores(self) -> pd.DataFrame:
        """Samples x columns of mean weighted scores."""
        return self._pivot("score", "mean")

    def _pivot(self, value: str, agg: str) -> pd.DataFrame:
        if self.cells.empty:
            return pd.DataFrame(index=pd.Index([], name="sample_id"), columns=self.columns)
        table = self.cells.pivot_table(index="sample_id", columns="column", values=value, aggfunc=agg, sort=False)
        return table.reindex(index=[s for s in self.samples if s in table.index],
                             columns=[c for c in self.columns if c in table.columns])

    def __len__(self) -> int:
        return len(self.cells)


def matrix(store: Store, experiment: dict[str, Any], runs: pd.DataFrame, *, by: str = "config", differ: bool = False,
           failures: bool = False, where: dict[str, Any] | None = None, score: Sequence[float] | None = None,
           search: str | None = None, threshold: float = 0.5) -> Matrix:
    """The output matrix of ``runs`` (the experiment's :func:`~promptlooper.runs_table.runs_frame`)."""
    params: list[str] = runs.attrs.get("params", [])
    scorers: list[str] = runs.attrs.get("scorers", [])
    if by not in ("config", "config_id") and by not in params:
        raise NotFoundError(f"no variable {by!r} to put across; choose 'config' or one of: {', '.join(params) or 'none'}")
    df = runs
    for key, value in (where or {}).items():
        if key not in params:
            raise NotFoundError(f"where: {key!r} is not a varied parameter; choose one of: {', '.join(params) or 'none'}")
        wanted = value if isinstance(value, list | tuple | set) else [value]
        df = df[df[key].isin(list(wanted))]
    if search:
        needle = search.lower()
        hit = df["output"].fillna("").str.lower().str.contains(needle, regex=False)
        # The store narrows the prompts to those whose JSON holds the text (SQLite's lower() folds
        # ASCII only, and JSON escapes quotes and backslashes: other needles are searched in full).
        plain = needle.isascii() and not any(ch in needle for ch in '"\\') and needle.isprintable()
        prompts = store.run_prompts(experiment["id"], needle if plain else None)
        found = {run_id for run_id, raw in prompts if needle in _prompt_text(raw).lower()}
        df = df[hit | df["run_id"].isin(found)]
    if score is not None:
        low, high = (float(score[0]), float(score[1])) if len(score) == 2 else (float("nan"), float("nan"))
        if not low <= high:
            raise ValueError(f"score range must be (low, high) with low <= high, not {tuple(score)!r}")
        df = df[df["score"].between(low, high)]

    column = df["config_id"].map(short) if by in ("config", "config_id") else df[by].astype("string")
    failed_run = (df["status"] == "failed").to_numpy()
    fails = {s: failed_run | ~(df[s].to_numpy(dtype=float) >= threshold) for s in scorers}
    failed_names = np.full(len(df), "", dtype=object)
    for s, mask in fails.items():
        failed_names = np.where(mask, failed_names + (s + " "), failed_names)
    cells = pd.DataFrame({
        "sample_index": df["sample_index"], "sample_id": df["sample_id"], "column": column, "run_id": df["run_id"],
        "config_id": df["config_id"], "repeat": df["repeat"], "status": df["status"], "output": df["output"],
        "score": df["score"], "failed_scorers": pd.Series(failed_names, index=df.index).str.strip(),
        "error": df["error"],
        # One boolean column per scorer ("passed:<label>"): a badge each, vectorised.
        **{f"passed:{s}": pd.Series(~mask, index=df.index) for s, mask in fails.items()},
    })
    any_fail = cells["failed_scorers"].ne("") | cells["status"].eq("failed")
    if failures:
        cells = cells[cells["sample_id"].isin(cells.loc[any_fail, "sample_id"])]
    if differ:
        variety = cells.assign(o=cells["output"].fillna("\0failed")).groupby("sample_id")["o"].nunique()
        cells = cells[cells["sample_id"].isin(variety[variety > 1].index)]
    cells = cells.sort_values(["sample_index", "column", "repeat"], kind="stable").reset_index(drop=True)
    columns = list(dict.fromkeys(cells["column"])) if by not in ("config", "config_id") else \
        list(dict.fromkeys(cells.sort_values(["column"])["column"]))
    return Matrix(cells=cells, by=by, columns=columns, samples=list(dict.fromkeys(cells["sample_id"])),
                  scorers=scorers, threshold=threshold)


def _prompt_text(raw: str | None) -> str:
    """The text of the messages in a run's stored prompts (JSON lists of messages, one per line)."""
    if not raw:
        return ""
    parts = []
    for line in raw.split("\n"):
        try:
            value = json.loads(line)
        except ValueError:
            parts.append(line)
            continue
        if isinstance(value, list):
            parts += [str(m.get("content", "")) if isinstance(m, dict) else str(m) for m in value]
        else:
            parts.append(str(value))
    return "\n".join(parts)


__all__ = ["Matrix", "matrix"]
