"""The one retry policy (promptlooper/retrying.py), against a real loopback server that answers a script."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from promptlooper.errors import ProviderError
from promptlooper.retrying import (
    Retry,
    Verdict,
    parse_retry_after,
    post,
    retryable_status,
    retrying,
    verdict,
)


class Scripted:
    """A loopback HTTP server answering each POST with the next (status, headers, delay) of its script."""

    def __init__(self, script: list[tuple[int, dict[str, str], float]]):
        self.script = list(script)
        self.arrivals: list[float] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.arrivals.append(time.monotonic())
        await request.read()
        status, headers, delay = self.script.pop(0) if self.script else (200, {}, 0.0)
        if delay:
            await asyncio.sleep(delay)
        return web.json_response({"n": len(self.arrivals)}, status=status, headers=headers)


@asynccontextmanager
async def serving(*script: tuple[int, dict[str, str], float], timeout: float = 5.0) -> AsyncIterator[tuple[Scripted, str, aiohttp.ClientSession]]:
    scripted = Scripted(list(script))
    app = web.Application()
    app.router.add_post("/hook", scripted.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            yield scripted, f"http://127.0.0.1:{port}/hook", session
    finally:
        await runner.cleanup()


def answer(status: int, retry_after: str | None = None, delay: float = 0.0) -> tuple[int, dict[str, str], float]:
    return status, ({"Retry-After": retry_after} if retry_after is not None else {}), delay


def recording() -> tuple[list[float], Callable[[float], Any]]:
    """A sleep that records the waits asked for and does not wait (the policy's figures, not the clock)."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    return waits, sleep


FAST = Retry(attempts=4, base=0.001, cap=0.002)


def test_429_waits_for_retry_after_then_succeeds():
    async def main():
        waits, sleep = recording()
        async with serving(answer(429, "0.75"), answer(200)) as (server, url, session):
            reply = await post(session, url, FAST, sleep=sleep, json={})
        assert reply.status == 200 and len(server.arrivals) == 2
        assert waits == [0.75]  # Retry-After is the floor of the jittered backoff

    asyncio.run(main())


def test_retry_after_is_capped_and_read_as_an_http_date():
    async def main():
        waits, sleep = recording()
        later = format_datetime(datetime.now(UTC) + timedelta(seconds=600), usegmt=True)
        async with serving(answer(429, "3600"), answer(503, later), answer(200)) as (server, url, session):
            reply = await post(session, url, Retry(attempts=4, base=0.001, retry_after_max=2.5), sleep=sleep, json={})
        assert reply.status == 200
        assert waits == [2.5, 2.5]  # an hour, and ten minutes from now, both capped
        assert 590 < parse_retry_after(later) <= 600

    asyncio.run(main())


def test_5xx_is_tried_again_until_the_attempts_are_spent_then_the_last_answer_is_returned():
    async def main():
        waits, sleep = recording()
        async with serving(answer(500), answer(502), answer(503), answer(200)) as (server, url, session):
            reply = await post(session, url, Retry(attempts=3, base=0.001), sleep=sleep, json={})
        assert reply.status == 503 and len(server.arrivals) == 3 and len(waits) == 2
        assert reply.body  # the answer's body, for the caller's error message

    asyncio.run(main())


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_a_4xx_that_would_answer_the_same_is_not_tried_again(status):
    async def main():
        waits, sleep = recording()
        async with serving(answer(status), answer(200)) as (server, url, session):
            reply = await post(session, url, FAST, sleep=sleep, json={})
        assert reply.status == status and len(server.arrivals) == 1 and waits == []

    asyncio.run(main())


def test_which_statuses_retry():
    assert [s for s in (200, 301, 400, 404, 408, 409, 429, 500, 502, 599) if retryable_status(s)] == [408, 409, 429, 500, 502, 599]


def test_a_timeout_is_tried_again_and_the_last_one_raised():
    async def main():
        waits, sleep = recording()
        async with serving(answer(200, delay=2.0), answer(200), timeout=0.3) as (server, url, session):
            reply = await post(session, url, FAST, sleep=sleep, json={})
            assert reply.status == 200 and len(server.arrivals) == 2 and len(waits) == 1
        async with serving(answer(200, delay=2.0), answer(200, delay=2.0), timeout=0.3) as (server, url, session):
            with pytest.raises(TimeoutError):
                await post(session, url, Retry(attempts=2, base=0.001), sleep=sleep, json={})
            assert len(server.arrivals) == 2

    asyncio.run(main())


def test_a_refused_connection_is_tried_again_and_raised():
    async def main():
        waits, sleep = recording()
        async with serving() as (_, url, session):
            pass  # the server is gone: nothing listens on its port
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectionError):
                await post(session, url, Retry(attempts=3, base=0.001), sleep=sleep, json={})
        assert len(waits) == 2

    asyncio.run(main())


def test_no_try_starts_after_the_deadline():
    async def main():
        # Real waits: 0.6 s fits a 1 s deadline once, not twice.
        async with serving(*[answer(429, "0.6")] * 5) as (server, url, session):
            reply = await post(session, url, Retry(attempts=10, base=0.001, deadline=1.0), json={})
        assert reply.status == 429 and len(server.arrivals) == 2
        assert server.arrivals[1] - server.arrivals[0] >= 0.6

    asyncio.run(main())


def test_cancelling_the_caller_ends_the_wait_at_once():
    async def main():
        async with serving(answer(429, "30"), answer(200)) as (server, url, session):
            task = asyncio.create_task(post(session, url, Retry(attempts=3), json={}))
            while not server.arrivals:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # now in the 30 s wait
            started = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert time.monotonic() - started < 5  # not the 30 s the server asked for
            await asyncio.sleep(0.05)
            assert len(server.arrivals) == 1  # and no second try

    asyncio.run(main())


def test_retrying_reports_each_failure_and_raises_what_it_does_not_handle():
    async def main():
        seen: list[tuple[str, int, float | None]] = []
        answers = iter([ProviderError("busy", retryable=True, retry_after=0.5),
                        ProviderError("bad", retryable=False, status=400)])

        async def attempt() -> str:
            raise next(answers)

        waits, sleep = recording()
        with pytest.raises(ProviderError, match="bad"):
            await retrying(attempt, Retry(attempts=5, base=0.001), sleep=sleep,
                           on_failure=lambda e, n, w: seen.append((str(e), n, w)))
        assert seen == [("busy", 0, 0.5), ("bad", 1, None)] and waits == [0.5]

        calls = 0

        async def bug() -> None:
            nonlocal calls
            calls += 1
            raise KeyError("not an HTTP failure")

        with pytest.raises(KeyError):
            await retrying(bug, FAST, sleep=sleep)
        assert calls == 1

    asyncio.run(main())


def test_backoff_is_full_jitter_exponential_up_to_the_cap():
    policy = Retry(base=0.5, cap=3.0)
    for attempt, bound in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 3.0), (8, 3.0)]:
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(0 <= d <= bound for d in delays)
        assert max(delays) > bound / 2  # spread over the range, not a constant
    assert verdict(ValueError()) is None and verdict(TimeoutError()) == Verdict(True)
