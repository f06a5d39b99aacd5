"""A sweep's result batches, written in PostgreSQL's own SQL: pipelined ``executemany`` upserts.

The rows are those :class:`~promptlooper.store.records.ResultBatch` builds for SQLite (same
columns, same order), and each statement means what its SQLite twin in
:func:`~promptlooper.store.batchwriter.write_rows` means: cache entries are kept if present,
a run is upserted (never deleted: its human ratings would cascade away), stage results and
automatic scores replace rows of the same key. psycopg sends an ``executemany`` as one pipeline
(one round trip per statement, not per row).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from .. import batchwriter
from ..batchwriter import RUN_COLUMNS, Rows, now_iso
from .connection import Cursorish

_CACHE = ("INSERT INTO response_cache (key, endpoint, model, request, response, tokens_in, tokens_out, latency_ms, created_at)"
          " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (key) DO NOTHING")
_RUNS = (f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({','.join(['%s'] * len(RUN_COLUMNS))})"
         " ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in RUN_COLUMNS[1:]))
_STAGE_COLUMNS = ("run_id", "stage_index", "stage_name", "kind", "prompt_sent", "response_raw", "model_used", "endpoint",
                  "parameters", "tokens_in", "tokens_out", "latency_ms", "cached", "cache_key")
_STAGES = (f"INSERT INTO stage_results ({', '.join(_STAGE_COLUMNS)}) VALUES ({','.join(['%s'] * len(_STAGE_COLUMNS))})"
           " ON CONFLICT (run_id, stage_index) DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in _STAGE_COLUMNS[2:]))
_SCORES = ("INSERT INTO scores (run_id, scorer, value, metadata, scorer_name, scorer_args, source, created_at)"
           " VALUES (%s,%s,%s,%s,%s,%s,'auto',%s) ON CONFLICT (run_id, scorer) DO UPDATE SET value = EXCLUDED.value,"
           " metadata = EXCLUDED.metadata, scorer_name = EXCLUDED.scorer_name, scorer_args = EXCLUDED.scorer_args,"
           " source = EXCLUDED.source, created_at = EXCLUDED.created_at, rowid = DEFAULT")
_EVENT = "INSERT INTO events (ts, experiment_id, type, payload) VALUES (%s,%s,%s,%s) RETURNING id"


def insert_events(conn: psycopg.Connection[Any], rows: Sequence[tuple[str | None, str | None, str, str]], ts: str) -> list[int]:
    """Insert (ts or None for ``ts``, experiment id, type, payload JSON) rows; returns their ids in order."""
    if not rows:
        return []
    with conn.cursor() as cur:
        cur.executemany(_EVENT, [(row[0] or ts, *row[1:]) for row in rows], returning=True)
        ids = []
        while True:
            ids.append(int(cur.fetchone()[0]))  # type: ignore[index]
            if not cur.nextset():
                return ids


def write_rows(conn: psycopg.Connection[Any], rows: Rows, sweep_update: dict[str, Any] | None) -> list[int]:
    """Write one batch inside the caller's transaction; returns the ids of its events."""
    cache_rows, replaced, runs, stages, scores, events = rows
    ts = now_iso()
    with conn.cursor() as cur:
        if cache_rows:
            cur.executemany(_CACHE, [(*row, ts) for row in cache_rows])
        if replaced:
            # A failed run that is retried replaces its earlier children.
            cur.execute("DELETE FROM stage_results WHERE run_id = ANY(%s)", (list(replaced),))
            cur.execute("DELETE FROM scores WHERE source = 'auto' AND run_id = ANY(%s)", (list(replaced),))
        if runs:
            # Key order, so that two batches touching the same rows lock them in one order.
            cur.executemany(_RUNS, sorted(runs, key=lambda r: r[0]))
            if stages:
                cur.executemany(_STAGES, sorted(stages, key=lambda r: (r[0], r[1])))
            if scores:
                cur.executemany(_SCORES, [(*row, ts) for row in sorted(scores, key=lambda r: (r[0], r[1]))])
    event_ids = insert_events(conn, events, ts)
    if sweep_update:
        batchwriter.update_sweep(Cursorish(conn), sweep_update)  # type: ignore[arg-type]
    return event_ids
