"""One retry policy for every HTTP call PromptLooper makes.

Four callers share it: the engine's model calls (:mod:`promptlooper.engine.calls`), webhook
deliveries (:mod:`promptlooper.webhooks`), the ``webhook`` scorer and the embeddings endpoint
(:mod:`promptlooper.embedder`).

What is tried again (:func:`retryable_status`, :func:`verdict`)
    no answer at all (a timeout, a refused or dropped connection), 408, 409, 429 and every 5xx,
    the statuses the OpenAI SDK retries; any other answer would come back the same.

How long apart (:meth:`Retry.delay`)
    full-jitter exponential backoff: a uniform draw in ``[0, min(cap, base * 2**attempt)]``; a
    server's ``Retry-After`` (seconds or an HTTP date) is honoured as a floor, itself capped at
    ``retry_after_max`` (a server asking for ten minutes would otherwise hold a sweep, and its
    ``stop``, that long).

When to give up
    after ``attempts`` tries, or when the next one could not start within ``deadline`` seconds of
    the first.

Waiting
    :func:`retrying` waits with the ``sleep`` it is given (``asyncio.sleep`` by default), so
    cancelling the caller ends the wait at once; the engine passes a sleep that a pause or a stop
    also ends. Every failed attempt is reported to ``on_failure`` before the wait: the engine
    feeds its adaptive concurrency and circuit breaker from there, which stay the engine's.

The webhook courier waits in no loop: its retries are outbox rows due at a time, which it computes
with the same :class:`Retry` and :func:`retryable_status`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from .errors import ProviderError

if TYPE_CHECKING:
    import aiohttp

T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 409, 429})  # and every 5xx
RETRY_AFTER_MAX = 60.0  # seconds: the default cap on a server's Retry-After (EndpointSpec.retry_after_max)


def retryable_status(status: int) -> bool:
    """Whether an answer with this status may be different if asked again."""
    return status >= 500 or status in RETRY_STATUSES


def parse_retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds from now (it may be seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Retry:
    """How many tries, how far apart, and for how long at most."""

    attempts: int = 3  # tries in all, the first included
    base: float = 0.25  # seconds: the first backoff's upper bound, doubled after each try
    cap: float = 20.0  # seconds: the largest backoff upper bound
    retry_after_max: float = RETRY_AFTER_MAX
    deadline: float | None = None  # seconds from the first try after which no try starts

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait after failed try number ``attempt`` (0 for the first)."""
        delay = random.uniform(0, min(self.cap, self.base * (2 ** attempt)))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_after_max))
        return delay


class Verdict(NamedTuple):
    retryable: bool
    retry_after: float | None = None


class Reply(NamedTuple):
    status: int
    body: bytes
    retry_after: float | None = None


class RetryableReply(Exception):
    """An HTTP answer with a retryable status (raised inside :func:`post`, which returns the last)."""

    def __init__(self, reply: Reply):
        super().__init__(f"HTTP {reply.status}")
        self.reply = reply


def verdict(error: BaseException) -> Verdict | None:
    """What the policy makes of a failed try; None for an error it does not handle (raised as is)."""
    if isinstance(error, ProviderError):
        return Verdict(error.retryable, error.retry_after)
    if isinstance(error, RetryableReply):
        return Verdict(True, error.reply.retry_after)
    # Imported here, not at the top: the engine imports this module, and a process that never
    # makes an HTTP call (``promptlooper --help``, a fully cached sweep) need not load aiohttp.
    import aiohttp

    if isinstance(error, TimeoutError | aiohttp.ClientError):
        return Verdict(True)
    return None


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    policy: Retry,
    *,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    on_failure: Callable[[Exception, int, float | None], None] | None = None,
    classify: Callable[[BaseException], Verdict | None] = verdict,
) -> T:
    """``await attempt()`` until it succeeds or the policy gives up; then its last error is raised.

    ``on_failure(error, attempt, wait)`` hears of every failed try (``attempt`` counts from 0) and
    the wait before the next, or ``None`` when there is none.
    """
    started = time.monotonic() if policy.deadline is not None else 0.0
    tried = 0
    while True:
        try:
            return await attempt()
        except Exception as exc:
            found = classify(exc)
            if found is None:
                raise
            wait: float | None = None
            if found.retryable and tried + 1 < policy.attempts:
                wait = policy.delay(tried, found.retry_after)
                if policy.deadline is not None and time.monotonic() + wait - started > policy.deadline:
                    wait = None
            if on_failure is not None:
                on_failure(exc, tried, wait)
            if wait is None:
                raise
        await sleep(wait)
        tried += 1


async def post(session: aiohttp.ClientSession, url: str, policy: Retry, *,
               sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep, **kwargs: Any) -> Reply:
    """POST ``url`` (``kwargs`` as for ``session.post``) until it is answered with a status that
    would not change, or the policy gives up: the last answer, whatever its status. Raises the last
    ``TimeoutError`` / ``aiohttp.ClientError`` when the last try got no answer."""

    async def once() -> Reply:
        async with session.post(url, **kwargs) as resp:
            reply = Reply(resp.status, await resp.read(), parse_retry_after(resp.headers.get("Retry-After")))
        if retryable_status(reply.status):
            raise RetryableReply(reply)
        return reply

    try:
        return await retrying(once, policy, sleep=sleep)
    except RetryableReply as last:
        return last.reply
