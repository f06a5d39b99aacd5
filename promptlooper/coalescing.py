"""Keys asked for in one event-loop turn, answered by one batch.

Many coroutines ask for keys at nearly the same moment: a sweep looks up and scores many runs in
each turn of its loop. A :class:`Coalescer` collects the keys asked for until the current turn
ends, then hands them to its ``fetch`` in one batch: one ``SELECT … IN`` for the call cache
(:class:`promptlooper.engine.calls.CacheReader`), one backend request for embeddings
(:class:`promptlooper.embedder.EmbeddingService`). A key asked for again while its batch is out
waits for that batch (single-flight) instead of going out twice.

``fetch`` is a plain function or a coroutine function. A plain one runs on the loop itself, in the
callback that ends the turn: no task and no thread hop, for batches that cost less than a hop (the
call cache's keyed read). A coroutine function runs as a task, in a context of its own: one batch
serves many callers and must not carry the context of the one that asked first (a sweep abandons
the work of a configuration it dropped by its context).

Each caller gets a future of its own, so a cancelled caller cancels nobody else's wait; a failed
fetch fails every waiter of its batch; a key the fetch did not answer resolves to ``None``. State
is kept per event loop: one service may be used from a notebook's loop and a worker thread's loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import weakref
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Turn(Generic[K, V]):
    """One loop's keys: those of the turn under way, and those whose batch is out."""

    __slots__ = ("pending", "out")

    def __init__(self) -> None:
        self.pending: dict[K, list[asyncio.Future[V | None]]] = {}
        self.out: dict[K, list[asyncio.Future[V | None]]] = {}


class Coalescer(Generic[K, V]):
    def __init__(self, fetch: Callable[[list[K]], Mapping[K, V] | Awaitable[Mapping[K, V]]]):
        self.fetch = fetch
        self._is_async = inspect.iscoroutinefunction(fetch)
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Turn[K, V]] = weakref.WeakKeyDictionary()
        # The last loop used and its state: a weak dictionary's look-up builds a weak reference,
        # and every look-up of a sweep's call cache comes from the same loop.
        self._last: tuple[asyncio.AbstractEventLoop, _Turn[K, V]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # held until done: the loop keeps only weak references

    def get(self, key: K) -> asyncio.Future[V | None]:
        """A future of ``key``'s value (None if the fetch had none); a plain function, so awaiting
        it adds no coroutine."""
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0] is loop:
            turn = last[1]
        else:
            turn = self._turns.get(loop)
            if turn is None:
                turn = self._turns[loop] = _Turn()
            self._last = (loop, turn)
        fut: asyncio.Future[V | None] = loop.create_future()
        waiters = turn.out.get(key)
        if waiters is None:
            waiters = turn.pending.get(key)
            if waiters is None:
                if not turn.pending:
                    loop.call_soon(self._flush, loop, turn)
                waiters = turn.pending[key] = []
        waiters.append(fut)
        return fut

    def _flush(self, loop: asyncio.AbstractEventLoop, turn: _Turn[K, V]) -> None:
        batch, turn.pending = turn.pending, {}
        if not self._is_async:
            try:
                found: Any = self.fetch(list(batch))
            except Exception as exc:  # noqa: BLE001 - handed to every waiter
                _fail(batch, exc)
            else:
                _answer(batch, found)
            return
        turn.out.update(batch)  # the same lists: a key asked for meanwhile joins its batch
        task = loop.create_task(self._fetch_out(turn, batch), context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fetch_out(self, turn: _Turn[K, V], batch: dict[K, list[asyncio.Future[V | None]]]) -> None:
        try:
            found = await self.fetch(list(batch))  # type: ignore[misc]
        except BaseException as exc:  # noqa: BLE001 - every waiter gets the failure
            _fail(batch, exc)
            return
        finally:
            for key, waiters in batch.items():
                if turn.out.get(key) is waiters:
                    del turn.out[key]
        _answer(batch, found)


def _answer(batch: dict[Any, list[asyncio.Future[Any]]], found: Mapping[Any, Any]) -> None:
    for key, waiters in batch.items():
        value = found.get(key)
        for fut in waiters:
            if not fut.done():
                fut.set_result(value)


def _fail(batch: dict[Any, list[asyncio.Future[Any]]], exc: BaseException) -> None:
    for waiters in batch.values():
        for fut in waiters:
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # retrieved: a waiter that went away must not log it
