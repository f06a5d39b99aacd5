"""Leased chunks: one sweep shared by any number of worker processes through the store.

Part of :class:`~promptlooper.store.Store` (and of the PostgreSQL store, which claims with
``FOR UPDATE SKIP LOCKED``). The shape is Optuna's: the database is the only state.

A sweep that *needs workers* is queued (:meth:`Chunks.queue_sweep`): its ``sweeps`` row is owned
by no process (``owner_host`` is :data:`WORKERS`), and its plan is cut into ``sweep_chunks`` rows,
each a range ``[lo, hi)`` of the plan's configuration indexes (all samples and repeats of those
configurations), or, for a configuration bigger than a chunk, a range of its samples (all repeats
of those samples: a one-configuration sweep is shared by workers too). A worker claims a chunk
(state ``leased``, ``generation`` + 1, ``lease_until`` by the database's clock), runs it through
the ordinary engine, and keeps the lease alive with every batch it commits (at least every 2 s,
the sweep's heartbeat). A lease that runs out (a worker killed, a host gone, a
network cut) is claimed again by any worker, which skips the runs already recorded.

Fencing: every batch a worker writes carries its chunk's (index, generation); the batch's
transaction renews the lease only if the generation is still the worker's, and otherwise raises
:class:`LeaseLostError`, which rolls the whole batch back. So a worker whose lease was taken
cannot commit anything more for that chunk (its runs are the new owner's to record), and two
owners never both record a run. Progress is summed, not overwritten: each batch adds its runs,
tokens and cost to the sweep's row (``done = done + ?``) in the same transaction, so every reader
sees the whole sweep, and workers read the shared spend back to hold the budget together.

Redirects: the chunks carry the ``plan`` they belong to; :meth:`Chunks.replan_shared_sweep`
replaces the chunks not started by the new plan's (see :mod:`promptlooper.workers.replanning`).

Steering: workers do not take the sweep's request queue (several must see each request), they
read it as a log (:meth:`Chunks.steering_log`) and apply each entry once, in order; a worker that
joins later replays it from the start and reaches the same state.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import PromptLooperError
from ..keys import redact
from .batchwriter import now_iso
from .db import Queries
from .in_lists import marks
from .liveness import WORKERS
from .records import ResultBatch, dumps, new_id
from .sweeps import request_queue, take_experiment

# Leases run on the database's clock, never a worker's: workers on several hosts compare one
# clock, so a host whose clock runs ahead neither takes a live lease (to it, every lease has run
# out) nor, dead, keeps its own for as long as it is ahead; one that runs behind does not write
# leases that have run out already. The time in Unix seconds, as SQL: SQLite's (the machine's, read
# by the library, not by Python; one machine) here, PostgreSQL's clock_timestamp() in its store.
SQLITE_CLOCK = "((julianday('now') - 2440587.5) * 86400.0)"

# Spend and progress a batch adds to its sweep's row (sweep_update["add"]).
ADDED = ("done", "cached", "failed", "tokens_in", "tokens_out", "cost")


class LeaseLostError(PromptLooperError):
    """A worker's chunk was claimed by another worker (its lease ran out): its batch is refused."""


@dataclass(frozen=True)
class Claim:
    """A chunk a worker holds: runs of configurations ``lo`` to ``hi - 1`` of the sweep's plan."""

    sweep_id: str
    experiment_id: str
    index: int
    lo: int
    hi: int
    generation: int
    options: dict[str, Any]
    plan: int = 0  # which plan of the sweep lo / hi index: 0 as queued, n after its n-th redirect
    samples: tuple[int, int] | None = None  # a part of configuration lo: its samples [first, last + 1)
    config_id: str | None = None  # a guided search's chunk: this configuration, samples of the search's order


def chunk_ranges(configurations: int, runs_per_configuration: int, runs_per_chunk: int, *,
                 samples: int | None = None) -> list[tuple[int, ...]]:
    """Configuration index ranges ``(lo, hi)`` of about ``runs_per_chunk`` runs each. Given the
    number of ``samples``, a configuration of more runs than a chunk is cut into ranges of its
    samples instead, ``(lo, lo + 1, first, last + 1, runs)`` (a sample keeps all its repeats);
    otherwise a chunk is at least one configuration."""
    if samples and runs_per_configuration > runs_per_chunk:
        repeat = max(1, runs_per_configuration // samples)
        step = max(1, runs_per_chunk // repeat)
        return [(i, i + 1, s, min(s + step, samples), (min(s + step, samples) - s) * repeat)
                for i in range(configurations) for s in range(0, samples, step)]
    per = max(1, math.ceil(runs_per_chunk / max(1, runs_per_configuration)))
    return [(lo, min(lo + per, configurations)) for lo in range(0, configurations, per)]


def _chunk_rows(sweep_id: str, first: int, ranges: list[tuple[int, ...]], runs_per_configuration: int,
                plan: int) -> list[tuple[Any, ...]]:
    """``sweep_chunks`` rows of ``ranges`` (:func:`chunk_ranges`' two forms), numbered from ``first``."""
    rows = []
    for i, r in enumerate(ranges):
        lo, hi = r[0], r[1]
        part = (r[2], r[3], r[4]) if len(r) == 5 else (None, None, (hi - lo) * runs_per_configuration)
        rows.append((sweep_id, first + i, lo, hi, part[2], plan, part[0], part[1]))
    return rows


_INSERT_CHUNKS = "INSERT INTO sweep_chunks (sweep_id, idx, lo, hi, runs, plan, samples_lo, samples_hi) VALUES (?,?,?,?,?,?,?,?)"


def fenced_update(c: Any, update: dict[str, Any], clock: str = SQLITE_CLOCK) -> None:
    """Inside a batch's transaction: renew the writer's lease if it still holds it (else raise
    LeaseLostError, rolling the batch back), and add the batch's progress to the sweep's row.
    ``clock``: the database's time, in SQL (the lease runs by it, see :data:`SQLITE_CLOCK`)."""
    sweep_id = update["id"]
    index, generation, lease = update["fence"]
    now = time.time()  # the sweep row's heartbeat, which readers compare with their own clocks
    if c.execute(f"UPDATE sweep_chunks SET lease_until = {clock} + ? WHERE sweep_id = ? AND idx = ? AND generation = ? AND state = 'leased'",
                 (lease, sweep_id, index, generation)).rowcount != 1:
        raise LeaseLostError(f"chunk {index} of sweep {sweep_id[:8]} was claimed by another worker")
    add = update.get("add") or {}
    sets = ", ".join(f"{k} = {k} + ?" for k in ADDED)
    # The total grows with done when runs land beyond it: a redirect's recount leaves out the runs
    # of dropped configurations whose calls were already out (they still land, as in one process).
    c.execute(f"UPDATE sweeps SET {sets}, total = CASE WHEN done + ? > total THEN done + ? ELSE total END,"
              " heartbeat = ?, updated_at = ? WHERE id = ?",
              (*(add.get(k, 0) for k in ADDED), add.get("done", 0), add.get("done", 0), now, now_iso(), sweep_id))
    # The mean of a configuration all of whose runs the chunk saw is final (a part of one is ranked
    # by the store when its last part is done: Chunks.finish_chunk).
    if update.get("best"):
        config_id, score = update["best"]
        c.execute("UPDATE sweeps SET best_config_id = ?, best_score = ? WHERE id = ? AND (best_score IS NULL OR best_score < ?)",
                  (config_id, score, sweep_id, score))


@dataclass(frozen=True)
class ConfigurationPart:
    """What finishing a chunk that holds a part of a configuration needs to rank the whole of it
    when it is the last part done (no worker saw all its runs: the store has them)."""

    config_id: str
    expected: int  # the configuration's runs: samples × repeat, as a one-process sweep counts them
    announced: dict[str, Any]  # new_best_found's fields from the plan: varied, configuration


class Chunks(Queries):
    """Queued sweeps, their leased chunks, and the log of steering requests workers follow."""

    def queue_sweep(self, experiment_id: str, strategy: str, total: int, done: int, options: dict[str, Any],
                    ranges: list[tuple[int, ...]], runs_per_configuration: int) -> str:
        """Create a sweep for workers to share, cut into ``ranges``; SweepConflictError if the
        experiment is being swept already (by a process or by workers)."""
        with self.cx.write() as c:
            take_experiment(c, experiment_id, stale_after=10.0)
            sid = new_id()
            ts = now_iso()
            c.execute(
                "INSERT INTO sweeps (id, experiment_id, strategy, status, total, done, options, owner_host, heartbeat, started_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (sid, experiment_id, strategy, "running", total, done, dumps(options), WORKERS, time.time(), ts, ts),
            )
            c.executemany(_INSERT_CHUNKS, _chunk_rows(sid, 0, ranges, runs_per_configuration, 0))
            c.execute("UPDATE experiments SET status = 'running', updated_at = ? WHERE id = ?", (ts, experiment_id))
        return sid

    # The claim's candidates: chunks of running sweeps, never claimed or whose lease ran out, of
    # the sweep's latest plan. A queued chunk always is (a redirect replaces the others, and one
    # given back later is replaced then), so only a lease that ran out asks for the plan, and the
    # look-ups stay among the few chunks held. ``{now}``: the database's clock.
    CANDIDATES = ("SELECT c.sweep_id, c.idx, c.plan FROM sweep_chunks c JOIN sweeps s ON s.id = c.sweep_id"
                  " WHERE s.status = 'running' AND (c.state = 'queued' OR (c.state = 'leased' AND c.lease_until < {now}"
                  " AND c.plan = (SELECT MAX(p.plan) FROM sweep_chunks p WHERE p.sweep_id = c.sweep_id)))")
    # A redirected sweep's new plan waits while a chunk of an earlier plan is held: those stop at
    # their next call, and until their last calls land and are recorded, no run is made by both.
    # Checked for the chosen candidate only (once per sweep, not per chunk). Parameters: sweep, plan.
    EARLIER_HELD = ("SELECT 1 FROM sweep_chunks WHERE state = 'leased' AND sweep_id = ? AND plan < ?"
                    " AND lease_until >= {now} LIMIT 1")
    CLOCK = SQLITE_CLOCK  # the database's time in SQL (PostgreSQL's store has its own)

    def claim_chunk(self, worker: str, lease: float, *, exclude: tuple[str, ...] = ()) -> Claim | None:
        """Lease the next chunk of any queued sweep to ``worker`` for ``lease`` seconds, or None.
        SQLite: the write transaction (``BEGIN IMMEDIATE``) makes two claims queue, one wins."""
        with self.cx.write() as c:
            while True:
                skip = f" AND c.sweep_id NOT IN ({marks(len(exclude))})" if exclude else ""
                row = c.execute(self.CANDIDATES.format(now=self.CLOCK) + skip + " ORDER BY s.started_at, c.idx LIMIT 1",
                                exclude).fetchone()
                if row is None:
                    return None
                if c.execute(self.EARLIER_HELD.format(now=self.CLOCK), (row[0], row[2])).fetchone() is not None:
                    exclude = (*exclude, row[0])  # its new plan waits: look at the other sweeps
                    continue
                c.execute(f"UPDATE sweep_chunks SET state = 'leased', owner = ?, generation = generation + 1, lease_until = {self.CLOCK} + ?"
                          " WHERE sweep_id = ? AND idx = ?", (worker, lease, row[0], row[1]))
                return self._lease_chunk(c, row[0], row[1])

    @staticmethod
    def _lease_chunk(c: Any, sweep_id: str, index: int) -> Claim:
        lo, hi, generation, experiment_id, options, plan, first, last, config_id = c.execute(
            "SELECT c.lo, c.hi, c.generation, s.experiment_id, s.options, c.plan, c.samples_lo, c.samples_hi, c.config_id"
            " FROM sweep_chunks c JOIN sweeps s ON s.id = c.sweep_id WHERE c.sweep_id = ? AND c.idx = ?", (sweep_id, index)).fetchone()
        return Claim(sweep_id, experiment_id, int(index), int(lo), int(hi), int(generation), json.loads(options or "{}"), int(plan),
                     None if first is None else (int(first), int(last)), config_id)

    def release_chunk(self, sweep_id: str, index: int, generation: int) -> bool:
        """Give a chunk back unfinished (a worker told to exit): queued again at once, for anyone
        (replaced, if a redirect gave the sweep a new plan meanwhile)."""
        with self.cx.write() as c:
            return c.execute("UPDATE sweep_chunks SET owner = NULL, lease_until = NULL, state = CASE WHEN plan <"
                             " (SELECT MAX(p.plan) FROM sweep_chunks p WHERE p.sweep_id = ?) THEN 'replaced' ELSE 'queued' END"
                             " WHERE sweep_id = ? AND idx = ? AND generation = ? AND state = 'leased'",
                             (sweep_id, sweep_id, index, generation)).rowcount == 1

    def finish_chunk(self, sweep_id: str, index: int, generation: int, *, replaced: bool = False,
                     part: ConfigurationPart | None = None) -> str | None:
        """Mark a chunk done (all its runs recorded) if the caller still holds it; when it was the
        last one, the sweep is completed in the same transaction. Returns the sweep's status then,
        or None if the lease had been lost. ``replaced``: a chunk of an earlier plan that stopped
        for a redirect (its remaining runs are the new plan's to make). ``part``: the chunk held a
        part of a configuration, ranked (and announced, if it became the best) when it was the
        last part done.

        What the end announces (``new_best_found``, ``experiment.completed``) is written in the
        same transaction: whoever reads the sweep completed (a handle's ``wait()``, the CLI, a
        dashboard) finds its announcements too."""
        with self.cx.write() as c:
            if c.execute("UPDATE sweep_chunks SET state = ?, lease_until = NULL"
                         " WHERE sweep_id = ? AND idx = ? AND generation = ? AND state = 'leased'",
                         ("replaced" if replaced else "done", sweep_id, index, generation)).rowcount != 1:
                return None
            status, experiment_id, options = c.execute("SELECT status, experiment_id, options FROM sweeps WHERE id = ?",
                                                       (sweep_id,)).fetchone()
            announced: list[tuple[str, dict[str, Any]]] = []
            if part is not None and not replaced:
                best = self._settle_configuration(c, sweep_id, index, experiment_id, part)
                if best is not None:
                    announced.append(("new_best_found", best))
            left = c.execute("SELECT COUNT(*) FROM sweep_chunks WHERE sweep_id = ? AND state IN ('queued', 'leased')"
                             " AND plan = (SELECT MAX(plan) FROM sweep_chunks WHERE sweep_id = ?)", (sweep_id, sweep_id)).fetchone()[0]
            guided = bool(json.loads(options or "{}").get("guided"))  # its search says when it is done
            if left == 0 and status in ("running", "paused") and not guided:
                status = "completed"
                self._end(c, sweep_id, experiment_id, status, None)
                announced.append(("experiment.completed", self._completed(c, sweep_id)))
            self._announce(c, experiment_id, announced)
            return str(status)

    @staticmethod
    def _completed(c: Any, sweep_id: str) -> dict[str, Any]:
        """experiment.completed of a workers' sweep: its totals, as the row has them."""
        done, total, failed, cached, tokens_in, tokens_out, cost = c.execute(
            "SELECT done, total, failed, cached, tokens_in, tokens_out, cost FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        return {"sweep_id": sweep_id, "done": done, "total": total, "failed": failed, "cached": cached,
                "tokens": int(tokens_in or 0) + int(tokens_out or 0), "cost": round(float(cost or 0.0), 6), "workers": True}

    @staticmethod
    def _settle_configuration(c: Any, sweep_id: str, index: int, experiment_id: str, part: ConfigurationPart) -> dict[str, Any] | None:
        """Inside finish_chunk: if every part of the chunk's configuration is done, its mean score
        (over its ``expected`` runs, as a one-process sweep takes it) is a candidate for the
        sweep's best. Returns new_best_found's payload if it became the best, else None."""
        left = c.execute("SELECT COUNT(*) FROM sweep_chunks this JOIN sweep_chunks p ON p.sweep_id = this.sweep_id"
                         " AND p.plan = this.plan AND p.lo = this.lo WHERE this.sweep_id = ? AND this.idx = ? AND p.state != 'done'",
                         (sweep_id, index)).fetchone()[0]
        if left:
            return None
        finished = "FROM runs WHERE experiment_id = ? AND config_id = ? AND status IN ('completed','cached') AND score IS NOT NULL"
        total, n = c.execute(f"SELECT SUM(score), COUNT(score) {finished}", (experiment_id, part.config_id)).fetchone()
        if not n or int(n) < part.expected:
            return None  # a run failed: as in one process, the configuration is no candidate
        mean = float(total) / int(n)
        if c.execute("UPDATE sweeps SET best_config_id = ?, best_score = ? WHERE id = ? AND (best_score IS NULL OR best_score < ?)",
                     (part.config_id, mean, sweep_id, mean)).rowcount != 1:
            return None
        # What a one-process sweep's announcement carries too: the run that completed the
        # configuration (here the last to finish) and each scorer's mean over its runs.
        last = c.execute(f"SELECT id {finished} ORDER BY completed_at DESC, id LIMIT 1", (experiment_id, part.config_id)).fetchone()[0]
        scores = {label: round(float(value), 6) for label, value in c.execute(
            "SELECT s.scorer, AVG(s.value) FROM scores s JOIN runs r ON r.id = s.run_id"
            " WHERE r.experiment_id = ? AND r.config_id = ? AND r.status IN ('completed','cached')"
            " AND s.source = 'auto' AND s.value IS NOT NULL GROUP BY s.scorer ORDER BY s.scorer",
            (experiment_id, part.config_id))}
        return {"config_id": part.config_id, "run_id": last, "score": round(mean, 6), "n": int(n), "scores": scores,
                **part.announced, "sweep_id": sweep_id}

    def end_sweep(self, sweep_id: str, status: str, reason: str | None, *,
                  events: Sequence[tuple[str, dict[str, Any]]] = ()) -> bool:
        """End a workers' sweep (stopped, or a guided search completed); False if it had ended
        already. ``events`` (type, payload) announce the end in the same transaction: whoever
        reads the sweep ended finds them too."""
        with self.cx.write() as c:
            row = c.execute("SELECT status, experiment_id FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
            if row is None or row[0] not in ("running", "paused"):
                return False
            self._end(c, sweep_id, row[1], status, reason)
            self._announce(c, row[1], list(events))
            return True

    def _announce(self, c: Any, experiment_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Inside a transaction that ends a sweep: its events, redacted as every event is."""
        if events:
            ts = now_iso()
            self._insert_events(c, [(ts, experiment_id, etype, redact(payload))  # type: ignore[attr-defined]
                                    for etype, payload in events], ts)

    def settle_idle_sweep(self, sweep_id: str, state: str, reason: str | None) -> bool:
        """Put a workers' sweep that no worker is running at the moment (no lease alive) in
        ``state`` — what its steering log says (paused, running, stopped) — since no worker is
        there to apply it. False if a worker holds a chunk (it applies the log itself)."""
        with self.cx.write() as c:
            held = c.execute(f"SELECT COUNT(*) FROM sweep_chunks WHERE sweep_id = ? AND state = 'leased' AND lease_until >= {self.CLOCK}",
                             (sweep_id,)).fetchone()[0]
            row = c.execute("SELECT status, experiment_id FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
            if held or row is None or row[0] not in ("running", "paused"):
                return False
            if state == "stopped":
                self._end(c, sweep_id, row[1], "stopped", reason or "requested")
            else:
                c.execute("UPDATE sweeps SET status = ?, stop_reason = ?, updated_at = ? WHERE id = ?",
                          (state, reason if state == "paused" else None, now_iso(), sweep_id))
                c.execute("UPDATE experiments SET status = ?, updated_at = ? WHERE id = ?", (state, now_iso(), row[1]))
            return True

    def paused_by_log(self, sweep_id: str, state_of: Callable[[list[str]], tuple[str, str | None]]) -> bool:
        """Mark a workers' sweep paused if its steering log (``state_of`` reads it) still says so,
        read in the same transaction (a resume written meanwhile wins). For a chunk that joins a
        sweep paused before any worker applied the pause: it was claimed, then the pause came
        before it read the log, so no worker was there to say it. True if the row changed."""
        with self.cx.write() as c:
            row = c.execute("SELECT status, requested, experiment_id FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
            if row is None or row[0] != "running":
                return False
            state, reason = state_of(request_queue(row[1]))
            if state != "paused":
                return False
            c.execute("UPDATE sweeps SET status = 'paused', stop_reason = ?, updated_at = ? WHERE id = ?",
                      (reason or "requested", now_iso(), sweep_id))
            c.execute("UPDATE experiments SET status = 'paused', updated_at = ? WHERE id = ?", (now_iso(), row[2]))
            return True

    @staticmethod
    def _end(c: Any, sweep_id: str, experiment_id: str, status: str, reason: str | None) -> None:
        ts = now_iso()
        c.execute("UPDATE sweeps SET status = ?, stop_reason = ?, finished_at = ?, updated_at = ? WHERE id = ?",
                  (status, reason, ts, ts, sweep_id))
        c.execute("UPDATE experiments SET status = ?, updated_at = ? WHERE id = ?", (status, ts, experiment_id))

    def replan_shared_sweep(self, sweep_id: str, options: dict[str, Any], ranges: list[tuple[int, ...]],
                            runs_per_configuration: int, planned: set[str], request: str) -> dict[str, Any] | None:
        """Redirect a workers' sweep, in one transaction: its chunks not started are replaced by
        ``ranges`` of the new plan (``options`` merged into the sweep's: the spec workers compile),
        chunks in progress are left to stop at their next call (they hear ``request`` in the
        steering log), and the total is recounted: what is done, plus the ``planned`` runs not
        finished. Returns the new plan's number, chunks, remaining runs and total; None if the
        sweep has ended."""
        with self.cx.write() as c:
            row = c.execute("SELECT status, experiment_id, done, options FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
            if row is None or row[0] not in ("running", "paused"):
                return None
            status, experiment_id, done, old = row
            plan, last = c.execute("SELECT COALESCE(MAX(plan), 0) + 1, COALESCE(MAX(idx), -1) + 1 FROM sweep_chunks"
                                   " WHERE sweep_id = ?", (sweep_id,)).fetchone()
            c.execute("UPDATE sweep_chunks SET state = 'replaced' WHERE sweep_id = ? AND state = 'queued'", (sweep_id,))
            finished = {r[0] for r in c.execute("SELECT id FROM runs WHERE experiment_id = ? AND status IN ('completed', 'cached')",
                                                 (experiment_id,))}
            remaining = len(planned - finished)
            total = int(done or 0) + remaining
            c.executemany(_INSERT_CHUNKS, _chunk_rows(sweep_id, int(last), ranges, runs_per_configuration, int(plan)))
            c.execute("UPDATE sweeps SET options = ?, total = ?, updated_at = ? WHERE id = ?",
                      (dumps({**json.loads(old or "{}"), **options}), total, now_iso(), sweep_id))
            self._append_request(c, sweep_id, request)  # type: ignore[attr-defined]
        return {"plan": int(plan), "chunks": len(ranges), "remaining_runs": remaining, "total": total}

    def add_guided_chunks(self, sweep_id: str, known: int, parts: list[tuple[str, int, int, int]]) -> bool:
        """Queue a guided search's next chunks, ``(config_id, first, last, runs)`` (samples
        ``first`` to ``last - 1`` of the search's order), if the sweep still has the ``known``
        number of chunks its proposer read: two workers that decided at once do not both queue
        (the other one decides again, from what the first queued). True if they were queued."""
        with self.cx.write() as c:
            row = c.execute("SELECT COUNT(*), COALESCE(MAX(idx), -1) + 1 FROM sweep_chunks WHERE sweep_id = ?", (sweep_id,)).fetchone()
            status = c.execute("SELECT status FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
            if int(row[0]) != known or status is None or status[0] not in ("running", "paused"):
                return False
            c.executemany("INSERT INTO sweep_chunks (sweep_id, idx, lo, hi, runs, samples_lo, samples_hi, config_id)"
                          " VALUES (?,?,?,?,?,?,?,?)",
                          [(sweep_id, int(row[1]) + i, 0, 1, runs, first, last, config_id)
                           for i, (config_id, first, last, runs) in enumerate(parts)])
            return True

    def shared_sweeps(self, status: str = "running") -> list[dict[str, Any]]:
        """Workers' sweeps in ``status``: id, experiment id and options (a worker with nothing to
        claim looks for guided searches to decide for)."""
        with self.cx.read() as c:
            rows = c.execute("SELECT id, experiment_id, options FROM sweeps WHERE status = ? AND owner_host = ?", (status, WORKERS))
            return [{"id": r[0], "experiment_id": r[1], "options": json.loads(r[2] or "{}")} for r in rows]

    def sweep_plan(self, sweep_id: str) -> int:
        """The sweep's latest plan (0 until its first redirect)."""
        with self.cx.read() as c:
            row = c.execute("SELECT MAX(plan) FROM sweep_chunks WHERE sweep_id = ?", (sweep_id,)).fetchone()
        return int(row[0] or 0) if row else 0

    def write_chunk_batch(self, batch: ResultBatch, update: dict[str, Any]) -> list[int]:
        """A worker's batch: fenced by its lease and adding to the sweep's progress (see
        :func:`fenced_update`), in the one transaction ``write_batch`` joins."""
        with self.cx.write() as c:
            fenced_update(c, update, self.CLOCK)  # first: on PostgreSQL it locks the chunk's row until the commit
            return self.write_batch(batch)  # type: ignore[attr-defined,no-any-return]

    def sweep_spent(self, sweep_id: str) -> tuple[int, int, float]:
        """Tokens in, tokens out and cost the sweep's workers have committed, together."""
        with self.cx.read() as c:
            row = c.execute("SELECT tokens_in, tokens_out, cost FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        return (int(row[0] or 0), int(row[1] or 0), float(row[2] or 0.0)) if row else (0, 0, 0.0)

    def chunks(self, sweep_id: str) -> list[dict[str, Any]]:
        """The sweep's chunks, in plan order (state, owner, generation, lease)."""
        return list(self.db.query("SELECT * FROM sweep_chunks WHERE sweep_id = ? ORDER BY idx", [sweep_id]))

    def paused_shared_sweeps(self) -> list[str]:
        """Workers' sweeps that are paused (a worker with nothing to claim checks whether a
        resume came while no worker was running them: see Worker.run)."""
        with self.cx.read() as c:
            return [r[0] for r in c.execute("SELECT id FROM sweeps WHERE status = 'paused' AND owner_host = ?", (WORKERS,))]

    def steering_log(self, sweep_id: str) -> list[str]:
        """Every steering request written for a workers' sweep, oldest first (never taken away)."""
        with self.cx.read() as c:
            row = c.execute("SELECT requested FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        if not row or not row[0]:
            return []
        value = json.loads(row[0])
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]


__all__ = ["ADDED", "SQLITE_CLOCK", "WORKERS", "Chunks", "Claim", "LeaseLostError", "chunk_ranges", "fenced_update"]
