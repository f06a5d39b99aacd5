"""A sweep's result batches, written in PostgreSQL's own SQL: one array-bound statement per table.

The rows are those :class:`~promptlooper.store.records.ResultBatch` builds for SQLite (same
columns, same order), and each statement means what its SQLite twin in
:func:`~promptlooper.store.batchwriter.write_rows` means: cache entries are kept if present,
a run is upserted (never deleted: its human ratings would cascade away), stage results and
automatic scores replace rows of the same key.

Each table's rows go in one ``INSERT … SELECT FROM unnest(%s::type[], …)``: the batch's columns
bound as arrays, so a batch of a few hundred runs is six statements, not a round trip or a bound
statement per row. (Measured on the 2-core machine, latency 100 ms, C = 64: pipelined
``executemany`` of one row per statement reached 0.81-0.83 of C/L where SQLite reached 0.87, the
writer thread's per-row work competing with the event loop for the GIL.)
"""

from __future__ import annotations

from collections.abc import Sequence
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


def _unnest(columns: Sequence[str], types: Sequence[str]) -> str:
    return f"SELECT * FROM unnest({', '.join(f'%s::{t}[]' for t in types)}) AS x({', '.join(columns)})"


def _updates(columns: Sequence[str]) -> str:
    return ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)


_CACHE = (f"INSERT INTO response_cache ({', '.join(_CACHE_COLUMNS)}, created_at) SELECT x.*, %s FROM ("
          f"{_unnest(_CACHE_COLUMNS, _CACHE_TYPES)}) x ON CONFLICT (key) DO NOTHING")
_RUNS = (f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) {_unnest(RUN_COLUMNS, _RUN_TYPES)}"
         f" ON CONFLICT (id) DO UPDATE SET {_updates(RUN_COLUMNS[1:])}")
_STAGES = (f"INSERT INTO stage_results ({', '.join(_STAGE_COLUMNS)}) {_unnest(_STAGE_COLUMNS, _STAGE_TYPES)}"
           f" ON CONFLICT (run_id, stage_index) DO UPDATE SET {_updates(_STAGE_COLUMNS[2:])}")
_SCORES = (f"INSERT INTO scores ({', '.join(_SCORE_COLUMNS)}, source, created_at) SELECT x.*, 'auto', %s FROM ("
           f"{_unnest(_SCORE_COLUMNS, _SCORE_TYPES)}) x ON CONFLICT (run_id, scorer) DO UPDATE SET"
           f" {_updates(_SCORE_COLUMNS[2:])}, source = EXCLUDED.source, created_at = EXCLUDED.created_at, rowid = DEFAULT")
# Rows in the batch's order (ordinality), so that ids, given in insertion order, follow it.
_EVENTS = ("INSERT INTO events (ts, experiment_id, type, payload) SELECT ts, experiment_id, type, payload FROM"
           " unnest(%s::text[], %s::text[], %s::text[], %s::text[]) WITH ORDINALITY AS x(ts, experiment_id, type, payload, n)"
           " ORDER BY n RETURNING id")


def _columns(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Row tuples as one list per column (what ``unnest`` takes)."""
    return [list(column) for column in zip(*rows, strict=True)]


def insert_events(conn: psycopg.Connection[Any], rows: Sequence[tuple[str | None, str | None, str, str]], ts: str) -> list[int]:
    """Insert (ts or None for ``ts``, experiment id, type, payload JSON) rows; returns their ids in order.

    Ids are consecutive in the batch's order: the rows are inserted in that order and every write
    transaction holds the store's write lock (see connection.py), so sorting the returned ids
    gives them row by row."""
    if not rows:
        return []
    columns = _columns([(row[0] or ts, *row[1:]) for row in rows])
    return sorted(int(r[0]) for r in conn.execute(_EVENTS, columns).fetchall())


def write_rows(conn: psycopg.Connection[Any], rows: Rows, sweep_update: dict[str, Any] | None) -> list[int]:
    """Write one batch inside the caller's transaction; returns the ids of its events."""
    cache_rows, replaced, runs, stages, scores, events = rows
    ts = now_iso()
    if cache_rows:
        conn.execute(_CACHE, [*_columns(cache_rows), ts][-1:] + _columns(cache_rows))
    if replaced:
        # A failed run that is retried replaces its earlier children.
        conn.execute("DELETE FROM stage_results WHERE run_id = ANY(%s)", (list(replaced),))
        conn.execute("DELETE FROM scores WHERE source = 'auto' AND run_id = ANY(%s)", (list(replaced),))
    if runs:
        # Key order, so that two batches touching the same rows lock them in one order.
        conn.execute(_RUNS, _columns(sorted(runs, key=lambda r: r[0])))
        if stages:
            conn.execute(_STAGES, _columns(sorted(stages, key=lambda r: (r[0], r[1]))))
        if scores:
            conn.execute(_SCORES, [ts, *_columns(sorted(scores, key=lambda r: (r[0], r[1])))])
    event_ids = insert_events(conn, events, ts)
    if sweep_update:
        batchwriter.update_sweep(Cursorish(conn), sweep_update)  # type: ignore[arg-type]
    return event_ids
