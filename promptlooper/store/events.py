"""Events (the timeline, widgets and webhooks read them), endpoints and settings.

Part of :class:`~promptlooper.store.Store`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..errors import NotFoundError
from ..keys import redact
from . import batchwriter
from .batchwriter import now_iso
from .db import Queries
from .records import dumps


class Events(Queries):
    """Events, saved endpoints and settings."""

    # ------------------------------------------------------------------ events
    def _insert_events(self, c: Any, events: Sequence[tuple[str, str | None, str, dict[str, Any]]], ts: str) -> list[int]:
        return batchwriter.insert_events(c, [(ev_ts, eid, etype, dumps(payload)) for ev_ts, eid, etype, payload in events], ts)

    def add_event(self, experiment_id: str | None, etype: str, payload: dict[str, Any] | None = None) -> int:
        with self.cx.write() as c:
            # Events outside a sweep carry free text (a reason, a context): no key value is stored.
            return self._insert_events(c, [(now_iso(), experiment_id, etype, redact(payload or {}))], now_iso())[0]

    def events(self, experiment_id: str | None = None, types: Sequence[str] | None = None, after_id: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM events WHERE id > ?"
        args: list[Any] = [after_id]
        if experiment_id:
            sql += " AND experiment_id = ?"
            args.append(experiment_id)
        if types:
            clauses = []
            for t in types:  # "run.*" selects a family
                if t.endswith("*"):
                    clauses.append("type LIKE ?")
                    args.append(t[:-1] + "%")
                else:
                    clauses.append("type = ?")
                    args.append(t)
            sql += " AND (" + " OR ".join(clauses) + ")"
        sql += " ORDER BY id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        rows = list(self.db.query(sql, args))
        for r in rows:
            r["payload"] = json.loads(r["payload"]) if r["payload"] else {}
        return rows

    # ------------------------------------------------------------------ endpoints & settings
    def save_endpoint(self, name: str, spec: dict[str, Any]) -> None:
        ts = now_iso()
        with self.cx.write() as c:
            c.execute(
                "INSERT INTO endpoints (name, base_url, api_key_env, max_concurrency, timeout, max_retries, prices, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET base_url=excluded.base_url, api_key_env=excluded.api_key_env,"
                " max_concurrency=excluded.max_concurrency, timeout=excluded.timeout, max_retries=excluded.max_retries,"
                " prices=excluded.prices, updated_at=excluded.updated_at",
                (name, spec["base_url"], spec.get("api_key_env"), spec.get("max_concurrency", 16), spec.get("timeout", 60.0),
                 spec.get("max_retries", 6), dumps(spec.get("prices", {})), ts, ts),
            )

    def endpoints(self) -> dict[str, dict[str, Any]]:
        out = {}
        for r in self.db.query("SELECT * FROM endpoints ORDER BY name"):
            r["prices"] = json.loads(r["prices"] or "{}")
            out[r["name"]] = r
        return out

    def delete_endpoint(self, name: str) -> None:
        with self.cx.write() as c:
            if c.execute("DELETE FROM endpoints WHERE name = ?", (name,)).rowcount == 0:
                raise NotFoundError(f"no endpoint {name!r}")

    def get_setting(self, key: str, default: Any = None) -> Any:
        rows = list(self.db.query("SELECT value FROM settings WHERE key = ?", [key]))
        return json.loads(rows[0]["value"]) if rows else default

    def set_setting(self, key: str, value: Any) -> None:
        with self.cx.write() as c:
            c.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, dumps(value)))
