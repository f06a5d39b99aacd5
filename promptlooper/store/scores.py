"""Scores: the automatic ones a sweep or a re-scoring writes, people's ratings, and their read models.

Part of :class:`~promptlooper.store.Store`. A score row is keyed by (run, column); ``source`` says
who gave it: ``auto`` (a scorer) or ``human`` (a rating, or the column of an experiment's ``human``
scorer). Whenever a write changes a run's scores, the same transaction stores the run's weighted
score again, with :func:`promptlooper.scoring.weighted_score` over every source (an experiment may
weigh people's ratings in), so no reader ever sees a run's scores and its score disagree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..scoring import weighted_score
from .db import Queries
from .in_lists import marks
from .scoping import config_scopes

# (column, value or None, metadata or None, scorer name, scorer args): one score row as given.
ScoreRow = tuple[str, float | None, dict[str, Any] | None, str, dict[str, Any]]
# column -> (value or None to remove the column, metadata, scorer args): a ``human`` scorer's columns.
HumanColumns = Callable[[dict[str, float]], Mapping[str, tuple[float | None, dict[str, Any], dict[str, Any]]]]

_INSERT = ("INSERT OR REPLACE INTO scores (run_id, scorer, value, metadata, scorer_name, scorer_args, source, created_at)"
           " VALUES (?,?,?,?,?,?,?,?)")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


class Scores(Queries):
    """Score rows and the weighted score of each run that follows from them."""

    def scorer_sums(self, experiment_id: str, config_ids: Sequence[str] | None = None) -> dict[str, dict[str, list[float]]]:
        """Per configuration and scorer, [sum, count] of the automatic scores of finished runs (missing ones left out);
        of the configurations ``config_ids`` only, if given (a worker's chunk: the experiment's
        whole join cost the server ~20 ms a chunk on benchmarks/workers.py b, for a dozen of them)."""
        sql = ("SELECT r.config_id, s.scorer, SUM(s.value), COUNT(*) FROM scores s JOIN runs r ON r.id = s.run_id"
               " WHERE r.experiment_id = ? AND r.status IN ('completed', 'cached') AND s.source = 'auto'"
               " AND s.value IS NOT NULL")  # a missing score is left out, never counted as 0
        out: dict[str, dict[str, list[float]]] = {}
        with self.cx.read() as c:
            for where, params in config_scopes("r.config_id", config_ids):
                for config_id, scorer, total, n in c.execute(f"{sql}{where} GROUP BY r.config_id, s.scorer",
                                                              (experiment_id, *params)):
                    out.setdefault(config_id, {})[scorer] = [float(total), float(n)]
        return out

    def score_rows(self, experiment_id: str) -> list[tuple[Any, ...]]:
        """(config_id, run_id, sample_id, scorer, value) of every finished run, for rankings."""
        with self.cx.read() as c:
            return c.execute(
                "SELECT r.config_id, r.id, r.sample_id, s.scorer, s.value FROM runs r JOIN scores s ON s.run_id = r.id"
                " WHERE r.experiment_id = ? AND r.status IN ('completed', 'cached')",
                (experiment_id,),
            ).fetchall()

    def run_score_values(self, experiment_id: str) -> list[tuple[Any, ...]]:
        """(run_id, scorer, value) of every score of every run of the experiment (missing scores: NULL)."""
        with self.cx.read() as c:
            return c.execute("SELECT s.run_id, s.scorer, s.value FROM scores s JOIN runs r ON r.id = s.run_id"
                             " WHERE r.experiment_id = ?", (experiment_id,)).fetchall()

    def finished_score_sums(self, experiment_id: str) -> dict[str, tuple[float, int]]:
        """Per configuration, (sum, count) of the weighted scores of its finished runs that have one:
        summed by the database (a row a run was ~3,400 rows to each chunk of benchmarks/workers.py b)."""
        with self.cx.read() as c:
            return {config_id: (float(total), int(n)) for config_id, total, n in c.execute(
                "SELECT config_id, SUM(score), COUNT(*) FROM runs WHERE experiment_id = ? AND status IN ('completed','cached')"
                " AND score IS NOT NULL GROUP BY config_id", (experiment_id,))}

    def finished_scores(self, experiment_id: str) -> list[tuple[Any, ...]]:
        """(run_id, column, scorer_name, value, source, metadata JSON) of every score of every finished
        run, both sources: what calibrating judges against people's ratings needs."""
        with self.cx.read() as c:
            return c.execute(
                "SELECT s.run_id, s.scorer, s.scorer_name, s.value, s.source, s.metadata FROM scores s JOIN runs r ON r.id = s.run_id"
                " WHERE r.experiment_id = ? AND r.status IN ('completed', 'cached')", (experiment_id,)).fetchall()

    def _store_run_score(self, c: Any, run_id: str, weights: Mapping[str, float]) -> None:
        rows = c.execute("SELECT scorer, value FROM scores WHERE run_id = ?", (run_id,)).fetchall()
        c.execute("UPDATE runs SET score = ? WHERE id = ?", (weighted_score(rows, weights), run_id))

    # ------------------------------------------------------------------ people's ratings
    def human_scores(self, run_id: str) -> list[tuple[str, float, dict[str, Any]]]:
        """(column, value, metadata) of the run's human score rows, oldest write first (a rewrite
        moves a row to the end: the latest comment and author come last)."""
        with self.cx.read() as c:
            rows = c.execute("SELECT scorer, value, metadata FROM scores WHERE run_id = ? AND source = 'human' ORDER BY rowid",
                             (run_id,)).fetchall()
        return [(label, value, json.loads(meta) if meta else {}) for label, value, meta in rows]

    def rate_run(self, run_id: str, rows: Sequence[ScoreRow], created_at: str) -> None:
        """Write a run's rating rows (``source='human'``), replacing those of the same columns."""
        with self.cx.write() as c:
            c.executemany(_INSERT, [(run_id, label, value, _json(meta), name, _json(args), "human", created_at)
                                    for label, value, meta, name, args in rows])

    def unrate_run(self, run_id: str, labels: Sequence[str]) -> int:
        """Remove the run's human rows of these columns; returns how many there were."""
        with self.cx.write() as c:
            return sum(c.execute("DELETE FROM scores WHERE run_id = ? AND scorer = ? AND source = 'human'", (run_id, label)).rowcount
                       for label in labels)

    def refresh_human_columns(self, run_ids: Sequence[str], ratings: Sequence[str], columns: HumanColumns,
                              weights: Mapping[str, float], created_at: str) -> None:
        """For each run, in one transaction: read its ratings (the human rows of columns ``ratings``),
        write the columns ``columns(ratings given)`` returns (``None`` removes one), and its weighted
        score. One transaction a run, so two people rating at once never leave a stale column."""
        placeholders = marks(len(ratings))
        with self.cx.write() as c:
            for run_id in run_ids:
                given = dict(c.execute(f"SELECT scorer, value FROM scores WHERE run_id = ? AND source = 'human' AND scorer IN ({placeholders})",
                                       (run_id, *ratings)).fetchall())
                for column, (value, meta, args) in columns(given).items():
                    if value is None:
                        c.execute("DELETE FROM scores WHERE run_id = ? AND scorer = ? AND source = 'human'", (run_id, column))
                    else:
                        c.execute(_INSERT, (run_id, column, value, _json(meta), "human", _json(args), "human", created_at))
                self._store_run_score(c, run_id, weights)

    # ------------------------------------------------------------------ re-scoring
    def finished_runs_with_stages(self, experiment_id: str) -> list[dict[str, Any]]:
        """Every finished run with what re-scoring it needs: id, config_id, sample_id, repeat, output,
        ``stages`` as (name, kind, prompt_sent JSON, response) in stage order, and the configuration's
        ``varied`` values; ordered by configuration, sample, repeat."""
        with self.cx.read() as c:
            runs = [dict(zip(("id", "config_id", "sample_id", "repeat", "output"), r, strict=True)) for r in c.execute(
                "SELECT id, config_id, sample_id, repeat, output FROM runs WHERE experiment_id = ? AND status IN ('completed', 'cached')"
                " ORDER BY config_id, sample_index, repeat", (experiment_id,))]
            stages: dict[str, list[tuple[Any, ...]]] = {}
            for row in c.execute(
                "SELECT s.run_id, s.stage_name, s.kind, s.prompt_sent, s.response_raw FROM stage_results s JOIN runs r ON r.id = s.run_id"
                " WHERE r.experiment_id = ? AND r.status IN ('completed', 'cached') ORDER BY s.run_id, s.stage_index", (experiment_id,)):
                stages.setdefault(row[0], []).append(row[1:])
            varied = {cid: json.loads(v) for cid, v in c.execute(
                "SELECT id, varied FROM configurations WHERE experiment_id = ?", (experiment_id,))}
        for run in runs:
            run["stages"] = stages.get(run["id"], [])
            run["varied"] = varied.get(run["config_id"], {})
        return runs

    def replace_auto_scores(self, results: Sequence[tuple[str, Sequence[ScoreRow]]], weights: Mapping[str, float],
                            created_at: str, keep_only: Sequence[str] | None = None) -> int:
        """Write automatic score rows per run, and each run's weighted score, in one transaction;
        ``keep_only``: the run's other automatic columns are removed first. Returns the rows written."""
        written = 0
        with self.cx.write() as c:
            for run_id, rows in results:
                if keep_only is not None:
                    placeholders = marks(len(keep_only))
                    c.execute(f"DELETE FROM scores WHERE run_id = ? AND source = 'auto' AND scorer NOT IN ({placeholders})", (run_id, *keep_only))
                c.executemany(_INSERT, [(run_id, label, value, _json(meta) if meta else None, name, _json(args), "auto", created_at)
                                        for label, value, meta, name, args in rows])
                written += len(rows)
                self._store_run_score(c, run_id, weights)
        return written
