"""Sweeps: progress rows, the lease that lets one process sweep an experiment, steering requests.

Part of :class:`~promptlooper.store.Store`. Other processes steer a sweep by appending requests
(pause / resume / stop / redirect) to a queue in its row, which the engine takes and clears; the
lease is a row ``running`` or ``paused`` whose owner is alive (see :mod:`.liveness`).
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from ..errors import NotFoundError, SweepConflictError
from . import batchwriter
from .batchwriter import now_iso
from .db import Queries
from .liveness import WORKERS, owner_alive, sweep_owner_alive
from .records import dumps, new_id


class Sweeps(Queries):
    """Sweep rows: the lease, progress and the steering queue."""

    # ------------------------------------------------------------------ sweeps (progress, lease, steering)
    def begin_sweep(self, experiment_id: str, strategy: str, total: int, options: dict[str, Any], *, stale_after: float = 10.0) -> str:
        """Create a sweep row and take the experiment's lease, or raise SweepConflictError."""
        host = socket.gethostname()
        with self.cx.write() as c:
            take_experiment(c, experiment_id, stale_after)
            sid = new_id()
            ts = now_iso()
            c.execute(
                "INSERT INTO sweeps (id, experiment_id, strategy, status, total, options, owner_pid, owner_host, heartbeat, started_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (sid, experiment_id, strategy, "running", total, dumps(options), os.getpid(), host, time.time(), ts, ts),
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
            c.execute("UPDATE sweeps SET options = ?, updated_at = ? WHERE id = ?", (dumps(merged), now_iso(), sweep_id))

    def sweep(self, sweep_id: str) -> dict[str, Any]:
        rows = list(self.db.query("SELECT * FROM sweeps WHERE id = ?", [sweep_id]))
        if not rows:
            raise NotFoundError(f"no sweep {sweep_id}")
        return rows[0]

    def sweeps_of(self, experiment_id: str) -> list[dict[str, Any]]:
        """Every sweep of the experiment, oldest first."""
        return list(self.db.query("SELECT * FROM sweeps WHERE experiment_id = ? ORDER BY started_at", [experiment_id]))

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
        queue = request_queue(raw)
        queue.append(request)
        c.execute("UPDATE sweeps SET requested = ?, updated_at = ? WHERE id = ?", (dumps(queue), now_iso(), sweep_id))

    def take_steering(self, sweep_id: str) -> list[str]:
        """The pending steering requests of a sweep, in order, removed from the queue."""
        with self.cx.read() as c:
            raw = c.execute("SELECT requested FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        if not raw or not raw[0]:
            return []  # the common case: a read, no write lock taken
        with self.cx.write() as c:
            raw = c.execute("SELECT requested FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
            c.execute("UPDATE sweeps SET requested = NULL WHERE id = ?", (sweep_id,))
        return request_queue(raw[0] if raw else None)


def take_experiment(c: Any, experiment_id: str, stale_after: float) -> None:
    """Inside a write: SweepConflictError if a live process (or workers) sweeps the experiment; the
    sweeps whose owner is gone are marked interrupted, so a new one can begin."""
    host = socket.gethostname()
    for sid, pid, owner_host, beat in c.execute(
        "SELECT id, owner_pid, owner_host, heartbeat FROM sweeps WHERE experiment_id = ? AND status IN ('running', 'paused')",
        (experiment_id,),
    ).fetchall():
        if owner_alive(pid, owner_host, beat, host, stale_after):
            owner = "workers" if owner_host == WORKERS else f"pid {pid} on {owner_host}"
            raise SweepConflictError(f"experiment is already being swept by {owner} (sweep {sid[:8]}); "
                                     "pause or stop it first (`promptlooper stop EXPERIMENT`)")
        c.execute("UPDATE sweeps SET status = 'interrupted', finished_at = ?, stop_reason = 'owner process gone' WHERE id = ?",
                  (now_iso(), sid))


def steering_request(verb: str, reason: str = "", by: str = "") -> str:
    """A steering request as queued in a sweep's row: ``verb`` or ``verb:reason`` as older versions
    wrote it, and a JSON object when it names who asked (``by``), so the engine records them."""
    if by:
        return dumps({"verb": verb, "reason": reason, "by": by})
    return f"{verb}:{reason}" if reason else verb


def read_steering_request(request: str) -> tuple[str, str, str]:
    """``(verb, reason, by)`` of a queued request, of either form (``by`` is ``""`` when not named)."""
    if request.startswith("{"):
        try:
            data = json.loads(request)
            return str(data.get("verb", "")), str(data.get("reason") or ""), str(data.get("by") or "")
        except (ValueError, AttributeError):
            pass
    verb, _, reason = request.partition(":")
    return verb, reason, ""


def request_queue(raw: str | None) -> list[str]:
    """The steering requests queued in a sweep row's ``requested`` column, oldest first."""
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        return [raw]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]
