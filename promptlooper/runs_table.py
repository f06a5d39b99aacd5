"""An experiment's runs as one tidy table: the data taken out, and what every data view reads.

One row per run (every status, failed runs included): the run's ids, each varied parameter of its
configuration as its own column, the weighted score and each scorer's value, tokens, cost (USD),
latency, status and error, times and the output. Columns have one clean dtype each (numbers as
floats or nullable integers, text as strings, times as UTC timestamps, a parameter whose values
mix types or are lists as JSON text), so ``df.to_parquet`` and ``df.to_csv`` work as they are.

A scorer whose label is also a parameter name gets the column ``scorer:<label>``. The ``current``
column says whether the run belongs to the experiment's current definition (its configurations and
samples: what the leaderboard ranks); the data views read those runs, the export has them all.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from .errors import PromptLooperError
from .store import Store

if TYPE_CHECKING:
    import pandas as pd


def scorer_labels(experiment: dict[str, Any]) -> list[str]:
    return [(s.get("label") or s["name"]) for s in experiment["spec"].get("scorers", [])]


def runs_frame(store: Store, experiment: dict[str, Any], *, with_output: bool = True) -> pd.DataFrame:
    """The tidy runs table of ``experiment`` (a store row). ``attrs``: ``params`` (the varied
    parameter columns, in order) and ``scorers`` (the scorer columns)."""
    # Lazy: the CLI imports this module to build its parser; only a data command needs pandas.
    import numpy as np
    import pandas as pd

    rows = store.run_table_rows(experiment["id"])
    runs = pd.DataFrame.from_records(rows, columns=list(Store.RUN_TABLE_COLUMNS))
    configs = store.configurations(experiment["id"])
    params: list[str] = []
    for c in configs:
        params += [k for k in c["varied"] if k not in params]
    varied = {c["id"]: c["varied"] for c in configs}
    labels = scorer_labels(experiment)
    scores = pd.DataFrame.from_records(store.run_score_values(experiment["id"]), columns=["run_id", "scorer", "value"])
    # Scorers in the store but not in the spec any more (renamed, removed) still belong to their runs.
    labels += [s for s in dict.fromkeys(scores.scorer) if s not in labels]
    score_cols = {label: (f"scorer:{label}" if label in params or label in runs.columns else label) for label in labels}

    out = runs[["run_id", "config_id", "sample_id"]].copy()
    out["sample_index"] = runs["sample_index"].astype("Int64")
    out["repeat"] = runs["repeat"].astype("Int64")
    codes, uniques = pd.factorize(runs["config_id"])
    for p in params:
        per_config = [varied.get(cid, {}).get(p) for cid in uniques]
        out[p] = _param_column([per_config[i] for i in codes] if len(codes) else [])
    out["score"] = pd.to_numeric(runs["score"], errors="coerce").astype(float)
    if len(scores):
        scores["value"] = pd.to_numeric(scores["value"], errors="coerce")
        # (run_id, scorer) is the scores table's key: a plain unstack, no aggregation needed.
        wide = scores.set_index(["run_id", "scorer"])["value"].unstack("scorer").reindex(out["run_id"])
    else:
        wide = pd.DataFrame(index=out["run_id"])
    for label, col in score_cols.items():
        out[col] = wide[label].to_numpy(dtype=float) if label in wide.columns else np.full(len(out), np.nan)
    out["tokens_in"] = runs["tokens_in"].fillna(0).astype("int64")
    out["tokens_out"] = runs["tokens_out"].fillna(0).astype("int64")
    out["tokens"] = out["tokens_in"] + out["tokens_out"]
    for col in ("cost", "latency_ms", "duration_ms"):
        out[col] = pd.to_numeric(runs[col], errors="coerce").astype(float)
    out["status"] = runs["status"].astype("string")
    out["error"] = runs["error"].astype("string")
    members = store.definition(experiment["id"])
    if members is None:  # stored before definitions were kept: the whole experiment is current
        out["current"] = True
    else:
        out["current"] = runs["config_id"].isin(members["configurations"]) & runs["sample_id"].isin(members["sample_ids"])
    for col in ("started_at", "completed_at"):
        out[col] = pd.to_datetime(runs[col], utc=True, errors="coerce", format="ISO8601")
    if with_output:
        out["output"] = runs["output"].astype("string")
    for col in ("run_id", "config_id", "sample_id"):
        out[col] = out[col].astype("string")
    out.attrs["params"] = params
    out.attrs["scorers"] = list(score_cols.values())
    return out


def current_runs(store: Store, experiment: dict[str, Any], *, with_output: bool = True,
                 all_definitions: bool = False) -> pd.DataFrame:
    """:func:`runs_frame` narrowed to the current definition (what the leaderboard ranks), unless
    ``all_definitions``."""
    df = runs_frame(store, experiment, with_output=with_output)
    if all_definitions or bool(df["current"].all()):
        return df
    kept = df[df["current"]].reset_index(drop=True)
    kept.attrs.update(df.attrs)
    return kept


def _param_column(values: list[Any]) -> pd.Series:
    """One varied parameter as one dtype: float for numbers, boolean, string, else JSON text."""
    import pandas as pd  # lazy, as in runs_frame (its only caller)

    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    kinds = {"bool" if isinstance(v, bool) else "number" if isinstance(v, int | float) else
             "str" if isinstance(v, str) else "other" for v in present}
    if kinds == {"number"}:
        if all(isinstance(v, int) for v in present):
            return pd.Series(values, dtype="Int64")
        return pd.Series([math.nan if v is None else float(v) for v in values], dtype=float)
    if kinds == {"bool"}:
        return pd.Series(values, dtype="boolean")
    if kinds <= {"str"}:
        return pd.Series(values, dtype="string")
    return pd.Series([None if v is None else json.dumps(v, ensure_ascii=False, sort_keys=True) for v in values],
                     dtype="string")



EXPORT_FORMATS = ("csv", "jsonl", "parquet")


def encode(df: pd.DataFrame, fmt: str) -> bytes:
    """The table as a file's bytes: CSV (UTF-8, header), JSON lines (ISO times) or Parquet."""
    if fmt == "csv":
        return df.to_csv(index=False).encode("utf-8")
    if fmt == "jsonl":
        return (df.to_json(orient="records", lines=True, date_format="iso", force_ascii=False) or "").encode("utf-8")
    if fmt == "parquet":
        import io

        buf = io.BytesIO()
        try:
            df.to_parquet(buf, index=False)
        except ImportError as exc:
            raise PromptLooperError("parquet needs pyarrow: pip install 'promptlooper[analysis]'") from exc
        return buf.getvalue()
    raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")


__all__ = ["EXPORT_FORMATS", "current_runs", "encode", "runs_frame", "scorer_labels"]
