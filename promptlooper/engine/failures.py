"""How a sweep meets failure: loudly, and without paying for a dead endpoint.

:class:`FailureWatch` is the sweep's part that

* pauses the sweep when an endpoint's circuit breaker opens (``endpoint.unhealthy``), probes the
  endpoint while it is open, and resumes the sweep when a probe is answered (``endpoint.healthy``);
  with ``unhealthy_timeout`` set (the CLI sets it) a breaker open that long stops the sweep instead;
  with ``shared`` set (:mod:`.shared_breakers`), a breaker it opens holds for every process sweeping
  the store, and one another process opened pauses this sweep too (that process probes);
* makes a retry's backoff wait one that a pause or a stop cuts short at once (a ``Retry-After`` of
  minutes used to hold ``stop`` that long);
* counts the reasons runs failed, grouped, for the end-of-sweep summary;
* when the writer process dies (``kill -9``), writes the rest of the sweep from this process, so
  nothing finished is lost and nothing is called twice on the next sweep.

Nothing here runs per call on a healthy sweep: only failures, steering and the writer's errors
reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import warnings
from typing import TYPE_CHECKING, Any

from ..errors import ProviderError
from ..providers.base import ChatRequest, Provider
from .breaker import Breaker, is_unhealthy
from .shared_breakers import SharedBreakers

if TYPE_CHECKING:
    from ..store import Store
    from .sweep import Sweep

_ATTEMPTS = re.compile(r" \(after \d+ attempts\)$")


def failure_reason(error: str | None) -> str:
    """A failed run's error as grouped in summaries: without the attempt count, which varies."""
    return _ATTEMPTS.sub("", error or "unknown error")


class FailureWatch:
    def __init__(self, sweep: Sweep):
        self.sweep = sweep
        self.unhealthy_timeout: float | None = None  # seconds an endpoint may stay down before the sweep stops
        self._waker: asyncio.Future[None] | None = None  # resolved by a pause / stop: ends every backoff wait
        self._probes: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.shared: SharedBreakers | None = None  # breakers shared with the store's other processes

    # ------------------------------------------------------------------ failed runs
    def run_failed(self, error: str | None) -> None:
        reasons = self.sweep.progress.failure_reasons
        reason = failure_reason(error)
        reasons[reason] = reasons.get(reason, 0) + 1

    # ------------------------------------------------------------------ backoff
    async def backoff(self, delay: float) -> None:
        """Wait ``delay`` seconds before a retry, or less: a pause or a stop ends the wait at once
        (the retry then waits at the sweep's gate, or is abandoned)."""
        if not self.sweep._open():
            return
        waker = self._waker
        if waker is None or waker.done():
            waker = self._waker = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waker), delay)

    def interrupt_waits(self) -> None:
        waker, self._waker = self._waker, None
        if waker is not None and not waker.done():
            waker.set_result(None)

    def steered(self, verb: str) -> None:
        """A steering request was applied: pause / stop end the retry waits; resume closes every
        breaker (the user says the endpoint is back; if not, it opens again after a few calls)."""
        if verb in ("pause", "stop"):
            self.interrupt_waits()
        elif verb == "resume":
            calls = getattr(self.sweep, "calls", None)
            if self.shared is not None and calls is not None:
                self.shared.resumed(calls.breakers.values())
            for breaker in (calls.breakers.values() if calls is not None else ()):
                breaker.close()
            for task in self._probes.values():
                task.cancel()  # if the endpoint fails again, its breaker opens afresh, with a probe of its own
            self._probes.clear()

    # ------------------------------------------------------------------ circuit breaker
    def endpoint_unhealthy(self, breaker: Breaker, provider: Provider, request: ChatRequest) -> None:
        reason = f"endpoint {breaker.name!r} unhealthy after {breaker.failures} consecutive failures: {breaker.reason}"
        if self.shared is not None:
            self.shared.opened(breaker)
        if not self._pause_for(breaker, reason, {"failures": breaker.failures}):
            return
        old = self._probes.get(breaker.name)
        if old is None or old.done():
            self._probes[breaker.name] = asyncio.ensure_future(self._probe(breaker, provider, request))

    def _pause_for(self, breaker: Breaker, reason: str, details: dict[str, Any]) -> bool:
        """``endpoint.unhealthy`` and a pause (or a stop, with a zero ``unhealthy_timeout``: then False)."""
        sweep, p = self.sweep, self.sweep.progress
        sweep.emit("endpoint.unhealthy", {"endpoint": breaker.name, "reason": breaker.reason, **details,
                                          "sweep_id": sweep.sweep_id})
        if self.unhealthy_timeout is not None and self.unhealthy_timeout <= 0:
            self.stop(reason)
            return False
        if p.status == "running":
            sweep._gate.clear()
            p.status = "paused"
            p.stop_reason = reason
            sweep.emit("experiment.paused", {"reason": reason, "sweep_id": sweep.sweep_id})
        self.interrupt_waits()
        return True

    async def follow_shared(self) -> None:
        """On the steering poll: open the breakers other processes hold open, close those they closed."""
        calls = getattr(self.sweep, "calls", None)
        if self.shared is None or calls is None or not calls.breakers:
            return
        try:
            elsewhere = await self.shared.open_elsewhere()
        except Exception:  # noqa: BLE001 - steering must go on; the next poll reads them again
            return
        for breaker in list(calls.breakers.values()):
            row = elsewhere.get(breaker.identity)
            if row is not None and not breaker.is_open:
                breaker.open_remotely(row[1])
                reason = f"endpoint {breaker.name!r} unhealthy (its breaker opened by another process): {row[1]}"
                if self._pause_for(breaker, reason, {"failures": 0, "opened_by": row[0]}):
                    self._probes[breaker.name] = asyncio.ensure_future(self._wait_remote(breaker))
            elif row is None and breaker.is_open and breaker.remote:
                self.endpoint_healthy(breaker)

    async def _wait_remote(self, breaker: Breaker) -> None:
        """A breaker another process opened (and probes): this sweep only gives up after ``unhealthy_timeout``."""
        if self.unhealthy_timeout is None:
            return
        await asyncio.sleep(self.unhealthy_timeout)
        if breaker.is_open and not self.sweep.stopping:
            self.stop(f"endpoint {breaker.name!r} still unhealthy after {self.unhealthy_timeout:g}s: {breaker.reason}")

    def endpoint_healthy(self, breaker: Breaker) -> None:
        sweep, p = self.sweep, self.sweep.progress
        if self.shared is not None:
            self.shared.closed(breaker)
        breaker.close()
        sweep.emit("endpoint.healthy", {"endpoint": breaker.name, "sweep_id": sweep.sweep_id})
        others_open = any(b.is_open for b in sweep.calls.breakers.values())
        if p.status == "paused" and (p.stop_reason or "").startswith("endpoint ") and not others_open:
            p.status = "running"
            p.stop_reason = None
            sweep.emit("experiment.resumed", {"sweep_id": sweep.sweep_id, "reason": f"endpoint {breaker.name!r} answered"})
            sweep._gate.set()

    async def _probe(self, breaker: Breaker, provider: Provider, request: ChatRequest) -> None:
        """While ``breaker`` is open: one call now and then (the half-open state), the request that
        failed last; answered, it closes the breaker and resumes the sweep."""
        opened = time.monotonic()
        while breaker.is_open and not self.sweep.stopping:
            wait = breaker.next_probe_in()
            if self.unhealthy_timeout is not None:
                left = opened + self.unhealthy_timeout - time.monotonic()
                if left <= wait:
                    await asyncio.sleep(max(0.0, left))
                    if breaker.is_open and not self.sweep.stopping:
                        self.stop(f"endpoint {breaker.name!r} still unhealthy after {self.unhealthy_timeout:g}s: {breaker.reason}")
                    return
            await asyncio.sleep(wait)
            if not breaker.is_open or self.sweep.stopping:
                return  # a resume closed it meanwhile
            self.sweep.calls.calls += 1
            try:
                await provider.chat(request)
            except ProviderError as exc:
                if is_unhealthy(exc):
                    breaker.probes += 1
                    breaker.reason = str(exc)
                    if self.shared is not None:
                        self.shared.opened(breaker)  # open for the others until after the next probe
                    self.sweep.emit("endpoint.probe_failed", {"endpoint": breaker.name, "reason": str(exc),
                                                              "next_probe_in": breaker.next_probe_in()})
                    continue
            self.endpoint_healthy(breaker)  # answered (a 4xx is an answer: the endpoint is up)
            return

    def stop(self, reason: str) -> None:
        sweep = self.sweep
        sweep._stopping = True
        sweep.progress.stop_reason = reason
        sweep._gate.set()  # paused workers wake up to see they must stop
        self.interrupt_waits()

    # ------------------------------------------------------------------ the writer process
    def writer_lost(self, error: Exception, store: Store) -> bool:
        """The writer process is gone (called on the write thread): True if this process writes
        from now on, False if the error was not that (the process is alive and refused a batch)."""
        process = self.sweep._writer_process
        if process is None or process.proc.poll() is None:
            return False
        self.sweep._writer_process = None
        store.resume_checkpoints()
        store.use_bulk_cache()
        reason = f"{error}; results are written by the sweep's own process from now on"
        warnings.warn(f"promptlooper: {reason}", stacklevel=2)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.sweep.emit, "writer.lost", {"reason": reason, "sweep_id": self.sweep.sweep_id})
        return True

    def writer_failed(self, error: BaseException) -> None:
        """The writer cannot write at all: stop at once, rather than call on with nothing stored."""
        self.stop(f"results cannot be stored: {type(error).__name__}: {error}")

    def started(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def aclose(self) -> None:
        for task in self._probes.values():
            task.cancel()
        for task in self._probes.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._probes.clear()
        self.interrupt_waits()
        if self.shared is not None:
            await self.shared.aclose()


def summary_reasons(reasons: dict[str, Any], limit: int = 10) -> list[tuple[str, int]]:
    """The most frequent failure reasons first."""
    return sorted(((r, int(n)) for r, n in reasons.items()), key=lambda rn: (-rn[1], rn[0]))[:limit]
