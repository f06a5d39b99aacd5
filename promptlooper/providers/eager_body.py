"""Request bodies written as the request is sent, not one event-loop turn later (Python 3.11).

aiohttp writes a request's body from a task of its own. From Python 3.12 it starts that task
eagerly, so a small body leaves with the headers at once; on 3.11 the task, and with it the whole
request (the headers wait to go out with the body), waits for the loop's next turn, behind
everything already queued there. In a sweep that is the handling of every other reply that came in
the same turn: measured at latency 100 ms with 64 calls in flight, each request left ~1-2 ms later
and throughput was ~1.5% of C/L lower. :class:`EagerBodyRequest` runs the body writer's first step
at once (for a body that fits in the socket's buffer, the whole write) and leaves the rest, if any
(a large body waiting for the socket to drain, a ``100-continue``), to the task as before.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Coroutine, Generator
from typing import Any

import aiohttp


class EagerBodyRequest(aiohttp.ClientRequest):
    def write_bytes(self, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:  # type: ignore[override]
        writing = super().write_bytes(*args, **kwargs)
        try:
            awaited = writing.send(None)
        except StopIteration as done:
            return _value(done.value)
        except BaseException as exc:  # noqa: BLE001 - raised in the task, where aiohttp expects it
            return _raise(exc)
        return _resumed(writing, awaited)


async def _value(value: Any) -> Any:
    return value


async def _raise(exc: BaseException) -> Any:
    raise exc


async def _resumed(writing: Coroutine[Any, Any, Any], awaited: Any) -> Any:
    return await _drive(writing, awaited)


@types.coroutine
def _drive(writing: Coroutine[Any, Any, Any], awaited: Any) -> Generator[Any, Any, Any]:
    """Go on with ``writing`` from where its first step stopped, as the task would have: what it
    awaits is handed to the task, and what the task sends or throws (a cancellation) goes back in."""
    while True:
        try:
            sent = yield awaited
        except BaseException as exc:  # noqa: BLE001 - passed on, as `await` would
            try:
                awaited = writing.throw(exc)
            except StopIteration as done:
                return done.value
            continue
        try:
            awaited = writing.send(sent)
        except StopIteration as done:
            return done.value


# aiohttp on Python 3.12+ starts the body writer eagerly itself.
REQUEST_CLASS: type[aiohttp.ClientRequest] = EagerBodyRequest if sys.version_info < (3, 12) else aiohttp.ClientRequest
