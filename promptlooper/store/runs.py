"""Runs: which are finished, their rows for the views, one run with its stages, told values.

Part of :class:`~promptlooper.store.Store`. Runs are written in batches by the engine (see
:meth:`~promptlooper.store.Store.write_batch`); this part reads them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..errors import NotFoundError
from .batchwriter import now_iso
from .db import Queries
from .scoping import config_scopes


class Runs(Queries):
    """Read models of runs (and the values an outside driver told about configurations)."""

    def finished_run_ids(self, experiment_id: str, config_ids: Sequence[str] | None = None) -> set[str]:
        """Runs that are done (completed or cached); failed runs are tried again on resume. Of the
        configurations ``config_ids`` only, if given (a worker's chunk)."""
        found: set[str] = set()
        with self.cx.read() as c:
            for where, params in config_scopes("config_id", config_ids):
                found.update(r[0] for r in c.execute(
                    f"SELECT id FROM runs WHERE experiment_id = ? AND status IN ('completed', 'cached'){where}",
                    (experiment_id, *params)))
        return found

    def unfinished_run_ids(self, experiment_id: str) -> set[str]:
        """Runs stored but not done (failed, or written by a sweep that died mid-write)."""
        with self.cx.read() as c:
            return {r[0] for r in c.execute(
                "SELECT id FROM runs WHERE experiment_id = ? AND status NOT IN ('completed', 'cached')", (experiment_id,)
            )}

    def runs(self, experiment_id: str, config_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM runs WHERE experiment_id = ?"
        args: list[Any] = [experiment_id]
        if config_id:
            sql += " AND config_id LIKE ?"
            args.append(config_id + "%")
        sql += " ORDER BY sample_index, repeat"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return list(self.db.query(sql, args))

    def run(self, run_ref: str) -> dict[str, Any]:
        rows = list(self.db.query("SELECT * FROM runs WHERE id LIKE ?", [run_ref + "%"]))
        if len(rows) != 1:
            raise NotFoundError(f"run {run_ref!r} {'is ambiguous' if rows else 'not found'}; give more of its id")
        run = rows[0]
        stages = list(self.db.query("SELECT * FROM stage_results WHERE run_id = ? ORDER BY stage_index", [run["id"]]))
        for s in stages:
            s["prompt_sent"] = json.loads(s["prompt_sent"]) if s["prompt_sent"] else None
            s["parameters"] = json.loads(s["parameters"]) if s["parameters"] else None
        run["stages"] = stages
        run["scores"] = [
            {**s, "metadata": json.loads(s["metadata"]) if s["metadata"] else None,
             "scorer_args": json.loads(s["scorer_args"]) if s["scorer_args"] else None}
            for s in self.db.query("SELECT * FROM scores WHERE run_id = ? ORDER BY scorer", [run["id"]])
        ]
        return run

    def run_rows(self, experiment_id: str) -> list[tuple[Any, ...]]:
        with self.cx.read() as c:
            return c.execute(
                "SELECT config_id, id, sample_id, status, tokens_in, tokens_out, cost, latency_ms FROM runs WHERE experiment_id = ?",
                (experiment_id,),
            ).fetchall()

    # Read models of the data views (promptlooper.runs_table, .matrix, .grouping, .comparing).
    RUN_TABLE_COLUMNS = ("run_id", "config_id", "sample_id", "sample_index", "repeat", "status", "error", "score",
                         "tokens_in", "tokens_out", "cost", "latency_ms", "duration_ms", "started_at", "completed_at",
                         "output")

    def run_table_rows(self, experiment_id: str) -> list[tuple[Any, ...]]:
        """Every run of the experiment (any status), as :attr:`RUN_TABLE_COLUMNS`, in sample order."""
        with self.cx.read() as c:
            return c.execute(
                "SELECT id, config_id, sample_id, sample_index, repeat, status, error, score, tokens_in, tokens_out, cost,"
                " latency_ms, duration_ms, started_at, completed_at, output FROM runs WHERE experiment_id = ?"
                " ORDER BY sample_index, config_id, repeat", (experiment_id,)).fetchall()

    def run_prompts(self, experiment_id: str, containing: str | None = None) -> list[tuple[str, str]]:
        """(run_id, the prompts its stages sent, as JSON text joined by newlines), for full-text search.

        ``containing``: only runs whose stored JSON contains this text, compared in lower case (the
        caller confirms on the decoded text: the JSON has keys and escapes of its own)."""
        sql = ("SELECT s.run_id, group_concat(s.prompt_sent, char(10)) FROM stage_results s"
               " JOIN runs r ON r.id = s.run_id WHERE r.experiment_id = ?")
        args: list[Any] = [experiment_id]
        if containing is not None:
            sql += " AND instr(lower(s.prompt_sent), ?) > 0"
            args.append(containing.lower())
        with self.cx.read() as c:
            return c.execute(sql + " GROUP BY s.run_id", args).fetchall()

    def forks(self, experiment_id: str) -> list[dict[str, Any]]:
        """The experiments forked from this one, oldest first, with their run counts."""
        return list(self.db.query(
            "SELECT e.id, p.name AS project, e.name, e.status, e.created_at,"
            " (SELECT COUNT(*) FROM runs r WHERE r.experiment_id = e.id) AS runs"
            " FROM experiments e JOIN projects p ON p.id = e.project_id WHERE e.parent_id = ? ORDER BY e.created_at",
            [experiment_id]))

    def run_counts(self, experiment_id: str) -> dict[str, int]:
        """How many runs of the experiment are in each status."""
        with self.cx.read() as c:
            return {status: int(n) for status, n in c.execute(
                "SELECT status, COUNT(*) FROM runs WHERE experiment_id = ? GROUP BY status", (experiment_id,))}

    def failed_runs(self, experiment_id: str) -> list[tuple[Any, ...]]:
        """(config_id, sample_id, error) of every failed run, for the leaderboard's failure column."""
        with self.cx.read() as c:
            return c.execute("SELECT config_id, sample_id, error FROM runs WHERE experiment_id = ? AND status = 'failed'",
                             (experiment_id,)).fetchall()

    def tell(self, experiment_id: str, config_id: str, value: float, source: str) -> None:
        with self.cx.write() as c:
            c.execute("INSERT INTO told_values (experiment_id, config_id, value, source, created_at) VALUES (?,?,?,?,?)",
                      (experiment_id, config_id, value, source, now_iso()))

    def told_values(self, experiment_id: str) -> dict[str, float]:
        """The latest told value of each configuration."""
        with self.cx.read() as c:
            return {cid: v for cid, v in c.execute(
                "SELECT config_id, value FROM told_values WHERE experiment_id = ? ORDER BY id", (experiment_id,))}
