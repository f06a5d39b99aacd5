"""What every PromptLooper widget shares: assets, read-only policy, messages and one live loop.

Design: the browser side of a widget only draws state and sends messages (``{"action": ...}``);
all sorting, diffing and state building happens here, in Python, where it is tested without a
browser. Four rules keep a live notebook healthy:

- **Read-only is enforced in Python.** A widget in read-only mode (``readonly=True``, or by
  default ``PROMPTLOOPER_READONLY=1`` or a Voila kernel) hides its steering buttons *and* drops
  every steering message it receives, and it ignores state the browser tries to write.
- **One loop per view.** A widget refreshes itself from a single asyncio task on the kernel's
  loop. Tasks are registered under a key (widget kind, database, experiment), so re-running a
  cell that builds the same view cancels the previous loop instead of adding a second one.
- **Slow reads leave the loop.** Store reads of a background refresh run in a worker thread on
  a read-only connection of their own, so cells stay responsive while a sweep writes.
- **Full collections skip the kernel's heap while a followed sweep runs.** A refresh allocates,
  and now and then sets off a full collection of every object of the kernel (tens to hundreds of
  ms with the GIL held); a view that sees the sweep it follows running holds a share of the
  engine's freeze (``engine/gcfreeze.py``) until it sees the sweep end or is closed.
- **Read when told, where the store can tell.** A PostgreSQL store announces each commit that
  changes an experiment (LISTEN/NOTIFY, ``listen_changes``): a view's loop given its
  :class:`Changes` then reads after each announcement instead of every interval, so a commit
  shows within a read and an idle view reads nothing. A SQLite file announces nothing: its views
  poll as before.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

import anywidget
import traitlets

from ..engine.gcfreeze import HeapHold

log = logging.getLogger("promptlooper.ui")

READONLY_ENV = "PROMPTLOOPER_READONLY"
TERMINAL = ("completed", "stopped", "interrupted", "failed")  # sweep states that no longer change
VOILA_ENV = ("VOILA_BASE_URL", "VOILA_SERVER_URL")


def default_readonly() -> bool:
    """Read-only unless told otherwise: ``PROMPTLOOPER_READONLY=1``, or inside a Voila kernel."""
    flag = os.environ.get(READONLY_ENV, "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    return any(os.environ.get(k) for k in VOILA_ENV)


def experiment_key(ref: Any) -> str:
    """``project/name`` of an Experiment, or the reference string as given."""
    return str(getattr(ref, "key", ref))


# ---------------------------------------------------------------------- loops
_LOOPS: dict[tuple[str, ...], tuple[asyncio.Task[Any], Any]] = {}
_LOOPS_LOCK = threading.Lock()


def replace_loop(key: tuple[str, ...], coro: Coroutine[Any, Any, Any], owner: Any = None) -> asyncio.Task[Any] | None:
    """Run ``coro`` as the only task under ``key``, cancelling the one a re-run cell left behind.

    The owner of a cancelled task is told (``owner.superseded()``), so an old view says it
    stopped updating instead of silently freezing. Without a running loop (plain scripts)
    nothing runs: widgets then refresh on demand.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        coro.close()
        return None
    with _LOOPS_LOCK:
        old_task, old_owner = _LOOPS.pop(key, (None, None))
        task = loop.create_task(coro, name="promptlooper-ui:" + "/".join(key))
        _LOOPS[key] = (task, owner)
    if old_task is not None and not old_task.done():
        old_task.cancel()
        if old_owner is not None and old_owner is not owner and hasattr(old_owner, "superseded"):
            old_owner.superseded()
    task.add_done_callback(lambda t: _forget(key, t))
    return task


def _forget(key: tuple[str, ...], task: asyncio.Task[Any]) -> None:
    with _LOOPS_LOCK:
        if key in _LOOPS and _LOOPS[key][0] is task:
            del _LOOPS[key]
    if not task.cancelled() and task.exception() is not None:
        log.warning("widget loop %s ended: %r", "/".join(key), task.exception())


def live_loops() -> dict[tuple[str, ...], asyncio.Task[Any]]:
    """The widget loops now running (for tests and debugging)."""
    with _LOOPS_LOCK:
        return {k: t for k, (t, _) in _LOOPS.items() if not t.done()}


class Reader:
    """A read-only workbench on the same file, used from worker threads one call at a time.

    The lock also keeps ``close()`` from closing the connection under a read still running in
    a thread (sqlite3 would crash the process).
    """

    def __init__(self, wb: Any):
        self.wb = wb
        self._ro: Any = None
        self._lock = threading.Lock()
        self.reads = 0  # how many reads this view made of the store (tests: an idle view makes none)

    def _open(self) -> Any:
        if self._ro is None:
            # The caller's own facade class, read-only: the views never import the facade module.
            self._ro = type(self.wb)(self.wb.db_path, readonly=True)
        return self._ro

    def run_sync(self, fn: Callable[[Any], Any]) -> Any:
        with self._lock:
            self.reads += 1
            return fn(self._open())

    async def run(self, fn: Callable[[Any], Any]) -> Any:
        """``fn(read_only_workbench)`` in a worker thread."""
        return await asyncio.to_thread(self.run_sync, fn)

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self.run(lambda ro: getattr(ro, method)(*args, **kwargs))

    def close(self) -> None:
        with self._lock:
            if self._ro is not None:
                self._ro.close()
            self._ro = None

    def changes(self, experiment: str | None) -> Changes:
        """What wakes a view of ``experiment`` (``None``: of every experiment) when it changes."""
        return Changes(self, experiment)


class Changes:
    """The store's announcements that an experiment changed, as wake-ups of one view's loop.

    :meth:`start` (on the loop) subscribes through the read-only store and says whether this store
    announces changes at all. The announcement comes from another thread and only sets an event:
    the loop clears it before each read, so a commit during a read brings one more read.
    """

    def __init__(self, reader: Reader, experiment: str | None):
        self.reader = reader
        self.experiment = experiment
        self._event = asyncio.Event()
        self._stop: Callable[[], None] | None = None

    async def start(self) -> bool:
        loop = asyncio.get_running_loop()

        def wake() -> None:  # from the store's listening thread
            loop.call_soon_threadsafe(self._event.set)

        self._stop = await self.reader.run(lambda ro: ro.store.listen_changes(self._experiment_id(ro), wake))
        return self._stop is not None

    def _experiment_id(self, ro: Any) -> str | None:
        if self.experiment is None:
            return None
        try:
            return str(ro.store.experiment(self.experiment)["id"])
        except LookupError:  # not registered yet: woken by any change until it is
            return None

    def clear(self) -> None:
        self._event.clear()

    async def wait(self, not_before: float, timeout: float | None = None) -> bool:
        """Until the next announcement (True), and not before the loop time ``not_before``; or
        until ``timeout`` seconds have passed without one (False)."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        delay = not_before - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)
        return True

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None


# ---------------------------------------------------------------------- widget base
class PLWidget(anywidget.AnyWidget):  # type: ignore[misc]
    """Base: read-only policy, message dispatch, one refresh loop, Python-owned state."""

    readonly = traitlets.Bool(False).tag(sync=True)
    notice = traitlets.Unicode("").tag(sync=True)  # last outcome, shown to the user
    error = traitlets.Unicode("").tag(sync=True)

    #: actions that change something (steering, decisions, ratings): refused when read-only
    STEERING: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, readonly: bool | None = None, slot: str = "", **kwargs: Any):
        """``slot`` names this view among several live views of one experiment (default: one)."""
        super().__init__(**kwargs)
        self.readonly = default_readonly() if readonly is None else bool(readonly)
        self.slot = slot
        self._loop_task: asyncio.Task[Any] | None = None
        self._closed = False
        self._heap = HeapHold()
        self.on_msg(self._receive)

    # -- messages ---------------------------------------------------------
    def _receive(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict):
            self.handle_message(content)

    def handle_message(self, content: dict[str, Any]) -> bool:
        """Apply one message from the browser; returns False if it was refused or failed.

        ``{"action": "sort", "key": "cost"}`` calls ``self._on_sort(key="cost")``.
        """
        action = str(content.get("action", ""))
        handler: Callable[..., Any] | None = getattr(self, f"_on_{action}", None) if action.isidentifier() else None
        if handler is None:
            self.error = f"unknown action {action!r}"
            return False
        if self.readonly and action in self.STEERING:
            log.info("read-only %s ignored %r", type(self).__name__, action)
            self.error = "read-only view: steering is disabled"
            return False
        args = {k: v for k, v in content.items() if k != "action"}
        try:
            inspect.signature(handler).bind(**args)
        except TypeError as exc:
            self.error = f"bad message for {action}: {exc}"
            return False
        self.error = self.notice = ""
        try:
            handler(**args)
        except ValueError as exc:  # bad input: its message is written for the user
            self.error = str(exc)
            return False
        except Exception as exc:  # noqa: BLE001 - shown in the widget, the kernel keeps going
            self.error = f"{type(exc).__name__}: {exc}"
            return False
        return True

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """State written by the browser is ignored (it sends messages instead): Python owns every
        trait, so a page cannot switch ``readonly`` off or replace the rows it is shown."""
        log.info("%s ignored browser writes to %s", type(self).__name__, sorted(sync_data))
        self.send_state(key=sorted(k for k in sync_data if k in self.keys))  # the truth, again

    # -- loop -------------------------------------------------------------
    def _start_loop(self, key: tuple[str, ...], coro: Coroutine[Any, Any, Any]) -> None:
        self._loop_task = task = replace_loop((type(self).__name__, *key, self.slot), coro, owner=self)
        if task is not None:
            task.add_done_callback(self._loop_ended)

    def _loop_ended(self, task: asyncio.Task[Any]) -> None:
        # however it ended (cancelled, replaced, returned), unless this view started another since
        if self._loop_task is task or self._loop_task is None:
            self._heap.give_back()

    def _following(self, status: Any) -> None:
        """The sweep this view follows is in ``status``: hold the heap frozen while it runs."""
        if status == "running" and not self._closed and self._loop_task is not None and not self._loop_task.done():
            self._heap.take()
        else:
            self._heap.give_back()

    def superseded(self) -> None:
        """A newer view of the same experiment (a re-run cell) took over this one's updates."""
        self._heap.give_back()
        self._loop_task = None
        self.notice = "This view stopped updating: a newer view of the same experiment replaced it."

    def stop_updates(self) -> None:
        """Stop this widget's refresh loop (it keeps its last state)."""
        if self._loop_task is not None and not self._loop_task.done():
            self._loop_task.cancel()
        self._loop_task = None
        self._heap.give_back()

    def close(self) -> None:
        self._closed = True
        self.stop_updates()
        reader = getattr(self, "_reader", None)
        if isinstance(reader, Reader):
            reader.close()
        super().close()


#: With announcements, the shortest gap between two reads of one view: a sweep commits many times a
#: second, and a view that shows each commit within this much is live enough (its reads are shared).
QUICKEST = 0.2
#: With announcements, how long after the last one a view still reads every interval. Some changes
#: are announced by nothing: a view that paces itself (the leaderboard skips a change that comes
#: sooner than a few times its last read took) must catch up with the last change of a burst, and
#: a sweep whose process died stops writing, so it reads "interrupted" only once its heartbeat
#: (written every 2 s while it lives) is 30 s old (store/liveness.py's READER_STALE_AFTER).
SETTLE = 35.0


async def every(interval: float, step: Callable[[], Coroutine[Any, Any, bool | None]], changes: Changes | None = None) -> None:
    """Call ``step`` every ``interval`` seconds until it returns True; errors are logged, not fatal.

    With ``changes`` from a store that announces them (PostgreSQL), ``step`` runs once at the start
    and then after each announcement (at most one read per ``min(interval, QUICKEST)``), and every
    interval for ``SETTLE`` seconds after the last one: a commit shows within about ``QUICKEST``,
    and a view with nothing new reads nothing.
    """
    listening = False
    last_news = float("-inf")
    if changes is not None:
        try:
            listening = await changes.start()
        except Exception as exc:  # noqa: BLE001 - no announcements: the view polls, as on SQLite
            log.warning("widget polls: listening for changes failed: %r", exc)
    loop = asyncio.get_running_loop()
    last = ""
    try:
        while True:
            began = loop.time()
            if listening:
                changes.clear()  # type: ignore[union-attr]
            try:
                if await step():
                    return
                last = ""
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed refresh must not kill the view
                if repr(exc) != last:  # once per distinct failure, not once a second
                    log.warning("widget refresh failed: %r", exc)
                last = repr(exc)
            if listening:
                settling = began < last_news + SETTLE
                if await changes.wait(began + min(interval, QUICKEST), interval if settling else None):  # type: ignore[union-attr]
                    last_news = loop.time()
            else:
                await asyncio.sleep(interval)
    finally:
        if changes is not None:
            changes.stop()
