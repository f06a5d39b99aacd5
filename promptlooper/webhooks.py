"""Webhook deliveries: JSON POSTs of events, with retries and backoff, never in the sweep's way.

The dispatcher reads events from the store (so it delivers exactly what was recorded, in order,
with their ids), one ordered queue per webhook, in its own task with its own HTTP session. Every
delivery attempt is recorded in ``webhook_deliveries``. Header values that hold secrets are never
stored: a webhook stores ``{"Authorization": "ENV_VAR_NAME"}`` and the value is read from the
environment at send time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import Any

import aiohttp

from .engine.limits import backoff_delay
from .errors import EndpointError
from .keys import KeyGrants, key_value, redact
from .store import Store, now_iso
from .store.store import new_id

MAX_ATTEMPTS = 5


def add_webhook(store: Store, event_type: str, url: str, headers_env: dict[str, str] | None = None) -> str:
    """Register ``url`` for ``event_type`` ('*' for every event, 'run.*' for a family)."""
    import re

    if not re.match(r"^https?://", url):
        raise ValueError("webhook url must start with http:// or https://")
    for header, env in (headers_env or {}).items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", env):
            raise ValueError(f"header {header!r}: give the NAME of an environment variable holding its value, not the value")
    wid = new_id()
    with store.cx.write() as c:
        c.execute("INSERT INTO webhooks (id, event_type, url, headers_env, is_active, created_at) VALUES (?,?,?,?,1,?)",
                  (wid, event_type, url, json.dumps(headers_env or {}), now_iso()))
    return wid


def webhooks(store: Store) -> list[dict[str, Any]]:
    rows = list(store.db.query("SELECT * FROM webhooks ORDER BY created_at"))
    for r in rows:
        r["headers_env"] = json.loads(r["headers_env"] or "{}")
    return rows


def remove_webhook(store: Store, webhook_id: str) -> None:
    with store.cx.write() as c:
        c.execute("DELETE FROM webhooks WHERE id LIKE ?", (webhook_id + "%",))


def deliveries(store: Store, webhook_id: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM webhook_deliveries" + (" WHERE webhook_id = ?" if webhook_id else "") + " ORDER BY id"
    return list(store.db.query(sql, [webhook_id] if webhook_id else []))


def _matches(pattern: str, etype: str) -> bool:
    return pattern in ("*", etype) or (pattern.endswith("*") and etype.startswith(pattern[:-1]))


class Dispatcher:
    """Delivers the events of one experiment to every matching active webhook."""

    def __init__(self, store_path: str, experiment_id: str, experiment_key: str):
        self.store_path = store_path
        self.experiment_id = experiment_id
        self.experiment_key = experiment_key
        self._last_id = 0
        self._queues: dict[str, asyncio.Queue[dict[str, Any] | None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._hooks: list[dict[str, Any]] = []
        self.store: Store | None = None
        self._grants: KeyGrants | None = None

    async def start(self) -> bool:
        self.store = Store(self.store_path)
        self._grants = KeyGrants(self.store)
        self._hooks = [h for h in await asyncio.to_thread(webhooks, self.store) if h["is_active"]]
        if not self._hooks:
            return False
        with self.store.cx.read() as c:
            self._last_id = c.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        for hook in self._hooks:
            q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
            self._queues[hook["id"]] = q
            self._tasks.append(asyncio.ensure_future(self._deliver_loop(hook, q)))
        return True

    async def pump(self) -> None:
        """Queue the events recorded since the last pump (called after each store batch)."""
        if not self._hooks or self.store is None:
            return
        events = await asyncio.to_thread(self.store.events, self.experiment_id, None, self._last_id)
        for event in events:
            self._last_id = max(self._last_id, event["id"])
            for hook in self._hooks:
                if _matches(hook["event_type"], event["type"]):
                    self._queues[hook["id"]].put_nowait(event)

    async def close(self, drain_timeout: float = 10.0) -> None:
        if self._hooks:
            await self.pump()
            for q in self._queues.values():
                q.put_nowait(None)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), drain_timeout)
            for t in self._tasks:
                t.cancel()
        if self._session is not None:
            await self._session.close()
        if self.store is not None:
            self.store.close()

    async def _deliver_loop(self, hook: dict[str, Any], q: asyncio.Queue[dict[str, Any] | None]) -> None:
        while True:
            event = await q.get()
            if event is None:
                return
            await self._deliver(hook, event)

    async def _deliver(self, hook: dict[str, Any], event: dict[str, Any]) -> None:
        assert self._session is not None and self.store is not None
        # Events are redacted when written; this also covers those written before a key was known.
        body = redact({"event": event["type"], "id": event["id"], "ts": event["ts"], "experiment_id": self.experiment_id,
                       "experiment": self.experiment_key, "data": event["payload"]})
        headers = {"Content-Type": "application/json"}
        for name, env in hook["headers_env"].items():
            if not os.environ.get(env):
                continue  # unset: delivered without that header, as always
            try:  # a header variable goes only to the origin the operator granted it to
                headers[name] = key_value(env, hook["url"], self._grants, f"webhook {hook['url']} header {name}")
            except EndpointError as exc:
                await asyncio.to_thread(self._record, hook["id"], event["id"], 1, None, str(exc))
                return
        for attempt in range(1, MAX_ATTEMPTS + 1):
            status: int | None = None
            error: str | None = None
            try:
                # A redirect would carry the header values to an origin they were not granted to.
                async with self._session.post(hook["url"], json=body, headers=headers, allow_redirects=len(headers) == 1) as resp:
                    status = resp.status
                    await resp.read()
            except (TimeoutError, aiohttp.ClientError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            ok = status is not None and 200 <= status < 300
            await asyncio.to_thread(self._record, hook["id"], event["id"], attempt, status, error)
            # A redirect not followed (secret headers) or a 4xx would answer the same again.
            if ok or (status is not None and 300 <= status < 500 and status != 429):
                return
            await asyncio.sleep(backoff_delay(attempt - 1, base=0.2, cap=5.0))

    def _record(self, webhook_id: str, event_id: int, attempt: int, status: int | None, error: str | None) -> None:
        assert self.store is not None
        with self.store.cx.write() as c:
            c.execute("INSERT INTO webhook_deliveries (webhook_id, event_id, attempt, status, error, ts) VALUES (?,?,?,?,?,?)",
                      (webhook_id, event_id, attempt, status, error, now_iso()))
