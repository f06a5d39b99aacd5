"""The store: the only code that touches SQLite, and the single source of truth.

Everything a sweep does lands here (runs, stage results, scores, cached responses, events,
progress), so a sweep survives a kernel restart or ``kill -9``: running it again skips every
finished run and serves every finished call from the cache. Other processes (the CLI, the MCP
server, a Voila dashboard) read the same file, and steer a sweep by writing requests into its
``sweeps`` row, which the engine polls.

Hot paths use plain sqlite3: cache look-ups, and result batches (multi-row statements in
``batchwriter.py``, which a sweep runs in a writer process); everything else goes through sqlite-utils.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import NotFoundError, StoreError, SweepConflictError
from ..hashing import json_encoder
from ..keys import redact
from . import batchwriter
from .batchwriter import Rows, now_iso
from .db import Connection, connect, default_path
from .housekeeping import Housekeeping
from .plain_db import PlainDatabase, schema_is_current


def new_id() -> str:
    return uuid.uuid4().hex


# json.dumps(value, ensure_ascii=False, default=str), built once: a sweep encodes ~8 values a run.
_dumps = json_encoder(ensure_ascii=False, default=str)


@dataclass(slots=True)
class StageRecord:
    stage_index: int
    stage_name: str
    kind: str
    prompt_sent: Any = None
    response_raw: str | None = None
    model_used: str | None = None
    endpoint: str | None = None
    parameters: dict[str, Any] | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float | None = None
    cached: bool = False
    cache_key: str | None = None
    # JSON of prompt_sent / parameters when the engine already has it (the cache key encodes both).
    prompt_json: str | None = None
    parameters_json: str | None = None


@dataclass(slots=True)
class RunRecord:
    id: str
    experiment_id: str
    config_id: str
    sample_id: str
    sample_index: int
    repeat: int
    sweep_id: str | None
    status: str  # completed | cached | failed
    started_at: str
    completed_at: str
    duration_ms: float
    latency_ms: float = 0.0  # time spent in model calls and functions, without queueing
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    score: float | None = None
    output: str | None = None
    error: str | None = None
    stages: list[StageRecord] = field(default_factory=list)
    scores: list[tuple[str, float, dict[str, Any] | None, str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class CacheEntry:
    key: str
    endpoint: str
    model: str
    request: dict[str, Any]
    response: str
    tokens_in: int
    tokens_out: int
    latency_ms: float


class ResultBatch:
    """The rows of one write transaction (see :meth:`Store.write_batch`), built as results arrive.

    A sweep adds each finished run here on its event loop, so the JSON encoding and tuple building
    (Python work, under the GIL whichever thread does it) happen in small steps between runs, and
    the writer thread only binds and steps a few multi-row statements.
    """

    __slots__ = ("cache", "run_ids", "replaced", "runs", "stages", "scores", "events")

    def __init__(self) -> None:
        self.cache: list[tuple[Any, ...]] = []
        self.run_ids: list[str] = []
        self.replaced: list[str] = []  # runs that may already have rows (a failed run tried again)
        self.runs: list[tuple[Any, ...]] = []
        self.stages: list[tuple[Any, ...]] = []
        self.scores: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []

    @property
    def empty(self) -> bool:
        return not (self.cache or self.run_ids or self.events)

    def rows(self) -> Rows:
        """What :func:`~promptlooper.store.batchwriter.write_rows` takes (and a writer process is sent)."""
        return self.cache, self.replaced, self.runs, self.stages, self.scores, self.events

    def add_cache(self, e: CacheEntry) -> None:
        self.cache.append((e.key, e.endpoint, e.model, _dumps(e.request), e.response, e.tokens_in, e.tokens_out, e.latency_ms))

    def add_run(self, r: RunRecord, replace: bool = True) -> None:
        """Add ``r`` with its stages and scores; ``replace=False`` when no row of it can exist yet
        (a run the sweep has never stored), which spares the writer two look-ups a run."""
        self.run_ids.append(r.id)
        if replace:
            self.replaced.append(r.id)
        self.runs.append((r.id, r.experiment_id, r.config_id, r.sample_id, r.sample_index, r.repeat, r.sweep_id, r.status, r.error,
                          r.started_at, r.completed_at, r.duration_ms, r.latency_ms, r.tokens_in, r.tokens_out, r.cost, r.score, r.output))
        for s in r.stages:
            # The engine hands over the JSON it already encoded for the cache key; others are encoded here.
            self.stages.append((r.id, s.stage_index, s.stage_name, s.kind, s.prompt_json or _dumps(s.prompt_sent), s.response_raw,
                                s.model_used, s.endpoint, s.parameters_json or _dumps(s.parameters), s.tokens_in, s.tokens_out,
                                s.latency_ms, int(s.cached), s.cache_key))
        for label, value, meta, name, args in r.scores:
            self.scores.append((r.id, label, value, _dumps(meta) if meta else None, name, args if type(args) is str else _dumps(args)))

    def add_event(self, ts: str | None, experiment_id: str | None, etype: str, payload: dict[str, Any]) -> None:
        self.events.append((ts, experiment_id, etype, _dumps(payload)))


class Store(Housekeeping):
    """One SQLite file. ``readonly=True`` opens it so that nothing can be written."""

    def __init__(self, path: str | Path | None = None, *, readonly: bool = False, create: bool = True):
        self.path = str(path or default_path())
        self.readonly = readonly
        if readonly and not Path(self.path).exists():
            raise NotFoundError(f"no PromptLooper database at {self.path}")
        if not create and self.path != ":memory:" and not Path(self.path).exists():
            # sqlite3.connect would create an empty file, and a typo in --db would look like "no experiments".
            raise NotFoundError(f"no PromptLooper database at {Path(self.path).resolve()}; run an experiment first "
                                "(promptlooper run FILE), or point --db / $PROMPTLOOPER_DB at an existing database")
        try:
            self.cx = Connection(connect(self.path, readonly=readonly), readonly=readonly)
            self.db = PlainDatabase(self.cx.conn)
            if not readonly and not schema_is_current(self.cx.conn):
                self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the database {self.path}: {exc}; check the path, that its folder "
                             "exists and is writable, and that it is a PromptLooper database "
                             "(--db FILE or $PROMPTLOOPER_DB)") from exc

    def _migrate(self) -> None:
        # Imported here: sqlite_utils imports pandas and numpy (store/plain_db.py), and only a new
        # or older database needs it.
        from sqlite_utils import Database

        from .schema import migrations

        with self.cx.write():  # two processes opening a new file at once must not both migrate
            migrations.apply(Database(self.cx.conn))

    def close(self) -> None:
        with self.cx.lock:  # not while another thread is inside a transaction or query on it
            self.cx.conn.close()

    # ------------------------------------------------------------------ projects & experiments
    def upsert_project(self, name: str, description: str = "") -> str:
        with self.cx.write() as c:
            row = c.execute("SELECT id FROM projects WHERE name = ?", (name,)).fetchone()
            if row:
                return str(row[0])
            pid = new_id()
            ts = now_iso()
            c.execute(
                "INSERT INTO projects (id, name, description, created_at, updated_at) VALUES (?,?,?,?,?)",
                (pid, name, description, ts, ts),
            )
            return pid

    def projects(self) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM projects ORDER BY name"))

    def upsert_experiment(self, project: str, name: str, spec: dict[str, Any], description: str = "", parent_id: str | None = None) -> str:
        pid = self.upsert_project(project)
        ts = now_iso()
        with self.cx.write() as c:
            row = c.execute("SELECT id FROM experiments WHERE project_id = ? AND name = ?", (pid, name)).fetchone()
            if row:
                c.execute(
                    "UPDATE experiments SET spec = ?, description = ?, updated_at = ? WHERE id = ?",
                    (_dumps(spec), description, ts, row[0]),
                )
                return str(row[0])
            eid = new_id()
            c.execute(
                "INSERT INTO experiments (id, project_id, name, description, spec, status, parent_id, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (eid, pid, name, description, _dumps(spec), "draft", parent_id, ts, ts),
            )
            return eid

    def experiment(self, ref: str) -> dict[str, Any]:
        """Find an experiment by id, ``project/name`` or (unique) name."""
        sql = (
            "SELECT e.*, p.name AS project FROM experiments e JOIN projects p ON p.id = e.project_id "
        )
        rows = list(self.db.query(sql + "WHERE e.id = ?", [ref]))
        if not rows and "/" in ref:
            project, _, name = ref.partition("/")
            rows = list(self.db.query(sql + "WHERE p.name = ? AND e.name = ?", [project, name]))
        if not rows:
            rows = list(self.db.query(sql + "WHERE e.name = ?", [ref]))
        if not rows:
            raise NotFoundError(f"no experiment {ref!r}; list them with `promptlooper experiments`")
        if len(rows) > 1:
            options = ", ".join(f"{r['project']}/{r['name']}" for r in rows)
            raise NotFoundError(f"experiment name {ref!r} is ambiguous: use one of {options}")
        row = rows[0]
        row["spec"] = json.loads(row["spec"])
        return row

    def experiments(self, project: str | None = None, include_archived: bool = False) -> list[dict[str, Any]]:
        """Experiments, archived ones (or those of an archived project) only with ``include_archived``."""
        sql = (
            "SELECT e.id, p.name AS project, e.name, e.status, e.parent_id, e.created_at, e.updated_at,"
            " COALESCE(e.archived_at, p.archived_at) AS archived_at,"
            " (SELECT COUNT(*) FROM runs r WHERE r.experiment_id = e.id) AS runs"
            " FROM experiments e JOIN projects p ON p.id = e.project_id WHERE 1"
        )
        if not include_archived:
            sql += " AND e.archived_at IS NULL AND p.archived_at IS NULL"
        if project:
            return list(self.db.query(sql + " AND p.name = ? ORDER BY e.created_at", [project]))
        return list(self.db.query(sql + " ORDER BY p.name, e.created_at"))

    def set_experiment_status(self, experiment_id: str, status: str) -> None:
        with self.cx.write() as c:
            c.execute("UPDATE experiments SET status = ?, updated_at = ? WHERE id = ?", (status, now_iso(), experiment_id))

    # ------------------------------------------------------------------ configurations
    def add_configurations(self, experiment_id: str, configs: Iterable[tuple[str, dict[str, Any], dict[str, Any]]]) -> None:
        ts = now_iso()
        rows = [(experiment_id, cid, _dumps(cfg), _dumps(varied), ts) for cid, cfg, varied in configs]
        with self.cx.write() as c:
            c.executemany(
                "INSERT OR IGNORE INTO configurations (experiment_id, id, config, varied, created_at) VALUES (?,?,?,?,?)",
                rows,
            )
            # Each configuration belongs to the definition it was planned under (the latest one):
            # a redirect's, a guided search's or an outside driver's configurations included.
            c.executemany(
                "INSERT OR IGNORE INTO definition_configurations (experiment_id, number, config_id)"
                " SELECT experiment_id, MAX(number), ? FROM definitions WHERE experiment_id = ? GROUP BY experiment_id",
                [(r[1], experiment_id) for r in rows],
            )

    def configurations(self, experiment_id: str) -> list[dict[str, Any]]:
        rows = list(self.db.query("SELECT * FROM configurations WHERE experiment_id = ? ORDER BY created_at, id", [experiment_id]))
        for r in rows:
            r["config"] = json.loads(r["config"])
            r["varied"] = json.loads(r["varied"])
        return rows

    def configuration(self, experiment_id: str, config_ref: str) -> dict[str, Any]:
        rows = list(self.db.query(
            "SELECT * FROM configurations WHERE experiment_id = ? AND id LIKE ?", [experiment_id, config_ref + "%"]
        ))
        if len(rows) != 1:
            raise NotFoundError(
                f"configuration {config_ref!r} {'is ambiguous' if rows else 'not found'} in this experiment; "
                "use an id prefix from the leaderboard"
            )
        r = rows[0]
        r["config"] = json.loads(r["config"])
        r["varied"] = json.loads(r["varied"])
        return r

    # ------------------------------------------------------------------ definitions
    def record_definition(self, experiment_id: str, definition_id: str, spec: dict[str, Any], sample_ids: Sequence[str]) -> int:
        """The number of the experiment's current definition: the latest if it has this id, else a new one."""
        with self.cx.write() as c:
            row = c.execute("SELECT number, id FROM definitions WHERE experiment_id = ? ORDER BY number DESC LIMIT 1",
                            (experiment_id,)).fetchone()
            if row and row[1] == definition_id:
                return int(row[0])
            number = (row[0] if row else 0) + 1
            c.execute("INSERT INTO definitions (experiment_id, number, id, spec, sample_ids, created_at) VALUES (?,?,?,?,?,?)",
                      (experiment_id, number, definition_id, _dumps(spec), _dumps(list(sample_ids)), now_iso()))
            return int(number)

    def definitions(self, experiment_id: str) -> list[dict[str, Any]]:
        """Every definition of the experiment, oldest first, with its sample and configuration counts."""
        rows = list(self.db.query(
            "SELECT d.number, d.id, d.spec, d.sample_ids, d.created_at,"
            " (SELECT COUNT(*) FROM definition_configurations x WHERE x.experiment_id = d.experiment_id AND x.number = d.number)"
            " AS configurations FROM definitions d WHERE d.experiment_id = ? ORDER BY d.number", [experiment_id]))
        for r in rows:
            r["spec"] = json.loads(r["spec"])
            r["samples"] = len(json.loads(r.pop("sample_ids")))
        return rows

    def definition(self, experiment_id: str, number: int | None = None) -> dict[str, Any] | None:
        """A definition (default: the current one) with its ``configurations`` and ``sample_ids`` as
        sets; None for an experiment that has no recorded definition (stored before they were kept)."""
        with self.cx.read() as c:
            sql = "SELECT number, id, spec, sample_ids, created_at FROM definitions WHERE experiment_id = ?"
            if number is None:
                row = c.execute(sql + " ORDER BY number DESC LIMIT 1", (experiment_id,)).fetchone()
            else:
                row = c.execute(sql + " AND number = ?", (experiment_id, number)).fetchone()
            if row is None:
                if number is not None:
                    raise NotFoundError(f"the experiment has no definition {number}; list them with `promptlooper definitions`")
                return None
            configs = {r[0] for r in c.execute(
                "SELECT config_id FROM definition_configurations WHERE experiment_id = ? AND number = ?", (experiment_id, row[0]))}
        return {"number": int(row[0]), "id": row[1], "spec": json.loads(row[2]), "sample_ids": set(json.loads(row[3])),
                "created_at": row[4], "configurations": configs}

    def decide_configuration(self, experiment_id: str, config_id: str, decision: str | None, by: str, reason: str) -> None:
        with self.cx.write() as c:
            cur = c.execute(
                "UPDATE configurations SET decision = ?, decided_by = ?, decision_reason = ?, decided_at = ?"
                " WHERE experiment_id = ? AND id = ?",
                (decision, by, reason, now_iso(), experiment_id, config_id),
            )
            if cur.rowcount == 0:
                raise NotFoundError(f"configuration {config_id} not found")

    # ------------------------------------------------------------------ runs
    def finished_run_ids(self, experiment_id: str) -> set[str]:
        """Runs that are done (completed or cached); failed runs are tried again on resume."""
        with self.cx.read() as c:
            return {r[0] for r in c.execute(
                "SELECT id FROM runs WHERE experiment_id = ? AND status IN ('completed', 'cached')", (experiment_id,)
            )}

    def scorer_sums(self, experiment_id: str) -> dict[str, dict[str, list[float]]]:
        """Per configuration and scorer, [sum, count] of the automatic scores of finished runs."""
        out: dict[str, dict[str, list[float]]] = {}
        with self.cx.read() as c:
            for config_id, scorer, total, n in c.execute(
                "SELECT r.config_id, s.scorer, SUM(s.value), COUNT(*) FROM scores s JOIN runs r ON r.id = s.run_id"
                " WHERE r.experiment_id = ? AND r.status IN ('completed', 'cached') AND s.source = 'auto'"
                " GROUP BY r.config_id, s.scorer", (experiment_id,)):
                out.setdefault(config_id, {})[scorer] = [float(total), float(n)]
        return out

    def unfinished_run_ids(self, experiment_id: str) -> set[str]:
        """Runs stored but not done (failed, or written by a sweep that died mid-write)."""
        with self.cx.read() as c:
            return {r[0] for r in c.execute(
                "SELECT id FROM runs WHERE experiment_id = ? AND status NOT IN ('completed', 'cached')", (experiment_id,)
            )}

    def write_results(
        self,
        runs: Sequence[RunRecord],
        cache: Sequence[CacheEntry] = (),
        events: Sequence[tuple[str, str | None, str, dict[str, Any]]] = (),
        sweep_update: dict[str, Any] | None = None,
    ) -> list[int]:
        """One transaction for a batch: cache entries first, then runs with their children."""
        batch = ResultBatch()
        for e in cache:
            batch.add_cache(e)
        for r in runs:
            batch.add_run(r)
        for ev in events:
            batch.add_event(*ev)
        return self.write_batch(batch, sweep_update)

    def use_bulk_cache(self, megabytes: int = 32) -> None:
        """A bigger page cache for a connection that writes a sweep's results.

        Runs, stage results and scores are keyed by hashes, so a batch's inserts land all over each
        index: past ~50,000 runs the default 2 MB cache misses most of those pages (measured at
        60,000 runs: 174 µs of writer CPU a run, 148 µs with 32 MB). Memory is only taken as used.
        """
        with self.cx.lock:
            self.cx.conn.execute(f"PRAGMA cache_size=-{int(megabytes) * 1024}")

    def defer_checkpoints(self) -> None:
        """No automatic WAL checkpoint inside this connection's commits.

        For the few writes a sweep makes beside its writer process, which checkpoints in the
        background: at the end of a large sweep, a one-row commit otherwise copied the whole WAL
        back into the database first (~80 ms, measured).
        """
        with self.cx.lock:
            self.cx.conn.execute("PRAGMA wal_autocheckpoint=0")

    def resume_checkpoints(self) -> None:
        """Automatic WAL checkpoints again (undoes :meth:`defer_checkpoints`): this connection now
        writes the sweep's batches itself, its writer process gone."""
        with self.cx.lock:
            self.cx.conn.execute("PRAGMA wal_autocheckpoint=1000")

    def write_batch(self, batch: ResultBatch, sweep_update: dict[str, Any] | None = None) -> list[int]:
        """Write ``batch`` (and the sweep's progress row) in one transaction; returns the event ids."""
        with self.cx.write() as c:
            return batchwriter.write_rows(c, batch.rows(), sweep_update)

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

    def score_rows(self, experiment_id: str) -> list[tuple[Any, ...]]:
        """(config_id, run_id, sample_id, scorer, value) of every finished run, for rankings."""
        with self.cx.read() as c:
            return c.execute(
                "SELECT r.config_id, r.id, r.sample_id, s.scorer, s.value FROM runs r JOIN scores s ON s.run_id = r.id"
                " WHERE r.experiment_id = ? AND r.status IN ('completed', 'cached')",
                (experiment_id,),
            ).fetchall()

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

    def run_score_values(self, experiment_id: str) -> list[tuple[Any, ...]]:
        """(run_id, scorer, value) of every score of every run of the experiment (missing scores: NULL)."""
        with self.cx.read() as c:
            return c.execute("SELECT s.run_id, s.scorer, s.value FROM scores s JOIN runs r ON r.id = s.run_id"
                             " WHERE r.experiment_id = ?", (experiment_id,)).fetchall()

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

    def invalidate_cache(self, *, run_id: str | None = None, experiment_id: str | None = None) -> int:
        """Delete the cached responses behind one run or a whole experiment; returns how many."""
        with self.cx.write() as c:
            if run_id:
                keys = [r[0] for r in c.execute("SELECT cache_key FROM stage_results WHERE run_id = ? AND cache_key IS NOT NULL", (run_id,))]
            elif experiment_id:
                keys = [r[0] for r in c.execute(
                    "SELECT DISTINCT s.cache_key FROM stage_results s JOIN runs r ON r.id = s.run_id"
                    " WHERE r.experiment_id = ? AND s.cache_key IS NOT NULL", (experiment_id,))]
            else:
                raise ValueError("give run_id or experiment_id")
            c.executemany("DELETE FROM response_cache WHERE key = ?", [(k,) for k in keys])
            # The runs stay (their results are history) but are no longer "finished": the next
            # sweep calls the model again for them.
            if run_id:
                c.execute("UPDATE runs SET status = 'invalidated' WHERE id = ?", (run_id,))
            else:
                c.execute("UPDATE runs SET status = 'invalidated' WHERE experiment_id = ? AND status IN ('completed','cached')", (experiment_id,))
            return len(keys)

    def tell(self, experiment_id: str, config_id: str, value: float, source: str) -> None:
        with self.cx.write() as c:
            c.execute("INSERT INTO told_values (experiment_id, config_id, value, source, created_at) VALUES (?,?,?,?,?)",
                      (experiment_id, config_id, value, source, now_iso()))

    def told_values(self, experiment_id: str) -> dict[str, float]:
        """The latest told value of each configuration."""
        with self.cx.read() as c:
            return {cid: v for cid, v in c.execute(
                "SELECT config_id, value FROM told_values WHERE experiment_id = ? ORDER BY id", (experiment_id,))}

    # ------------------------------------------------------------------ response cache
    def cache_get_many(self, keys: Sequence[str]) -> dict[str, tuple[str, int, int, float]]:
        out: dict[str, tuple[str, int, int, float]] = {}
        with self.cx.read() as c:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for key, resp, tin, tout, lat in c.execute(
                    f"SELECT key, response, tokens_in, tokens_out, latency_ms FROM response_cache WHERE key IN ({marks})", chunk
                ):
                    out[key] = (resp, tin or 0, tout or 0, lat or 0.0)
        return out

    def cache_entry(self, key: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM response_cache WHERE key = ?", [key]))
        if not rows:
            return None
        row = rows[0]
        row["request"] = json.loads(row["request"])
        return row

    # ------------------------------------------------------------------ events
    def _insert_events(self, c: Any, events: Sequence[tuple[str, str | None, str, dict[str, Any]]], ts: str) -> list[int]:
        return batchwriter.insert_events(c, [(ev_ts, eid, etype, _dumps(payload)) for ev_ts, eid, etype, payload in events], ts)

    def add_event(self, experiment_id: str | None, etype: str, payload: dict[str, Any] | None = None) -> int:
        with self.cx.write() as c:
            # Events outside a sweep carry free text (a reason, a context): no key value is stored.
            return self._insert_events(c, [(now_iso(), experiment_id, etype, redact(payload or {}))], now_iso())[0]

    def events(self, experiment_id: str | None = None, types: Sequence[str] | None = None, after_id: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM events WHERE id > ?"
        args: list[Any] = [after_id]
        if experiment_id:
            sql += " AND experiment_id = ?"
            args.append(experiment_id)
        if types:
            clauses = []
            for t in types:  # "run.*" selects a family
                if t.endswith("*"):
                    clauses.append("type LIKE ?")
                    args.append(t[:-1] + "%")
                else:
                    clauses.append("type = ?")
                    args.append(t)
            sql += " AND (" + " OR ".join(clauses) + ")"
        sql += " ORDER BY id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        rows = list(self.db.query(sql, args))
        for r in rows:
            r["payload"] = json.loads(r["payload"]) if r["payload"] else {}
        return rows

    # ------------------------------------------------------------------ endpoints & settings
    def save_endpoint(self, name: str, spec: dict[str, Any]) -> None:
        ts = now_iso()
        with self.cx.write() as c:
            c.execute(
                "INSERT INTO endpoints (name, base_url, api_key_env, max_concurrency, timeout, max_retries, prices, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET base_url=excluded.base_url, api_key_env=excluded.api_key_env,"
                " max_concurrency=excluded.max_concurrency, timeout=excluded.timeout, max_retries=excluded.max_retries,"
                " prices=excluded.prices, updated_at=excluded.updated_at",
                (name, spec["base_url"], spec.get("api_key_env"), spec.get("max_concurrency", 16), spec.get("timeout", 60.0),
                 spec.get("max_retries", 6), _dumps(spec.get("prices", {})), ts, ts),
            )

    def endpoints(self) -> dict[str, dict[str, Any]]:
        out = {}
        for r in self.db.query("SELECT * FROM endpoints ORDER BY name"):
            r["prices"] = json.loads(r["prices"] or "{}")
            out[r["name"]] = r
        return out

    def delete_endpoint(self, name: str) -> None:
        with self.cx.write() as c:
            if c.execute("DELETE FROM endpoints WHERE name = ?", (name,)).rowcount == 0:
                raise NotFoundError(f"no endpoint {name!r}")

    def get_setting(self, key: str, default: Any = None) -> Any:
        rows = list(self.db.query("SELECT value FROM settings WHERE key = ?", [key]))
        return json.loads(rows[0]["value"]) if rows else default

    def set_setting(self, key: str, value: Any) -> None:
        with self.cx.write() as c:
            c.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, _dumps(value)))

    # ------------------------------------------------------------------ sweeps (progress, lease, steering)
    def begin_sweep(self, experiment_id: str, strategy: str, total: int, options: dict[str, Any], *, stale_after: float = 10.0) -> str:
        """Create a sweep row and take the experiment's lease, or raise SweepConflictError."""
        host = socket.gethostname()
        with self.cx.write() as c:
            for sid, pid, owner_host, beat in c.execute(
                "SELECT id, owner_pid, owner_host, heartbeat FROM sweeps WHERE experiment_id = ? AND status IN ('running', 'paused')",
                (experiment_id,),
            ).fetchall():
                if _owner_alive(pid, owner_host, beat, host, stale_after):
                    raise SweepConflictError(
                        f"experiment is already being swept by pid {pid} on {owner_host} (sweep {sid[:8]}); "
                        "pause or stop it first (`promptlooper stop EXPERIMENT`)"
                    )
                c.execute(
                    "UPDATE sweeps SET status = 'interrupted', finished_at = ?, stop_reason = 'owner process gone' WHERE id = ?",
                    (now_iso(), sid),
                )
            sid = new_id()
            ts = now_iso()
            c.execute(
                "INSERT INTO sweeps (id, experiment_id, strategy, status, total, options, owner_pid, owner_host, heartbeat, started_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (sid, experiment_id, strategy, "running", total, _dumps(options), os.getpid(), host, time.time(), ts, ts),
            )
            c.execute("UPDATE experiments SET status = 'running', updated_at = ? WHERE id = ?", (ts, experiment_id))
        return sid

    def update_sweep(self, sweep_id: str, **fields: Any) -> None:
        with self.cx.write() as c:
            batchwriter.update_sweep(c, {"id": sweep_id, **fields})

    def merge_sweep_options(self, sweep_id: str, options: dict[str, Any]) -> None:
        with self.cx.write() as c:
            row = c.execute("SELECT options FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
            merged = {**json.loads(row[0] or "{}"), **options} if row else options
            c.execute("UPDATE sweeps SET options = ?, updated_at = ? WHERE id = ?", (_dumps(merged), now_iso(), sweep_id))

    def sweep(self, sweep_id: str) -> dict[str, Any]:
        rows = list(self.db.query("SELECT * FROM sweeps WHERE id = ?", [sweep_id]))
        if not rows:
            raise NotFoundError(f"no sweep {sweep_id}")
        return rows[0]

    def latest_sweep(self, experiment_id: str) -> dict[str, Any] | None:
        rows = list(self.db.query(
            "SELECT * FROM sweeps WHERE experiment_id = ? ORDER BY started_at DESC, rowid DESC LIMIT 1", [experiment_id]
        ))
        return rows[0] if rows else None

    def settle_sweep(self, sweep: dict[str, Any] | None) -> dict[str, Any] | None:
        """``sweep`` as it really is: a running or paused sweep whose process is gone reads
        ``interrupted`` (and is recorded so, unless this store is read-only), without waiting for a
        new sweep to take the lease."""
        if not sweep or sweep["status"] not in ("running", "paused") or sweep_owner_alive(sweep):
            return sweep
        settled = {**sweep, "status": "interrupted", "stop_reason": "owner process gone", "finished_at": sweep.get("finished_at") or now_iso()}
        if not self.readonly:
            with self.cx.write() as c:
                c.execute("UPDATE sweeps SET status = 'interrupted', stop_reason = 'owner process gone', finished_at = ?"
                          " WHERE id = ? AND status IN ('running', 'paused')", (settled["finished_at"], sweep["id"]))
                c.execute("UPDATE experiments SET status = 'interrupted', updated_at = ? WHERE id = ? AND status IN ('running', 'paused')",
                          (now_iso(), sweep["experiment_id"]))
        return settled

    def request_steering(self, experiment_id: str, request: str) -> dict[str, Any] | None:
        """Queue a steering request (pause / resume / stop / redirect) for the experiment's live sweep."""
        with self.cx.write() as c:
            row = c.execute(
                "SELECT id FROM sweeps WHERE experiment_id = ? AND status IN ('running', 'paused') ORDER BY started_at DESC LIMIT 1",
                (experiment_id,),
            ).fetchone()
            if not row:
                return None
            self._append_request(c, row[0], request)
        return self.sweep(row[0])

    def add_steering(self, sweep_id: str, request: str) -> None:
        with self.cx.write() as c:
            self._append_request(c, sweep_id, request)

    @staticmethod
    def _append_request(c: Any, sweep_id: str, request: str) -> None:
        # A queue, not a slot: a redirect followed at once by a resume must not lose the redirect.
        raw = c.execute("SELECT requested FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()[0]
        queue = _request_queue(raw)
        queue.append(request)
        c.execute("UPDATE sweeps SET requested = ?, updated_at = ? WHERE id = ?", (_dumps(queue), now_iso(), sweep_id))

    def take_steering(self, sweep_id: str) -> list[str]:
        """The pending steering requests of a sweep, in order, removed from the queue."""
        with self.cx.read() as c:
            raw = c.execute("SELECT requested FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        if not raw or not raw[0]:
            return []  # the common case: a read, no write lock taken
        with self.cx.write() as c:
            raw = c.execute("SELECT requested FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
            c.execute("UPDATE sweeps SET requested = NULL WHERE id = ?", (sweep_id,))
        return _request_queue(raw[0] if raw else None)


def _request_queue(raw: str | None) -> list[str]:
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        return [raw]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


READER_STALE_AFTER = 30.0  # seconds without a heartbeat after which a reader deems a sweep's process gone


def sweep_owner_alive(sweep: dict[str, Any], stale_after: float = READER_STALE_AFTER) -> bool:
    """Whether the process running ``sweep`` is still there, as a reader (any process) can tell.

    On the same host, another process is asked directly (``os.kill(pid, 0)``); this process, or a
    sweep on another host, by its heartbeat (written at least every 2 s, paused or not).
    """
    pid, host, beat = sweep.get("owner_pid"), sweep.get("owner_host"), sweep.get("heartbeat")
    if pid is not None and host == socket.gethostname() and pid != os.getpid():
        return _pid_alive(pid)
    return beat is not None and time.time() - float(beat) < stale_after


def _pid_alive(pid: int) -> bool:
    """Whether a process of this host is there (signal 0 only asks; another user's process counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_alive(pid: int | None, owner_host: str | None, beat: float | None, host: str, stale_after: float) -> bool:
    if pid is None:
        return False
    if owner_host == host:
        if pid == os.getpid():
            return False  # our own earlier sweep (its task is gone or being replaced)
        return _pid_alive(pid)
    return beat is not None and time.time() - beat < stale_after
