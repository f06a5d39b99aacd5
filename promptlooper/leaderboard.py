"""Rankings: configurations (never single runs) by weighted score over samples, with intervals.

A run's weighted score is the weighted mean of its scorers (weights from the experiment). Repeats
of one sample are averaged first, so the interval reflects the samples: a configuration's score is
the mean over samples, with a 95% Student-t interval (none for n = 1), and ``n`` is always shown.
Only the experiment's current definition is ranked: the configurations it planned (or a redirect,
guided search or outside driver added), on its samples, with its scorers; earlier definitions stay
in the store (``definition=N``, ``all_definitions=True``). Experiments stored before definitions
were kept are ranked whole.

Rejected configurations are left out (``include_rejected`` lists them after the ranking, never as
the best, for a board that can un-reject them); approved ones are marked. A configuration whose every run
failed stays on the board, last, with ``n`` 0; ``failed`` counts failed runs and ``failure`` gives
the most common reason. ``interval="bootstrap"`` gives a seeded percentile bootstrap interval
instead. A missing score (a judge reply with no grade, a scorer that failed) is left out of every
mean and counted in the ``missing`` column. The ``distinguishable`` column (text, like every column of one type) compares every
configuration with the best one in a paired t-test over the samples both finished: 'best' for the
best, 'yes' when the difference is significant (p < 0.05), 'no' when it is not or when fewer than
3 samples are shared, so a close second is never mistaken for a loser.

Computed in plain Python (rows as dicts, :func:`board`), because a CLI run prints the leaderboard and
pandas + numpy would cost it more start-up than a short sweep takes. :func:`leaderboard` turns the
same rows into the DataFrame notebooks get (pandas imported then); the rows are normalised the way
pandas types columns (:func:`_like_a_frame`), so ``board(...).rows`` equals the frame's records.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from typing import TYPE_CHECKING, Any, NamedTuple

from .hashing import short
from .intervals import fsum_like_numpy, is_missing, versus_best
from .intervals import interval as _interval
from .scoring import weighted_score, weights_of
from .store import Store

if TYPE_CHECKING:
    import pandas as pd

PER_SAMPLE_KEYS = ("config_id", "sample_id")


class PerSample(NamedTuple):
    """One row per (configuration, sample), sorted by both: each scorer's mean and the weighted
    score; ``scorers`` names the scorer columns (sorted); ``missing`` counts missing scores per
    configuration (left out of every mean, shown in the leaderboard's ``missing`` column)."""
    rows: list[dict[str, Any]]
    scorers: list[str]
    missing: dict[str, int]


def per_sample(store: Store, experiment_id: str, weights: dict[str, float]) -> PerSample:
    """Repeats of one sample are averaged; a run's weighted score is the weighted mean of its
    present scores (a run whose every score is missing keeps its row, with a NaN score, so its
    configuration stays on the board with n = 0 instead of vanishing)."""
    cells: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    scorers: set[str] = set()
    missing: Counter[str] = Counter()
    for config_id, run_id, sample_id, scorer, value in store.score_rows(experiment_id):
        value = _number(value)
        scorers.add(scorer)
        values = cells.setdefault((config_id, sample_id, run_id), {}).setdefault(scorer, [])
        if math.isnan(value):
            missing[config_id] += 1
        else:
            values.append(value)
    names = sorted(scorers)
    by_pair: dict[tuple[str, str], list[dict[str, float]]] = {}
    for (config_id, sample_id, _), values in sorted(cells.items()):
        run = {s: (math.fsum(values[s]) / len(values[s]) if values.get(s) else math.nan) for s in names}
        present = [s for s in names if not math.isnan(run[s])]
        score = weighted_score([(s, run[s]) for s in present], weights)  # the runner's formula
        run["score"] = math.nan if score is None else score
        by_pair.setdefault((config_id, sample_id), []).append(run)
    rows = []
    for (config_id, sample_id), runs in by_pair.items():
        row: dict[str, Any] = {"config_id": config_id, "sample_id": sample_id}
        for col in [*names, "score"]:
            present_values = [r[col] for r in runs if not math.isnan(r[col])]
            row[col] = math.fsum(present_values) / len(present_values) if present_values else math.nan
        rows.append(row)
    return PerSample(rows, names, dict(missing))


def per_sample_scores(store: Store, experiment_id: str, weights: dict[str, float]) -> pd.DataFrame:
    """:func:`per_sample` as a DataFrame (``attrs["missing"]``: missing scores per configuration)."""
    import pandas as pd  # lazy: notebook-side views only; the CLI and the sweep never ask for this

    table = per_sample(store, experiment_id, weights)
    if not table.rows:
        return pd.DataFrame(columns=["config_id", "sample_id", "score"])
    df = pd.DataFrame.from_records(table.rows, columns=[*PER_SAMPLE_KEYS, *table.scorers, "score"])
    df.attrs["missing"] = table.missing
    return df


COLUMNS_HEAD = ("rank", "config_id")
COLUMNS_TAIL = ("tokens", "cost", "latency_ms", "failed", "missing", "failure", "decision", "full_config_id")
DISTINGUISHABLE = {"best": "best", True: "yes", False: "no"}


class Board(NamedTuple):
    """A leaderboard as rows (dicts, ranked) and its columns (also known when there is no row)."""
    columns: list[str]
    rows: list[dict[str, Any]]


def leaderboard(store: Store, experiment: dict[str, Any], *, sort: str | None = None, top: int | None = None,
                include_rejected: bool = False, interval: str = "t", definition: int | None = None,
                all_definitions: bool = False) -> pd.DataFrame:
    """:func:`board` as a DataFrame (the notebook's leaderboard)."""
    import pandas as pd  # lazy: see the module docstring

    ranked = board(store, experiment, sort=sort, top=top, include_rejected=include_rejected, interval=interval,
                   definition=definition, all_definitions=all_definitions)
    if not ranked.rows:
        return pd.DataFrame(columns=ranked.columns)
    return pd.DataFrame.from_records(ranked.rows, columns=ranked.columns)


def board(
    store: Store,
    experiment: dict[str, Any],
    *,
    sort: str | None = None,
    top: int | None = None,
    include_rejected: bool = False,
    interval: str = "t",
    definition: int | None = None,
    all_definitions: bool = False,
) -> Board:
    """The ranking of the experiment's current definition (``definition``: an earlier one by its
    number; ``all_definitions``: every configuration and sample ever run)."""
    spec = experiment["spec"]
    members = None if all_definitions else store.definition(experiment["id"], definition)
    if members is not None and definition is not None:
        spec = members["spec"]  # a past definition is ranked with its own scorers
    weights = weights_of(spec.get("scorers", []))
    configs = {c["id"]: c for c in store.configurations(experiment["id"])}
    table = per_sample(store, experiment["id"], weights)
    scores, scorer_cols = table.rows, table.scorers
    runs = store.run_rows(experiment["id"])  # (config_id, run_id, sample_id, status, tokens_in, tokens_out, cost, latency_ms)
    failures = store.failed_runs(experiment["id"])  # (config_id, sample_id, error)
    if members is not None:
        wanted, samples = set(members["configurations"]), set(members["sample_ids"])
        scores = [r for r in scores if r["config_id"] in wanted and r["sample_id"] in samples]
        runs = [r for r in runs if r[0] in wanted and r[2] in samples]
        failures = [f for f in failures if f[0] in wanted and f[1] in samples]
        # Scorers that other definitions had and this one dropped go. Human ratings stay, and so do
        # scores `rescore` added for a scorer no definition names (an extra column, not weighted).
        dropped = {(s.get("label") or s["name"]) for d in store.definitions(experiment["id"])
                   for s in d["spec"].get("scorers", [])} - set(weights)
        scorer_cols = [c for c in scorer_cols if c not in dropped]
    if not include_rejected:
        rejected = {cid for cid, c in configs.items() if c.get("decision") == "rejected"}
        scores = [r for r in scores if r["config_id"] not in rejected]
        runs = [r for r in runs if r[0] not in rejected]
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in scores:  # sorted by configuration, then sample
        groups.setdefault(row["config_id"], []).append(row)
    # Every configuration that ran, scored or not: one whose every run failed stays on the board.
    ranked_ids = list(groups) + [c for c in dict.fromkeys(r[0] for r in runs) if c not in groups]
    varied_keys: list[str] = []
    for config_id in ranked_ids:
        for k in (configs.get(str(config_id)) or {}).get("varied", {}):
            if k not in varied_keys:
                varied_keys.append(k)
    totals, failed_counts = _run_totals(runs), Counter(r[0] for r in runs if r[3] == "failed")
    reasons = _most_common_reasons(failures)
    missing = table.missing
    records = []
    for config_id in ranked_ids:
        cfg = configs.get(str(config_id))
        group = groups.get(config_id, [])
        values = [r["score"] for r in group if not math.isnan(r["score"])]
        low, high = _interval(values, interval)
        rec: dict[str, Any] = {"config_id": short(str(config_id))}
        for k in varied_keys:
            rec[k] = (cfg["varied"].get(k) if cfg else None)
        rec.update({
            "score": fsum_like_numpy(values) / len(values) if values else math.nan,
            "ci_low": low, "ci_high": high, "n": len(values), "distinguishable": "no",
        })
        for col in scorer_cols:
            rec[col] = _column_mean([r[col] for r in group])
        tokens, cost, latency = totals.get(config_id, (0, 0.0, math.nan))
        rec.update({
            "tokens": tokens, "cost": cost, "latency_ms": latency,
            "failed": failed_counts.get(config_id, 0),
            "missing": int(missing.get(config_id, 0)),
            "failure": reasons.get(str(config_id), ""),
            "decision": (cfg.get("decision") if cfg else None) or "",
            "full_config_id": str(config_id),
        })
        records.append(rec)
    columns = [*COLUMNS_HEAD, *varied_keys, "score", "ci_low", "ci_high", "n", "distinguishable", *scorer_cols,
               *COLUMNS_TAIL]
    if not records:
        return Board(columns, [])
    for k in varied_keys:
        for rec, value in zip(records, _one_type([rec[k] for rec in records]), strict=True):
            rec[k] = value
    key = sort or "score"
    if key not in records[0]:
        raise KeyError(f"cannot sort by {key!r}; choose one of: score, {', '.join(scorer_cols)}, tokens, cost, latency_ms")
    # Configurations with no finished run go last whatever the order (their cost of 0 is no merit),
    # and rejected ones (listed only on request, to be un-rejected) after everything else.
    records = _sorted(records, key, descending=key not in ("cost", "tokens", "latency_ms"))
    rows = [{"rank": i, **rec} for i, rec in enumerate(records, start=1)]
    # Compared on what the ranking is about: the sorted scorer's column, else the weighted score.
    metric = key if key in scorer_cols else "score"
    ranked = [r for r in rows if r["decision"] != "rejected" and not is_missing(r[metric])]
    if ranked:
        best = max(ranked, key=lambda r: (r[metric], -r["rank"]))["full_config_id"]
        shown = {r["full_config_id"] for r in rows}
        marks = versus_best([r for r in scores if r["config_id"] in shown], metric, best)
        for r in rows:
            r["distinguishable"] = DISTINGUISHABLE[marks.get(r["full_config_id"], False)]
    if top:
        rows = rows[:top]
    return Board(columns, _like_a_frame(rows))


def _number(value: Any) -> float:
    """A stored score as a float; NULL (a missing score) or anything unreadable as NaN."""
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan


def _column_mean(values: list[float]) -> float:
    """The mean of the present values, summed as pandas' ``Series.mean`` sums (missing as 0)."""
    n = sum(not math.isnan(v) for v in values)
    return fsum_like_numpy([0.0 if math.isnan(v) else v for v in values]) / n if n else math.nan


def _run_totals(runs: list[tuple[Any, ...]]) -> dict[str, tuple[int, float, float]]:
    """Per configuration, over its finished runs: (tokens in + out, cost, median latency)."""
    finished: dict[str, list[tuple[Any, ...]]] = {}
    for r in runs:
        if r[3] in ("completed", "cached"):
            finished.setdefault(r[0], []).append(r)
    out = {}
    for config_id, rs in finished.items():
        tokens = sum(v for r in rs for v in (r[4], r[5]) if v is not None)
        cost = math.fsum(r[6] for r in rs if r[6] is not None)
        latencies = [float(r[7]) for r in rs if not is_missing(r[7])]
        out[config_id] = (int(tokens), float(cost), float(statistics.median(latencies)) if latencies else math.nan)
    return out


def _sorted(records: list[dict[str, Any]], key: str, *, descending: bool) -> list[dict[str, Any]]:
    """Kept before rejected, scored before unscored, then by ``key`` and by n (more first); a
    missing value last in every key; ties keep their order (pandas' stable multi-key sort)."""
    order = [("n", True), (key, descending)]
    for column, desc in order:  # least significant key first: each stable pass keeps the last one's ties
        present = [r for r in records if not is_missing(r[column])]
        absent = [r for r in records if is_missing(r[column])]
        records = sorted(present, key=lambda r, c=column: r[c], reverse=desc) + absent
    records = sorted(records, key=lambda r: r["n"] > 0, reverse=True)
    return sorted(records, key=lambda r: r["decision"] != "rejected", reverse=True)


def _like_a_frame(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each column typed as pandas types it: numbers with a float or a gap are all floats (NaN for
    a gap), so ``rows`` equal the DataFrame's records and print the same way."""
    if not rows:
        return rows
    for column in rows[0]:
        values = [r[column] for r in rows]
        present = [v for v in values if not is_missing(v)]
        numeric = present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)
        if numeric and (len(present) < len(values) or any(isinstance(v, float) for v in present)):
            for r in rows:
                r[column] = math.nan if is_missing(r[column]) else float(r[column])
    return rows


def _most_common_reasons(failures: list[tuple[Any, ...]]) -> dict[str, str]:
    """Each configuration's most frequent failure reason (ties: the alphabetically first)."""
    counted = Counter((str(config_id), error if error is not None else "unknown error")
                      for config_id, _, error in failures)
    out: dict[str, str] = {}
    for (config_id, error), _ in sorted(counted.items(), key=lambda item: (item[0][0], -item[1], item[0][1])):
        out.setdefault(config_id, error)
    return out


def _one_type(column: list[Any]) -> list[Any]:
    """A varied column as one type: mixed values (a string and a list, say) as JSON text each."""
    def kind(v: Any) -> str:
        if isinstance(v, bool):
            return "bool"
        if isinstance(v, int | float):
            return "number"
        return "str" if isinstance(v, str) else "other"

    present = [v for v in column if v is not None and not (isinstance(v, float) and math.isnan(v))]
    kinds = {kind(v) for v in present}
    if len(kinds) <= 1 and "other" not in kinds:
        return column
    return [json.dumps(v, ensure_ascii=False, sort_keys=True) if v is not None else None for v in column]
