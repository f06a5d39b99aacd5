"""Writing a sweep's result batches: the SQL, and a child process that runs it on its own core.

A sweep's event loop and the SQLite work of storing its results both need a core. In one process
they share the GIL: a writer thread holds it to bind every statement and waits for it after every
step while the loop is busy, so neither ever ran at full speed (a fully cached sweep: ~5,000
runs/s with a writer thread, whatever the statement shapes). So a sweep hands its batches, as rows
already encoded on the loop, to :class:`WriterProcess`: a child Python that only unpickles and
writes, started from this file.

This module imports nothing but the standard library, on purpose: the child runs it as a script
(``python batchwriter.py DB``) and starts in ~50 ms, where importing the package takes ~1 s.

Crash safety: each batch is one ``BEGIN IMMEDIATE`` transaction in the child. If the parent dies
(``kill -9`` of a kernel), the child still reads every batch already in the pipe, commits the
complete ones, and exits at end of file; a batch cut off midway is never committed.
"""

from __future__ import annotations

import contextlib
import itertools
import operator
import os
import pickle
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, BinaryIO

BUSY_MS = 30_000
# Every writing connection of the package runs with these (see db.py for why).
WRITE_PRAGMAS = (f"PRAGMA busy_timeout={BUSY_MS}", "PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
                 "PRAGMA foreign_keys=ON")
CHECKPOINT_EVERY = 1.0  # seconds between the writer process's WAL checkpoints

_second: tuple[int, str] = (-1, "")  # (a UTC second, its "YYYY-MM-DDTHH:MM:SS." text), one tuple so threads see a pair


def now_iso() -> str:
    """``datetime.now(UTC).isoformat(timespec="milliseconds")``, four times faster.

    A sweep stamps every run and event (~5 times a run); formatting the date once a second
    saves ~2 µs a stamp.
    """
    global _second
    sec, rem = divmod(time.time_ns(), 1_000_000_000)
    cached_sec, prefix = _second
    if sec != cached_sec:
        prefix = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _second = (sec, prefix)
    return f"{prefix}{rem // 1_000_000:03d}+00:00"


# ---------------------------------------------------------------------- statements
# Multi-row INSERTs of at most _MAX_ROWS rows, in power-of-two shapes (see _row_chunks), so that
# every shape a connection uses stays prepared. Preparing grows much faster than the row count
# (measured, 18 columns: 0.4 ms for 16 rows, 3 ms for 64, 135 ms for 512, which then runs in
# 3 ms), while executing costs about the same per row from 16 rows up (~6 µs, executemany ~8 µs).
_MAX_ROWS = 32


def _row_chunks(n: int, max_rows: int) -> Iterator[tuple[int, int]]:
    """(start, size) slices covering n rows: max_rows at a time, then powers of two."""
    start = 0
    while n - start >= max_rows:
        yield start, max_rows
        start += max_rows
    size = max_rows >> 1
    while start < n:
        if n - start >= size:
            yield start, size
            start += size
        size >>= 1


@cache
def _rows_sql(head: str, width: int, rows: int, tail: str, suffix: str = "") -> str:
    """``head VALUES (?2,..,?w+1<tail>),(...) suffix``: ?1 is shared by every row (the batch's timestamp)."""
    groups = ("(" + ",".join(f"?{2 + r * width + j}" for j in range(width)) + tail + ")" for r in range(rows))
    return f"{head} VALUES {','.join(groups)}{suffix}"


@cache
def _in_sql(head: str, rows: int) -> str:
    return f"{head} ({','.join(f'?{2 + r}' for r in range(rows))})"


def _max_rows(c: sqlite3.Connection, width: int) -> int:
    limit = c.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # 999 on old builds, 32,766+ since 3.32
    rows = 1
    while rows * 2 <= min(_MAX_ROWS, (limit - 1) // width):
        rows *= 2
    return rows


RUN_COLUMNS = ("id", "experiment_id", "config_id", "sample_id", "sample_index", "repeat", "sweep_id", "status", "error",
               "started_at", "completed_at", "duration_ms", "latency_ms", "tokens_in", "tokens_out", "cost", "score", "output")
_RUN_UPSERT = " ON CONFLICT(id) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in RUN_COLUMNS[1:])
_first = operator.itemgetter(0)
_first_two = operator.itemgetter(0, 1)  # a child row's key: (run id, stage index or scorer)


def insert_rows(c: sqlite3.Connection, head: str, rows: Sequence[tuple[Any, ...]], ts: str, tail: str = "",
                suffix: str = "") -> None:
    if not rows:
        return
    width = len(rows[0])
    for start, size in _row_chunks(len(rows), _max_rows(c, width)):
        params: list[Any] = [ts]
        params.extend(itertools.chain.from_iterable(rows[start : start + size]))
        c.execute(_rows_sql(head, width, size, tail, suffix), params)


def _delete_in(c: sqlite3.Connection, head: str, ids: Sequence[str], ts: str) -> None:
    for start, size in _row_chunks(len(ids), _max_rows(c, 1)):
        c.execute(_in_sql(head, size), [ts, *ids[start : start + size]])  # ?1 (ts) is bound but unused


def insert_events(c: sqlite3.Connection, rows: Sequence[tuple[str | None, str | None, str, str]], ts: str) -> list[int]:
    """Insert (ts, or None for the batch's ``ts``; experiment id; type; payload JSON) rows; returns their ids."""
    if not rows:
        return []
    if not all(row[0] for row in rows):
        rows = [(row[0] or ts, *row[1:]) for row in rows]
    insert_rows(c, "INSERT INTO events (ts, experiment_id, type, payload)", rows, ts)
    # The ids are consecutive: AUTOINCREMENT takes max + 1 for each row, in order, and the
    # caller's write transaction (BEGIN IMMEDIATE) keeps every other writer out until it commits.
    last = int(c.execute("SELECT last_insert_rowid()").fetchone()[0])
    return list(range(last - len(rows) + 1, last + 1))


def update_sweep(c: sqlite3.Connection, update: dict[str, Any]) -> None:
    update = dict(update)
    sid = update.pop("id")
    update["updated_at"] = now_iso()
    update["heartbeat"] = time.time()
    cols = ", ".join(f"{k} = ?" for k in update)
    c.execute(f"UPDATE sweeps SET {cols} WHERE id = ?", (*update.values(), sid))


# What one batch carries, in this order (lists of rows as ResultBatch builds them).
Rows = tuple[list[tuple[Any, ...]], list[str], list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]],
             list[tuple[Any, ...]]]


def write_rows(c: sqlite3.Connection, rows: Rows, sweep_update: dict[str, Any] | None) -> list[int]:
    """Write one batch inside the caller's transaction; returns the ids of its events."""
    cache_rows, replaced, runs, stages, scores, events = rows
    ts = now_iso()
    insert_rows(c, "INSERT OR IGNORE INTO response_cache (key, endpoint, model, request, response, tokens_in, tokens_out,"
                   " latency_ms, created_at)", cache_rows, ts, ",?1")
    if replaced:
        # A failed run that is retried replaces its earlier children.
        _delete_in(c, "DELETE FROM stage_results WHERE run_id IN", replaced, ts)
        _delete_in(c, "DELETE FROM scores WHERE source = 'auto' AND run_id IN", replaced, ts)
    if runs:
        # Rows in key order: ids are hashes, so a batch lands all over each index; in order, each
        # insert's B-tree path is mostly the one before (~15% less time).
        # An upsert, not INSERT OR REPLACE: replacing would delete the row and, through
        # ON DELETE CASCADE, the human ratings of a run that is run again.
        insert_rows(c, f"INSERT INTO runs ({', '.join(RUN_COLUMNS)})", sorted(runs, key=_first), ts, suffix=_RUN_UPSERT)
        insert_rows(c, "INSERT OR REPLACE INTO stage_results (run_id, stage_index, stage_name, kind, prompt_sent, response_raw,"
                       " model_used, endpoint, parameters, tokens_in, tokens_out, latency_ms, cached, cache_key)",
                    sorted(stages, key=_first_two), ts)
        insert_rows(c, "INSERT OR REPLACE INTO scores (run_id, scorer, value, metadata, scorer_name, scorer_args, source,"
                       " created_at)", sorted(scores, key=_first_two), ts, ",'auto',?1")
    event_ids = insert_events(c, events, ts)
    if sweep_update:
        update_sweep(c, sweep_update)
    return event_ids


# ---------------------------------------------------------------------- the child process
class WriterError(Exception):
    """The writer process failed a batch, or is gone."""


def _send(stream: BinaryIO, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream: BinaryIO) -> Any:
    """The next message, or EOFError at end of stream (a message cut off midway counts as none)."""
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    (size,) = struct.unpack("<Q", head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


class WriterProcess:
    """The parent's end: :meth:`write` sends a batch and returns once the child committed it."""

    def __init__(self, path: str, *, cache_mb: int = 32):
        self.path = os.path.abspath(path)
        # -I: nothing from the user's environment (PYTHONPATH, site) changes what the child runs;
        # it needs the standard library only.
        self.proc = subprocess.Popen(
            [sys.executable, "-I", os.path.abspath(__file__), self.path, str(int(cache_mb))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            # Its own session: a Ctrl+C at the terminal interrupts the sweep, which then sends its
            # last batch; the writer must still be there to commit it.
            start_new_session=True,
        )

    def write(self, rows: Rows, sweep_update: dict[str, Any] | None) -> list[int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            _send(self.proc.stdin, (rows, sweep_update))
            status, value = _receive(self.proc.stdout)
        except (BrokenPipeError, EOFError) as exc:
            code = self.proc.poll()
            raise WriterError(f"the sweep's writer process exited (status {code}) before committing a batch") from exc
        if status != "ok":
            raise WriterError(value)
        return value  # type: ignore[no-any-return]

    def close(self) -> None:
        """End of input. Every batch sent is committed by now (each :meth:`write` waited for it), so
        the sweep returns at once; the child's last checkpoint runs on (beside the next sweep, if
        one starts: checkpoints and writers do not block each other in WAL mode), and
        :func:`wait_for_writers` (``Workbench.close``) waits for it."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        with _closing_lock:
            for path, procs in list(_closing.items()):  # reap the ones that are done
                procs[:] = [p for p in procs if p.poll() is None]
                if not procs:
                    del _closing[path]
            _closing.setdefault(self.path, []).append(self.proc)


# Writer processes told to finish, by database: their last checkpoint may still be running.
_closing: dict[str, list[subprocess.Popen[bytes]]] = {}
_closing_lock = threading.Lock()


def wait_for_writers(path: str, timeout: float = 120.0) -> None:
    """Wait until every writer process of ``path`` this process started has exited."""
    with _closing_lock:
        procs = _closing.pop(os.path.abspath(path), [])
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _checkpoint(c: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.OperationalError):  # busy: the next one will do
        c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def serve(path: str, cache_mb: int = 32, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
    """The child's loop: one transaction per message, an answer after each, until end of input."""
    inp = stdin or sys.stdin.buffer
    out: BinaryIO | None = stdout or sys.stdout.buffer
    c = sqlite3.connect(path, timeout=BUSY_MS / 1000, isolation_level=None)
    for pragma in WRITE_PRAGMAS:
        c.execute(pragma)
    # Runs, stage results and scores are keyed by hashes, so a batch touches pages all over each
    # index: a bigger page cache keeps them (memory is only taken as used).
    c.execute(f"PRAGMA cache_size=-{cache_mb * 1024}")
    # Checkpoints once a CHECKPOINT_EVERY, between two batches, instead of inside a commit whenever
    # the WAL passes 1,000 pages (a batch of 1,024 runs dirties ~4,000 pages: ids are hashes, so its
    # rows land all over each index; that checkpoint in every commit doubled the time a batch took).
    # Not from a thread beside the writes: a checkpoint that writes race past never completes, so
    # the WAL never starts over (measured: 1.7 GB after 100,000 runs).
    c.execute("PRAGMA wal_autocheckpoint=0")
    last_checkpoint = time.monotonic()
    try:
        while True:
            try:
                rows, sweep_update = _receive(inp)
            except EOFError:
                return
            try:
                c.execute("BEGIN IMMEDIATE")
                try:
                    event_ids = write_rows(c, rows, sweep_update)
                    c.execute("COMMIT")
                except BaseException:
                    c.execute("ROLLBACK")
                    raise
                answer: tuple[str, Any] = ("ok", event_ids)
            except Exception as exc:  # noqa: BLE001 - the parent raises it in the sweep
                answer = ("error", f"{type(exc).__name__}: {exc}")
            if out is not None:
                try:
                    _send(out, answer)
                except BrokenPipeError:
                    out = None  # the parent is gone (kill -9): still commit every batch it sent
            if time.monotonic() - last_checkpoint >= CHECKPOINT_EVERY:
                _checkpoint(c)  # after the answer: the sweep goes on while the WAL is copied back
                last_checkpoint = time.monotonic()
    finally:
        _checkpoint(c)  # what the sweep wrote since the last one
        c.close()


def _main() -> None:
    # The answers get a descriptor of their own and fd 1 points at /dev/null: nothing printed by
    # accident can corrupt them, and a parent gone (kill -9) cannot fail the flush at exit.
    answers = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 32, stdout=answers)


if __name__ == "__main__":
    _main()
