"""Webhook deliveries: JSON POSTs of events from a durable outbox in the store.

Every event of a subscribed type is queued in an outbox in the store (see
:mod:`promptlooper.store.outbox`), whichever process raised it: a sweep, a CLI verb, the MCP server.
A :class:`Courier` in any process holding the store queues new events and sends due rows: each attempt has a timeout, a
failed one is tried again after the wait :mod:`promptlooper.retrying` gives (jittered exponential
backoff, a ``Retry-After`` honoured) until it succeeds or its retry budget (``MAX_ATTEMPTS``) is
spent, and every attempt is recorded. The courier runs in a thread of its own
(:class:`CourierThread`), with its own loop, connection and HTTP session, so a slow or failing
receiver never touches a sweep's loop. Events go out in id order while the receiver accepts them;
an event being retried does not hold back later ones (each body carries the event id).

Header values that hold secrets are never stored: a webhook stores ``{"Authorization": "ENV_VAR_NAME"}``
and the value is read from the environment at send time, and only for the origin the operator
granted that variable to (see :mod:`promptlooper.keys`); such a request follows no redirect, which
would carry the value elsewhere. Bodies are redacted of every configured key value.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import time
import warnings
from itertools import groupby
from typing import Any

import aiohttp

from .errors import EndpointError
from .keys import KeyGrants, key_value, redact
from .retrying import Retry, parse_retry_after, retryable_status
from .store import Store, open_store
from .store.outbox import Claimed

# The default retry budget of one event at one webhook: MAX_ATTEMPTS attempts, with full-jitter
# exponential backoff from BACKOFF seconds (doubling, at most BACKOFF_CAP) between them: a receiver
# may be down for a few minutes and still get every event. Each webhook may set its own.
MAX_ATTEMPTS = 8
BACKOFF = 1.0
BACKOFF_CAP = 300.0
TIMEOUT = 5.0  # seconds one attempt may take (connect, send, answer)
LEASE = 3 * TIMEOUT  # a claimed row is someone else's to retry if its claimer is gone this long
BATCH = 64  # rows claimed at once
POLL_EVERY = 0.25  # seconds between looks at the outbox while nothing is due
STORE_FAULTS = 10  # store errors in a row after which the courier's thread ends (about half a minute of them)
DRAIN_ON_CLOSE = 2.0  # seconds a closing workbench keeps delivering what is due; the rest stays queued


def add_webhook(store: Store, event_type: str, url: str, headers_env: dict[str, str] | None = None, *,
                max_attempts: int = MAX_ATTEMPTS, backoff: float = BACKOFF) -> str:
    """Register ``url`` for ``event_type`` ('*' for every event, 'run.*' for a family), each event
    tried up to ``max_attempts`` times, ``backoff`` seconds (doubling, jittered) apart."""
    if not re.match(r"^https?://", url):
        raise ValueError("webhook url must start with http:// or https://")
    for header, env in (headers_env or {}).items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", env):
            raise ValueError(f"header {header!r}: give the NAME of an environment variable holding its value, not the value")
    if not 1 <= max_attempts <= 100:
        raise ValueError(f"max_attempts must be 1..100 (got {max_attempts})")
    if not 0.01 <= backoff <= 3600:
        raise ValueError(f"backoff must be 0.01..3600 seconds (got {backoff})")
    return store.add_webhook(event_type, url, headers_env or {}, max_attempts, backoff)


def remove_webhook(store: Store, webhook_id: str) -> None:
    store.remove_webhook(webhook_id)


def body_of(event: dict[str, Any]) -> dict[str, Any]:
    # Events are redacted when written; this also covers those written before a key was known.
    return redact({"event": event["type"], "id": event["id"], "ts": event["ts"], "experiment_id": event["experiment_id"],
                   "experiment": event["experiment"], "data": event["payload"]})


class Courier:
    """Sends the due outbox rows of one store (call from one event loop)."""

    def __init__(self, store: Store):
        self.store = store
        self._grants = KeyGrants(store)
        self._session: aiohttp.ClientSession | None = None

    async def deliver_due(self) -> int:
        """Claim due rows and try each once; returns how many were tried."""
        rows = await asyncio.to_thread(self.store.claim_due_deliveries, limit=BATCH, lease=LEASE)
        if not rows:
            return 0
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT))
        # One receiver's rows in order, receivers side by side: a slow one delays only itself.
        by_hook = [list(group) for _, group in groupby(sorted(rows, key=lambda r: (r.webhook_id, r.id)), key=lambda r: r.webhook_id)]
        # Every receiver's rows finish (or fail) before a fault is raised: none is left running.
        for outcome in await asyncio.gather(*(self._send_in_order(group) for group in by_hook), return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
        return len(rows)

    async def _send_in_order(self, rows: list[Claimed]) -> None:
        # A row whose attempt could not be recorded (a store error) does not hold back the others:
        # they are claimed already, and would otherwise wait for their lease to end.
        fault: Exception | None = None
        for row in rows:
            try:
                await self._send(row)
            except Exception as exc:  # noqa: BLE001 - raised once the rest went
                fault = fault or exc
        if fault is not None:
            raise fault

    async def _send(self, row: Claimed) -> None:
        assert self._session is not None
        headers = {"Content-Type": "application/json"}
        status: int | None = None
        retry_after: float | None = None
        error: str | None = None
        refused = False
        for name, env in row.headers_env.items():
            if not os.environ.get(env):
                continue  # unset: delivered without that header, as always
            try:  # a header variable goes only to the origin the operator granted it to
                headers[name] = key_value(env, row.url, self._grants, f"webhook {row.url} header {name}")
            except EndpointError as exc:
                error, refused = str(exc), True
                break
        if error is None:
            try:
                # A redirect would carry the header values to an origin they were not granted to.
                async with self._session.post(row.url, json=body_of(row.event), headers=headers,
                                              allow_redirects=len(headers) == 1) as resp:
                    status = resp.status
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    await resp.read()
            except (TimeoutError, aiohttp.ClientError) as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if status is not None and not 200 <= status < 300:
                error = f"HTTP {status}"
                # A redirect not followed (secret headers) or a 4xx would answer the same again.
                refused = not retryable_status(status)
        attempts = row.attempts + 1
        # The retry waits as an outbox row due later, not in this loop: the policy gives the time.
        policy = Retry(attempts=row.max_attempts, base=row.backoff, cap=BACKOFF_CAP)
        if error is None:
            state, next_attempt = "delivered", None
        elif refused or attempts >= policy.attempts:
            state, next_attempt = "failed", None
        else:
            state, next_attempt = "pending", time.time() + policy.delay(attempts - 1, retry_after)
        await asyncio.to_thread(self.store.record_delivery_attempt, row, status=status, error=error, state=state,
                                next_attempt=next_attempt)

    async def deliver_until(self, deadline: float, *, stop_when_idle: bool = True) -> dict[str, Any]:
        """Deliver until nothing is pending (or due before ``deadline``, a ``time.monotonic()``)."""
        while True:
            if await self.deliver_due():
                continue
            summary = await asyncio.to_thread(self.store.webhook_summary)
            left = deadline - time.monotonic()
            if left <= 0 or (stop_when_idle and not summary["pending"]):
                return summary
            if summary["next_due"] is not None and summary["next_due"] - time.time() > left:
                return summary  # the next retry falls after the deadline: it stays queued
            await asyncio.sleep(min(POLL_EVERY, left))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class CourierThread:
    """A :class:`Courier` on a daemon thread of its own, for one workbench.

    It runs while something holds it (a sweep of this process, an MCP server) or rows are pending,
    and ends when the outbox is empty; :meth:`wake` starts it again. :meth:`close` lets it deliver
    what is due for a moment, and leaves the rest queued for whichever process comes next.
    """

    def __init__(self, store_path: str):
        self.store_path = store_path
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._holds = 0
        self._wake = threading.Event()
        self._closing_until: float | None = None  # time.monotonic() deadline once closing

    def hold(self) -> None:
        with self._lock:
            self._holds += 1
        self.wake()

    def release(self) -> None:
        with self._lock:
            self._holds = max(0, self._holds - 1)
        self._wake.set()

    def wake(self) -> None:
        """Look at the outbox now (start the thread if it ended)."""
        with self._lock:
            if self._closing_until is not None:
                return
            self._wake.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._main, name="promptlooper-webhooks", daemon=True)
                self._thread.start()

    def close(self, drain: float = DRAIN_ON_CLOSE) -> None:
        with self._lock:
            self._closing_until = time.monotonic() + drain
            thread = self._thread
        self._wake.set()
        if thread is not None:
            # Not longer: an attempt still under way then is abandoned with its process, and its
            # claim's lease runs out, so the next process holding the store sends it again.
            thread.join(drain + 1.0)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        store = open_store(self.store_path)
        courier = Courier(store)
        faults = 0  # store errors in a row
        try:
            while True:
                self._wake.clear()
                try:
                    turn = await self._turn(store, courier)
                except Exception as exc:  # noqa: BLE001 - the store away for a moment (locked, a lost connection)
                    # Nothing is lost: a row whose attempt was not recorded stays claimed until its
                    # lease ends, then goes again. Deliveries wait and go on, instead of waiting for
                    # the next wake; after STORE_FAULTS in a row the thread ends (a wake starts it).
                    faults += 1
                    if faults == 1:
                        warnings.warn(f"promptlooper: webhook deliveries paused by a store error ({type(exc).__name__}: "
                                      f"{exc}); trying again", stacklevel=1)
                    if faults >= STORE_FAULTS:
                        with self._lock:
                            self._thread = None
                        return
                    await self._sleep(min(POLL_EVERY * 2 ** faults, 5.0))
                    continue
                faults = 0
                if turn == "ended":
                    return
                if turn == "idle":
                    await self._sleep(POLL_EVERY)
        finally:
            await courier.aclose()
            with contextlib.suppress(Exception):
                store.close()

    async def _turn(self, store: Store, courier: Courier) -> str:
        """Deliver what is due: "again" if some was (look again at once), "idle" if none was,
        "ended" once closing delivered what it could, or nothing holds the thread and nothing is pending."""
        if await courier.deliver_due():
            return "again"
        with self._lock:
            closing, holds = self._closing_until, self._holds
        if closing is not None:
            await courier.deliver_until(closing)
            return "ended"
        if not holds:
            summary = await asyncio.to_thread(store.webhook_summary)
            with self._lock:
                if not summary["pending"] and not self._holds and not self._wake.is_set():
                    self._thread = None  # the next wake starts a new thread
                    return "ended"
        return "idle"

    async def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._wake.is_set() and time.monotonic() < end:
            await asyncio.sleep(0.02)


__all__ = ["MAX_ATTEMPTS", "Courier", "CourierThread", "add_webhook", "remove_webhook"]
