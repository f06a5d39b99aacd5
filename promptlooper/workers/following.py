"""WorkersHandle: a sweep that workers run, followed through the store from a notebook or the CLI.

The same surface as :class:`~promptlooper.engine.handle.SweepHandle` (progress, status, pause /
resume / stop, listeners, ``await handle``, ``wait()``), but nothing runs here: a daemon thread
reads the sweep's row every ``FOLLOW_EVERY`` seconds (on PostgreSQL a commit's NOTIFY is not
needed: the row is what the workers add their batches to), builds a
:class:`~promptlooper.engine.progress.Progress` from it, and calls the listeners when it changed.
The handle is done when the sweep is (completed or stopped, by whichever worker or process).
Steering verbs write the sweep's request log, which every worker follows.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Generator
from typing import Any

from ..engine.progress import Progress
from ..store import open_store
from ..store.sweeps import steering_request
from .chunk_sweep import state_after

FOLLOW_EVERY = 0.25  # seconds between reads of the sweep's row
GIVE_UP_AFTER = 120.0  # seconds of failed reads after which waiting raises the error
_ENDED = ("completed", "stopped", "interrupted")


class _Where:
    """What shortcuts and views ask of ``handle.sweep`` (where its results are)."""

    def __init__(self, store_path: str, progress: Progress):
        self.store_path = store_path
        self.progress = progress


class WorkersHandle:
    """A queued sweep's progress as the workers record it (see the module docstring)."""

    def __init__(self, store_path: str, sweep_id: str, experiment_key: str, experiment_id: str, actor: str = ""):
        self.experiment = experiment_key
        self.actor = actor  # who steers through this handle (promptlooper.actors): its requests name them
        self.experiment_id = experiment_id
        self.store_path = store_path
        self._sweep_id = sweep_id
        self.progress = Progress(status="running")
        self.sweep = _Where(store_path, self.progress)
        self._listeners: list[Callable[[Progress], None]] = []
        self._future: concurrent.futures.Future[Progress] = concurrent.futures.Future()
        self._store = open_store(store_path)
        self._closed = threading.Event()
        self._read()
        threading.Thread(target=self._follow, name=f"promptlooper-follow:{experiment_key}", daemon=True).start()

    # ------------------------------------------------------------------ following the row
    def _read(self) -> bool:
        row = self._store.sweep(self._sweep_id)
        p = self.progress
        before = (p.status, p.done, p.failed, p.tokens_in, p.tokens_out, p.cost)
        p.status, p.total, p.done = row["status"], int(row["total"] or 0), int(row["done"] or 0)
        p.cached, p.failed = int(row["cached"] or 0), int(row["failed"] or 0)
        p.completed = max(0, p.done - p.cached - p.failed)
        p.tokens_in, p.tokens_out, p.cost = int(row["tokens_in"] or 0), int(row["tokens_out"] or 0), float(row["cost"] or 0.0)
        p.stop_reason = row.get("stop_reason")
        p.best_config_id, p.best_score = row.get("best_config_id"), row.get("best_score")
        return before != (p.status, p.done, p.failed, p.tokens_in, p.tokens_out, p.cost)

    def _follow(self) -> None:
        failing_since: float | None = None
        try:
            while not self._closed.wait(FOLLOW_EVERY):
                try:
                    changed = self._read()
                except Exception:
                    # The database unreachable for a moment (a restart, a network blip): the
                    # workers retry, and so does the handle, for up to GIVE_UP_AFTER seconds.
                    failing_since = failing_since or time.monotonic()
                    if time.monotonic() - failing_since > GIVE_UP_AFTER:
                        raise
                    continue
                failing_since = None
                if changed:
                    for listener in list(self._listeners):
                        with contextlib.suppress(Exception):
                            listener(self.progress)
                if self.progress.status in _ENDED:
                    self._future.set_result(self.progress)
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
            if not self._future.done():
                self._future.set_exception(exc)
        finally:
            self._store.close()

    def close(self) -> None:
        """Stop following (the sweep goes on in its workers); ``wait()`` then never returns."""
        self._closed.set()

    # ------------------------------------------------------------------ state
    @property
    def status(self) -> str:
        return self.progress.status

    @property
    def sweep_id(self) -> str:
        return self._sweep_id

    def done(self) -> bool:
        return self._future.done()

    def add_listener(self, fn: Callable[[Progress], None]) -> None:
        """Call ``fn(progress)`` whenever the workers' commits changed the sweep's progress."""
        self._listeners.append(fn)

    def chunks(self) -> list[dict[str, Any]]:
        """The sweep's chunks: which worker holds which, and which are done."""
        store = open_store(self.store_path, readonly=True)
        try:
            return store.chunks(self._sweep_id)
        finally:
            store.close()

    def __repr__(self) -> str:
        return f"<WorkersHandle {self.experiment}: {self.progress.line()}>"

    # ------------------------------------------------------------------ steering (every worker follows the log)
    def _steer(self, verb: str, reason: str = "") -> None:
        store = open_store(self.store_path)
        try:
            # As Sweep.request: the request names who asked, and the workers record it in their events.
            store.add_steering(self._sweep_id, steering_request(verb, reason, self.actor))
            # No worker at work on it (none started yet, all gone): the sweep's row says it at once.
            state, reason = state_after(store.steering_log(self._sweep_id))
            store.settle_idle_sweep(self._sweep_id, state, reason)
        finally:
            store.close()

    def pause(self) -> None:
        self._steer("pause")

    def resume(self) -> None:
        self._steer("resume")

    def stop(self) -> None:
        self._steer("stop")

    def cancel(self) -> None:
        """Nothing runs here to cancel: the workers are asked to stop (finished runs are kept)."""
        self.stop()

    # ------------------------------------------------------------------ waiting
    def __await__(self) -> Generator[Any, None, Progress]:
        return asyncio.wrap_future(self._future).__await__()

    def started(self, timeout: float | None = None) -> bool:
        """Queued sweeps have started as far as their caller is concerned: True at once."""
        return True

    def wait(self, timeout: float | None = None) -> Progress:
        """Block until the workers have completed or stopped the sweep (scripts, the CLI)."""
        return self._future.result(timeout)


__all__ = ["WorkersHandle"]
