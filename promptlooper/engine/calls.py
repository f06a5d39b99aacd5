"""Model calls through the response cache, with single-flight, retries and adaptive limits.

A call is looked up, in order: among the entries this sweep wrote recently (not yet or only just
committed), among those a sweep looked up ahead for its next runs (:meth:`CallExecutor.prefetch`,
one query for many), among identical calls in flight right now (single-flight: a second caller
awaits the first), then in the store, where look-ups that arrive in the same event-loop turn are
coalesced into one ``SELECT … IN`` on the loop itself (:mod:`promptlooper.coalescing`). While other
processes sweep the same store, a miss then claims its key there (:mod:`.claims`), or waits for
the process that claimed it and uses its reply as a cache hit. Only a miss reaches the endpoint,
tried again as :mod:`promptlooper.retrying` says; each failed try also tells the endpoint's
adaptive limit and circuit breaker, which are the engine's.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from ..coalescing import Coalescer
from ..errors import ProviderError
from ..hashing import canonical_json, canonical_text, digest
from ..providers.base import ChatRequest, ChatResponse, Provider
from ..retrying import Retry, Verdict, retrying, verdict
from ..store import CacheEntry, Store
from .breaker import Breaker
from .budgets import SharedBudget, Ticket
from .claims import CallClaims
from .flights import Flights
from .limits import AdaptiveLimit


def cache_key_material(provider: Provider, model: str, messages: list[dict[str, str]], params: dict[str, Any]) -> dict[str, Any]:
    """What goes into a call's cache key: everything that can change the reply, never the API key."""
    return {"endpoint": provider.identity, "model": model, "messages": messages, "params": params}


def call_key(
    identity: str, model: str, messages: list[dict[str, str]], params_json: str, messages_json: str | None = None,
) -> tuple[str, str]:
    """``(content_hash("call", cache_key_material(...)), canonical JSON of messages)``, built from parts.

    ``params_json`` is ``canonical_json(params)``, which a sweep encodes once per configuration, and
    ``messages_json`` ``canonical_json(messages)`` if the caller has it. The text is assembled from
    pieces instead of normalised and encoded whole (the keys of the material sort as endpoint,
    messages, model, params); tests hold it equal to ``content_hash``.
    """
    if messages_json is None:
        messages_json = canonical_json(messages)
    head, middle = _key_parts(identity, model)
    return digest("call", f"{head}{messages_json}{middle}{params_json}}}"), messages_json


@functools.lru_cache(maxsize=256)
def _key_parts(identity: str, model: str) -> tuple[str, str]:
    """The text around a call key's messages and parameters: the same for every call to a model."""
    return f'{{"endpoint":{canonical_text(identity)},"messages":', f',"model":{canonical_text(model)},"params":'


def _provider_verdict(error: BaseException) -> Verdict | None:
    """Only a ProviderError is a failed call; anything else is a bug, raised at once."""
    return verdict(error) if isinstance(error, ProviderError) else None


class CallResult(NamedTuple):
    response: ChatResponse
    cached: bool
    key: str
    messages_json: str | None = None  # canonical JSON of the messages (what the stage stores as prompt_sent)


class CacheReader(Coalescer[str, tuple[str, int, int, float]]):
    """The store's call cache, with the look-ups of one event-loop turn in one query, on the loop.

    Not in a worker thread: a keyed read in WAL mode never waits for the writer and takes well
    under a millisecond for a turn's keys, while a thread hop per turn cost more than the read, and
    under load much more (sqlite3 releases the GIL once per row fetched, and a worker thread then
    waits up to the 5 ms switch interval to get it back from the busy loop, once per row).

    A store that says ``cache_reads_off_loop`` (PostgreSQL: each look-up is a round trip to a
    server, which may stall) is read in a worker thread instead, and so is what
    :meth:`CallExecutor.prefetch` looks up ahead (:meth:`read_ahead`): a stalled server then holds
    up the runs that wait for it, not the loop with every reply, progress count and steering
    request on it. Measured with benchmarks/store_backends.py on the 2-core machine: the same
    fraction of C/L, more cached runs a second (the loop goes on while the server answers), ~25%
    more engine CPU a run.
    """

    def __init__(self, store: Store):
        self.store = store
        self.off_loop = bool(getattr(store, "cache_reads_off_loop", False))
        super().__init__(self._read_off_loop if self.off_loop else store.cache_get_many)

    async def _read_off_loop(self, keys: list[str]) -> dict[str, tuple[str, int, int, float]]:
        return await asyncio.to_thread(self.store.cache_get_many, keys)

    def read_ahead(self, keys: list[str]) -> asyncio.Task[dict[str, tuple[str, int, int, float]]]:
        """``keys`` looked up in one query in a worker thread, started now (off-loop stores)."""
        task = asyncio.ensure_future(self._read_off_loop(keys))
        task.add_done_callback(_retrieved)  # its runs may all be dropped: nobody else would read a failure
        return task


def _retrieved(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class CallExecutor:
    def __init__(
        self,
        reader: CacheReader,
        on_cache_entry: Callable[[CacheEntry], None],
        *,
        global_limit: asyncio.Semaphore,
        gate: Callable[[], Any],
        is_open: Callable[[], bool] = lambda: True,
        recent_size: int = 8192,
        on_spent: Callable[[str, str, int, int], None] | None = None,
        backoff: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        on_unhealthy: Callable[[Breaker, Provider, ChatRequest], None] | None = None,
        on_healthy: Callable[[Breaker], None] | None = None,
        ramp_calls: int = 0,
        flights: Flights | None = None,
    ):
        self.reader = reader
        self.on_cache_entry = on_cache_entry
        self.global_limit = global_limit
        self.gate = gate  # awaitable factory: blocks while the sweep is paused
        self.is_open = is_open
        # (endpoint, model, tokens in, tokens out) of every reply an endpoint served, the moment it
        # lands: what a sweep spends and checks its budget against. Cache hits and calls that
        # waited for an identical one in flight spend nothing.
        self.on_spent = on_spent
        # A retry's wait: the sweep's wakes up at once on pause / stop (asyncio.sleep outside one).
        self.backoff = backoff
        self.on_unhealthy = on_unhealthy  # an endpoint's breaker just opened
        self.on_healthy = on_healthy  # an open breaker closed: a call was answered
        # Set by a sweep: cache keys claimed in the store while other processes sweep it too.
        self.claims: CallClaims | None = None
        # Set by a sweep: whether runs of a configuration may still call (not paused, stopped or
        # redirected away), for the keys claimed ahead of their runs (see prefetch).
        self.wants: Callable[[str], bool] | None = None
        # Set by a sweep shared by workers: each call's cost reserved in the store before it goes out.
        self.budget: SharedBudget | None = None
        # A sweep with many rounds ahead: each endpoint's first calls leave a little apart
        # (engine/ramp.py), at most this many of them (0: at once).
        self.ramp_calls = ramp_calls
        self.limits: dict[str, AdaptiveLimit] = {}
        self.breakers: dict[str, Breaker] = {}
        self.policies: dict[str, Retry] = {}
        # Calls out and replies landed lately, shared with the other sweeps of this process that
        # share calls (a worker's chunks of one sweep: engine/sharing.py), or this sweep's own.
        self.flights = flights if flights is not None else Flights(recent_size)
        self._recent = self.flights.recent
        self._inflight = self.flights.inflight
        self._prefetched: dict[str, tuple[str, int, int, float]] = {}  # see prefetch(); taken once each
        self._prefetched_missing: set[str] = set()  # looked up by prefetch() and not found: not asked again
        # Off-loop stores: look-ups prefetch() started and nobody awaited yet, by key (see call()).
        self._prefetching: dict[str, asyncio.Task[dict[str, tuple[str, int, int, float]]]] = {}
        self.calls = 0
        self.hits = 0
        self.retries = 0

    def _limit(self, provider: Provider) -> AdaptiveLimit:
        lim = self.limits.get(provider.name)
        if lim is None:
            lim = self.limits[provider.name] = AdaptiveLimit(provider.max_concurrency)
            if self.ramp_calls:
                lim.ramp_up(min(lim.max, self.ramp_calls))
        return lim

    def breaker(self, provider: Provider) -> Breaker:
        found = self.breakers.get(provider.name)
        if found is None:
            found = self.breakers[provider.name] = Breaker(
                provider.name, threshold=provider.breaker_failures, cooldown=provider.breaker_cooldown,
                identity=provider.identity)
        return found

    def prefetch(self, keys: list[str], config_ids: list[str] | None = None) -> None:
        """Look ``keys`` up in the store now, in one query, for calls about to be made: on the loop;
        for a store read off the loop (see :class:`CacheReader`) in a worker thread, whose answer
        a call of one of ``keys`` awaits instead of a look-up of its own (one round trip to the
        server for LOOKAHEAD runs, made before most of them need it).

        While other processes sweep the store, the look-up is a claim of the same keys, awaited on
        the loop (:meth:`CallClaims.claim_ahead`): the calls then find their keys claimed instead
        of each loop turn claiming the few it missed. ``config_ids`` (each key's run's
        configuration) tell the claims which runs a pause, a stop or a redirect dropped."""
        wanted = [k for k in keys if k not in self._recent]
        if not wanted:
            return
        if len(self._prefetched) + len(self._prefetched_missing) + len(self._prefetching) > 8 * len(wanted) + 4096:
            self._prefetched.clear()  # left by runs that were dropped (a redirect, a stop)
            self._prefetched_missing.clear()
            self._prefetching.clear()
        if getattr(self.reader, "off_loop", False):  # scorers may read through a reader of their own
            claims = self.claims
            if claims is not None and claims.ahead_ready and config_ids is not None and self.wants is not None:
                lookup = asyncio.ensure_future(claims.claim_ahead(
                    wanted, functools.partial(self._still_wanted, dict(zip(keys, config_ids, strict=True)))))
                lookup.add_done_callback(_retrieved)  # as read_ahead's: its runs may all be dropped
            else:
                lookup = self.reader.read_ahead(wanted)
            for k in wanted:
                self._prefetching[k] = lookup
            return
        found = self.reader.store.cache_get_many(wanted)
        self._prefetched.update(found)
        self._prefetched_missing.update(k for k in wanted if k not in found)

    def _still_wanted(self, config_of: dict[str, str], key: str) -> bool:
        return self.wants is not None and self.wants(config_of[key])

    def claim_candidates(self, recent: int = 4096) -> tuple[list[str], list[str]]:
        """See :meth:`Flights.claim_candidates`."""
        return self.flights.claim_candidates(recent)

    def remember(self, key: str, value: tuple[str, int, int, float]) -> None:
        self.flights.remember(key, value)

    async def call(
        self,
        provider: Provider,
        model: str,
        messages: list[dict[str, str]],
        params: dict[str, Any],
        params_json: str | None = None,
        on_send: Callable[[], None] | None = None,
        messages_json: str | None = None,
        key: str | None = None,
    ) -> CallResult:
        """The reply to one chat call, from the cache when it can be.

        ``params_json`` and ``messages_json`` are ``canonical_json`` of params and messages, and
        ``key`` the call's key, if the caller has them. ``on_send`` is called once, before the call
        waits for an endpoint (its own request or an identical one in flight): the moment a run
        starts costing time, which a cache hit never does.
        """
        if key is None or messages_json is None:
            key, messages_json = call_key(provider.identity, model, messages, params_json or canonical_json(params), messages_json)
        hit = self._recent.get(key)
        looked_up = False  # by prefetch(), a moment ago, and not found
        if hit is None:
            hit = self._prefetched.pop(key, None)
            if hit is None and key in self._prefetched_missing:
                self._prefetched_missing.discard(key)
                looked_up = True
            elif hit is None and key in self._prefetching:
                hit, looked_up = await self._prefetched_off_loop(key)
        if hit is None:
            inflight = self._inflight.get(key)
            if inflight is None and not looked_up:
                hit = await self.reader.get(key)
                if hit is None:
                    # An identical call may have gone out while the look-up was answered (the
                    # judge of two configurations with the same output): wait for it, don't send twice.
                    hit = self._recent.get(key)
                    if hit is None:
                        inflight = self._inflight.get(key)
            if inflight is not None:
                if on_send is not None:
                    on_send()
                try:
                    resp = await asyncio.shield(inflight)
                finally:
                    # An identical call of this process's answered it (or failed: nothing will
                    # be cached, and its run does not call either): a claim made ahead for it goes.
                    if self.claims is not None:
                        self.claims.forgo(key, answered=inflight.done() and not inflight.cancelled()
                                          and inflight.exception() is None)
                self.hits += 1
                return CallResult(resp, True, key, messages_json)
        if hit is not None:
            if self.claims is not None:
                self.claims.forgo(key)  # answered without a call: a claim made ahead for it goes
            self.hits += 1
            text, tin, tout, lat = hit
            return CallResult(ChatResponse(text, tin, tout, lat), True, key, messages_json)
        if on_send is not None:
            on_send()

        fut: asyncio.Future[ChatResponse] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        claims = self.claims
        claimed = False
        ticket: Ticket | None = None
        try:
            if claims is not None and claims.covers(key):  # other processes sweep this store: see engine/claims.py
                shared = await claims.acquire(key, self.gate)
                if shared is not None:  # another process called it: a cache hit, paid by that process
                    self.hits += 1
                    self.remember(key, shared)
                    resp = ChatResponse(*shared)
                    fut.set_result(resp)
                    return CallResult(resp, True, key, messages_json)
                claimed = True
            budget = self.budget
            if budget is not None:  # reserved once it has its slot, settled before the slot is free (see _attempt)
                ticket = budget.ticket(provider.name, model, messages_json, params)
            resp = await self._call_with_retries(provider, ChatRequest(model, messages, params), ticket)
        except BaseException as exc:
            if ticket is not None:
                budget.release(ticket)  # type: ignore[union-attr]
            if claimed:
                claims.finished(key, ok=False)  # type: ignore[union-attr]
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: waiters (if any) get it through shield
            raise
        finally:
            self._inflight.pop(key, None)
        if claimed:
            claims.finished(key, ok=True)  # type: ignore[union-attr]
        fut.set_result(resp)
        if self.on_spent is not None:
            self.on_spent(provider.name, model, resp.tokens_in, resp.tokens_out)
        value = (resp.text, resp.tokens_in, resp.tokens_out, resp.latency_ms)
        self.remember(key, value)
        self.on_cache_entry(CacheEntry(key, provider.identity, model, {"messages": messages, "params": params},
                                       resp.text, resp.tokens_in, resp.tokens_out, resp.latency_ms))
        return CallResult(resp, False, key, messages_json)

    async def _prefetched_off_loop(self, key: str) -> tuple[tuple[str, int, int, float] | None, bool]:
        """``key``'s entry from the look-up prefetch() started, and whether it was looked up (False:
        the look-up failed, the call looks it up itself)."""
        lookup = self._prefetching.pop(key)
        try:
            found = await asyncio.shield(lookup)  # shared by other runs' keys: a cancelled run must not cancel it
        except Exception:  # noqa: BLE001 - a look-up of its own reports (or retries) it
            return None, False
        hit = found.get(key)
        return hit, hit is None

    async def _call_with_retries(self, provider: Provider, request: ChatRequest, ticket: Ticket | None = None) -> ChatResponse:
        limit = self._limit(provider)
        breaker = self.breaker(provider)
        policy = self._policy(provider)
        tries = 0

        def failed(error: Exception, attempt: int, wait: float | None) -> None:
            nonlocal tries
            tries = attempt + 1
            assert isinstance(error, ProviderError)  # _provider_verdict lets nothing else through
            self._failed(provider, request, limit, breaker, error)
            if wait is not None:
                self.retries += 1

        try:
            return await retrying(functools.partial(self._attempt, provider, request, limit, breaker, ticket), policy,
                                  sleep=self.backoff, on_failure=failed, classify=_provider_verdict)
        except ProviderError as error:
            suffix = f" (after {tries} attempts)" if tries > 1 else ""
            raise ProviderError(f"{error}{suffix}", retryable=False, status=error.status) from error

    def _policy(self, provider: Provider) -> Retry:
        found = self.policies.get(provider.name)
        if found is None:
            found = self.policies[provider.name] = Retry(attempts=provider.max_retries + 1,
                                                         retry_after_max=provider.retry_after_max)
        return found

    async def _attempt(self, provider: Provider, request: ChatRequest, limit: AdaptiveLimit, breaker: Breaker,
                       ticket: Ticket | None = None) -> ChatResponse:
        """One try, once the sweep is open, a slot is free and its cost is reserved (``ticket``,
        once for all tries); a failure is the caller's to count (after the slot is released)."""
        while True:
            await self.gate()
            async with self.global_limit:
                async with limit:
                    if not self.is_open():
                        continue  # paused while queued for a slot: hand it back, wait at the gate
                    if ticket is not None and not ticket.granted and not await self.budget.reserve(ticket):  # type: ignore[union-attr]
                        continue  # the budget is reached (the sweep paused or stops on it), or it paused: to the gate
                    in_flight = limit.in_use
                    wait = limit.ramp_delay()
                    if wait:
                        await asyncio.sleep(wait)
                        if not self.is_open():
                            continue  # paused meanwhile
                    self.calls += 1
                    resp = await provider.chat(request)
                    limit.on_success()
                    if limit.calibrating:
                        limit.observe(in_flight, resp.latency_ms)
                    if breaker.failures and breaker.on_success() and self.on_healthy is not None:
                        self.on_healthy(breaker)
                    if ticket is not None and self.budget.settle(ticket, provider.name, request.model,  # type: ignore[union-attr]
                                                                 resp.tokens_in, resp.tokens_out):
                        # It cost more than reserved: in the store before this slot carries another
                        # call (engine/budgets.py, "Settle / release").
                        await self.budget.write_now()  # type: ignore[union-attr]
                    return resp

    def _failed(self, provider: Provider, request: ChatRequest, limit: AdaptiveLimit, breaker: Breaker,
                error: ProviderError) -> None:
        """A failed attempt's lessons: fewer calls at once if the endpoint is overloaded, and its
        breaker told (which may pause the sweep)."""
        if error.rate_limited or error.timed_out or (error.status is not None and error.status >= 500):
            limit.on_overloaded()
        if breaker.on_failure(error) and self.on_unhealthy is not None:
            self.on_unhealthy(breaker, provider, request)

