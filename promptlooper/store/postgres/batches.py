"""A sweep's result batches, written in PostgreSQL's own SQL: one statement per table, its rows as one JSON parameter.

The rows are those :class:`~promptlooper.store.records.ResultBatch` builds for SQLite (same
columns, same order), and each statement means what its SQLite twin in
:func:`~promptlooper.store.batchwriter.write_rows` means: cache entries are kept if present,
a run is upserted (never deleted: its human ratings would cascade away), stage results and
automatic scores replace rows of the same key.

Each table's rows go in one ``INSERT … SELECT … FROM jsonb_array_elements(%s::jsonb)``: the batch
as one JSON parameter (encoded by the C encoder) that the server expands and casts, so a batch of
a few hundred runs is six statements and the work of binding values is done by the server's
process, not under this process's GIL. ``jsonb``, not ``json``: a row's ``e->>i`` on ``json``
text parses the row again from its start for each column (18 columns of a run: the row parsed
~9 times over), on ``jsonb`` it is an index into the row parsed once; the server's time for the
runs and stage results of a batch fell by a third to a half (60-run batches, measured on the
2-core machine). Measured on the 2-core machine, a fully cached sweep of
2,000 runs: the writer thread's CPU 41 ms with JSON, 190 ms with the same statements bound as
arrays (``unnest``), more with ``executemany`` of one row per statement; the whole process's CPU
halved (0.18 s against 0.35 s).

A batch written by :meth:`~.connection.PgConnection.write_retried` records its id (and its
events' ids) in ``written_batches``, in its own transaction (:func:`write_once`): when a
connection is lost during ``COMMIT``, the retry reads whether that commit happened and, if so,
returns the ids it gave instead of writing the events (and a worker's progress deltas) again.
Runs, stage results, scores and cache entries are upserts and could be written twice; events
and deltas could not. The ids are kept an hour (``KEEP_BATCH_IDS``), far past any retry, and
pruned by the statement that records the next batch.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from .. import batchwriter
from ..batchwriter import RUN_COLUMNS, Rows, now_iso
from .connection import Cursorish

T, N, F = "text", "bigint", "float8"  # the column types of schema.py
_RUN_TYPES = (T, T, T, T, N, N, T, T, T, T, T, F, F, N, N, F, F, T)
_CACHE_COLUMNS = ("key", "endpoint", "model", "request", "response", "tokens_in", "tokens_out", "latency_ms")
_CACHE_TYPES = (T, T, T, T, T, N, N, F)
_STAGE_COLUMNS = ("run_id", "stage_index", "stage_name", "kind", "prompt_sent", "response_raw", "model_used", "endpoint",
                  "parameters", "tokens_in", "tokens_out", "latency_ms", "cached", "cache_key")
_STAGE_TYPES = (T, N, T, T, T, T, T, T, T, N, N, F, N, T)
_SCORE_COLUMNS = ("run_id", "scorer", "value", "metadata", "scorer_name", "scorer_args")
_SCORE_TYPES = (T, T, F, T, T, T)
_EVENT_COLUMNS = ("ts", "experiment_id", "type", "payload")


def _expand(columns: Sequence[str], types: Sequence[str]) -> str:
    fields = ", ".join(f"(e->>{i})::{t} AS {c}" for i, (c, t) in enumerate(zip(columns, types, strict=True)))
    return f"SELECT {fields} FROM jsonb_array_elements(%s::jsonb) AS e"


def _updates(columns: Sequence[str]) -> str:
    return ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)


_CACHE = (f"INSERT INTO response_cache ({', '.join(_CACHE_COLUMNS)}, created_at) SELECT x.*, %s FROM ("
          f"{_expand(_CACHE_COLUMNS, _CACHE_TYPES)}) x ON CONFLICT (key) DO NOTHING")
_RUNS = (f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) {_expand(RUN_COLUMNS, _RUN_TYPES)}"
         f" ON CONFLICT (id) DO UPDATE SET {_updates(RUN_COLUMNS[1:])}")
_STAGES = (f"INSERT INTO stage_results ({', '.join(_STAGE_COLUMNS)}) {_expand(_STAGE_COLUMNS, _STAGE_TYPES)}"
           f" ON CONFLICT (run_id, stage_index) DO UPDATE SET {_updates(_STAGE_COLUMNS[2:])}")
_SCORES = (f"INSERT INTO scores ({', '.join(_SCORE_COLUMNS)}, source, created_at) SELECT x.*, 'auto', %s FROM ("
           f"{_expand(_SCORE_COLUMNS, _SCORE_TYPES)}) x ON CONFLICT (run_id, scorer) DO UPDATE SET"
           f" {_updates(_SCORE_COLUMNS[2:])}, source = EXCLUDED.source, created_at = EXCLUDED.created_at, rowid = DEFAULT")
# Rows in the batch's order (ordinality), so that ids, given in insertion order, follow it.
_EVENTS = ("INSERT INTO events (ts, experiment_id, type, payload) SELECT e->>0, e->>1, e->>2, e->>3 FROM"
           " jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS x(e, n) ORDER BY n RETURNING id")


def _as_json(rows: Sequence[Sequence[Any]]) -> list[str]:
    """Row tuples as one JSON array of arrays: the one parameter the server expands."""
    try:
        return [json.dumps(rows, ensure_ascii=False, allow_nan=False)]
    except ValueError:  # a NaN or infinity, which JSON cannot carry: stored as SQLite stores them
        return [json.dumps([[_finite(v) for v in row] for row in rows], ensure_ascii=False, allow_nan=False)]


def _finite(value: Any) -> Any:
    """NaN as NULL (SQLite stores it so), ±infinity as text that ``::float8`` reads back."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def _by_key(rows: Sequence[tuple[Any, ...]], width: int) -> list[tuple[Any, ...]]:
    """One row per key (its first ``width`` columns), the last one given winning as in SQLite's
    row-by-row writes (an upsert may not touch a row twice in one statement), in key order (two
    batches touching the same rows lock them in one order)."""
    last = {row[:width]: row for row in rows}
    return [last[k] for k in sorted(last)]


def insert_events(conn: psycopg.Connection[Any], rows: Sequence[tuple[str | None, str | None, str, str]], ts: str) -> list[int]:
    """Insert (ts or None for ``ts``, experiment id, type, payload JSON) rows; returns their ids in order.

    Ids are consecutive in the batch's order: the rows are inserted in that order and every write
    transaction holds the store's write lock (see connection.py), so sorting the returned ids
    gives them row by row."""
    if not rows:
        return []
    columns = _as_json([(row[0] or ts, *row[1:]) for row in rows])
    return sorted(int(r[0]) for r in conn.execute(_EVENTS, columns).fetchall())


KEEP_BATCH_IDS = 3600.0
_WRITTEN = "SELECT event_ids FROM written_batches WHERE id = %s"
# One round trip: the old ids pruned and this batch's recorded (the write lock orders the batches).
_RECORD = ("WITH old AS (DELETE FROM written_batches WHERE at < %s)"
           " INSERT INTO written_batches (id, event_ids, at) VALUES (%s, %s, %s)")


def write_once(conn: psycopg.Connection[Any], batch_id: str, first: bool, write: Callable[[], list[int]],
               fence: Callable[[], None] | None = None) -> list[int]:
    """``write()`` (the batch's statements; returns its event ids) unless an earlier attempt of
    ``batch_id`` committed already, inside the caller's transaction; returns the event ids.

    ``first``: no earlier attempt can have committed, so nothing is looked up. ``fence``: the
    statements whose answers decide whether the batch is written at all (a worker's lease), run
    before it. The batch's statements and its record are pipelined: sent together and read back
    at two syncs (the events' ids, then the rest), instead of a round trip each, so the write lock
    every batch holds is held for about three round trips rather than a dozen."""
    if not first:
        row = conn.execute(_WRITTEN, (batch_id,)).fetchone()
        if row is not None:  # its COMMIT went through, its answer was lost
            return [int(i) for i in json.loads(row[0])]
    if fence is not None:
        fence()
    with conn.pipeline():
        event_ids = write()
        now = time.time()
        conn.execute(_RECORD, (now - KEEP_BATCH_IDS, batch_id, json.dumps(event_ids), now))
    return event_ids


def write_rows(conn: psycopg.Connection[Any], rows: Rows, sweep_update: dict[str, Any] | None) -> list[int]:
    """Write one batch inside the caller's transaction; returns the ids of its events."""
    cache_rows, replaced, runs, stages, scores, events = rows
    ts = now_iso()
    if cache_rows:
        conn.execute(_CACHE, [ts, *_as_json(cache_rows)])
    if replaced:
        # A failed run that is retried replaces its earlier children.
        conn.execute("DELETE FROM stage_results WHERE run_id = ANY(%s)", (list(replaced),))
        conn.execute("DELETE FROM scores WHERE source = 'auto' AND run_id = ANY(%s)", (list(replaced),))
    if runs:
        conn.execute(_RUNS, _as_json(_by_key(runs, 1)))
        if stages:
            conn.execute(_STAGES, _as_json(_by_key(stages, 2)))
        if scores:
            conn.execute(_SCORES, [ts, *_as_json(_by_key(scores, 2))])
    event_ids = insert_events(conn, events, ts)
    if sweep_update:
        batchwriter.update_sweep(Cursorish(conn), sweep_update)  # type: ignore[arg-type]
    return event_ids
