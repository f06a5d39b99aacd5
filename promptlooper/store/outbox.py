"""Webhooks and their outbox: the SQL behind :mod:`promptlooper.webhooks` (part of :class:`~promptlooper.store.Store`).

Each webhook has a cursor, the last event id it has queued. A deliverer, in any process, first
*queues* the events past every cursor that match the webhook's pattern ('*', an exact type, or a
family such as 'run.*') and moves the cursors, in one write transaction; then it *claims* due rows
for a lease (so two processes holding the store never send the same row at once), and records each
attempt: delivered, tried again at ``next_attempt``, or failed for good once the webhook's retry
budget is spent. Each attempt is also kept in ``webhook_deliveries`` (the history).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from .batchwriter import now_iso
from .db import Queries
from .records import new_id


@dataclass(frozen=True)
class Claimed:
    """One outbox row claimed for delivery, with what the POST needs."""

    id: int
    webhook_id: str
    url: str
    headers_env: dict[str, str]
    attempts: int  # attempts made before this one
    max_attempts: int  # the webhook's retry budget
    backoff: float  # the webhook's backoff base, in seconds
    event: dict[str, Any]  # id, ts, type, experiment_id, experiment ("project/name" or None), payload


_MATCHES = ("(w.event_type = '*' OR w.event_type = e.type OR (substr(w.event_type, -1) = '*'"
            " AND substr(e.type, 1, length(w.event_type) - 1) = substr(w.event_type, 1, length(w.event_type) - 1)))")


def _queue_new_events(c: Any, now: float) -> None:
    """Queue the events past each active webhook's cursor that match it; move the cursors."""
    last = c.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
    c.execute(
        "INSERT OR IGNORE INTO webhook_outbox (webhook_id, event_id, next_attempt, created_at)"
        " SELECT w.id, e.id, ?, e.ts FROM webhooks w JOIN events e ON e.id > w.last_event_id AND e.id <= ?"
        f" WHERE w.is_active = 1 AND w.last_event_id < ? AND {_MATCHES} ORDER BY e.id", (now, last, last))
    c.execute("UPDATE webhooks SET last_event_id = ? WHERE is_active = 1 AND last_event_id < ?", (last, last))


class Outbox(Queries):
    """Webhooks, their outbox and delivery history."""

    def add_webhook(self, event_type: str, url: str, headers_env: dict[str, str], max_attempts: int, backoff: float) -> str:
        """A new webhook; it receives the events recorded from now on."""
        wid = new_id()
        with self.cx.write() as c:
            c.execute("INSERT INTO webhooks (id, event_type, url, headers_env, is_active, created_at, max_attempts, backoff, last_event_id)"
                      " VALUES (?,?,?,?,1,?,?,?,(SELECT COALESCE(MAX(id), 0) FROM events))",
                      (wid, event_type, url, json.dumps(headers_env), now_iso(), max_attempts, backoff))
        return wid

    def webhooks(self) -> list[dict[str, Any]]:
        rows = list(self.db.query("SELECT * FROM webhooks ORDER BY created_at"))
        for r in rows:
            r["headers_env"] = json.loads(r["headers_env"] or "{}")
        return rows

    def has_active_webhooks(self) -> bool:
        with self.cx.read() as c:
            return c.execute("SELECT 1 FROM webhooks WHERE is_active = 1 LIMIT 1").fetchone() is not None

    def remove_webhook(self, webhook_id: str) -> int:
        with self.cx.write() as c:
            ids = [r[0] for r in c.execute("SELECT id FROM webhooks WHERE id LIKE ?", (webhook_id + "%",))]
            c.executemany("DELETE FROM webhook_outbox WHERE webhook_id = ?", [(i,) for i in ids])
            c.executemany("DELETE FROM webhooks WHERE id = ?", [(i,) for i in ids])
            return len(ids)

    def webhook_deliveries(self, webhook_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM webhook_deliveries" + (" WHERE webhook_id = ?" if webhook_id else "") + " ORDER BY id"
        return list(self.db.query(sql, [webhook_id] if webhook_id else []))

    def webhook_outbox(self, state: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM webhook_outbox" + (" WHERE state = ?" if state else "") + " ORDER BY id"
        return list(self.db.query(sql, [state] if state else []))

    def claim_due_deliveries(self, *, limit: int, lease: float) -> list[Claimed]:
        """Queue new events, then claim due, unclaimed pending rows (oldest first) for ``lease`` seconds."""
        now = time.time()
        with self.cx.read() as c:  # the common case, nothing new and nothing due: a read, no write lock taken
            new_events = c.execute("SELECT 1 FROM webhooks WHERE is_active = 1 AND last_event_id <"
                                   " (SELECT COALESCE(MAX(id), 0) FROM events) LIMIT 1").fetchone()
            if new_events is None and c.execute(
                    "SELECT 1 FROM webhook_outbox WHERE state = 'pending' AND next_attempt <= ?"
                    " AND (claimed_until IS NULL OR claimed_until < ?) LIMIT 1", (now, now)).fetchone() is None:
                return []
        with self.cx.write() as c:
            if new_events is not None:
                _queue_new_events(c, now)
            rows = c.execute(
                "SELECT o.id, o.webhook_id, w.url, w.headers_env, o.attempts, w.max_attempts, w.backoff, e.id, e.ts, e.type,"
                " e.experiment_id, e.payload, p.name || '/' || x.name"
                " FROM webhook_outbox o JOIN webhooks w ON w.id = o.webhook_id JOIN events e ON e.id = o.event_id"
                " LEFT JOIN experiments x ON x.id = e.experiment_id LEFT JOIN projects p ON p.id = x.project_id"
                " WHERE o.state = 'pending' AND o.next_attempt <= ? AND (o.claimed_until IS NULL OR o.claimed_until < ?)"
                " ORDER BY o.id LIMIT ?", (now, now, limit)).fetchall()
            c.executemany("UPDATE webhook_outbox SET claimed_until = ? WHERE id = ?", [(now + lease, r[0]) for r in rows])
        return [Claimed(id=r[0], webhook_id=r[1], url=r[2], headers_env=json.loads(r[3] or "{}"), attempts=r[4],
                        max_attempts=r[5], backoff=r[6],
                        event={"id": r[7], "ts": r[8], "type": r[9], "experiment_id": r[10],
                               "payload": json.loads(r[11]) if r[11] else {}, "experiment": r[12]})
                for r in rows]

    def record_delivery_attempt(self, row: Claimed, *, status: int | None, error: str | None, state: str,
                       next_attempt: float | None = None) -> None:
        """One attempt's outcome: ``state`` is delivered, failed (budget spent) or pending (tried again)."""
        ts = now_iso()
        with self.cx.write() as c:
            c.execute("INSERT INTO webhook_deliveries (webhook_id, event_id, attempt, status, error, ts) VALUES (?,?,?,?,?,?)",
                      (row.webhook_id, row.event["id"], row.attempts + 1, status, error, ts))
            c.execute(
                "UPDATE webhook_outbox SET attempts = attempts + 1, state = ?, last_status = ?, last_error = ?, claimed_until = NULL,"
                " next_attempt = COALESCE(?, next_attempt), finished_at = ? WHERE id = ?",
                (state, status, error, next_attempt, ts if state != "pending" else None, row.id))

    def webhook_summary(self) -> dict[str, Any]:
        """Rows by state (events not queued yet count as pending), and when the next pending row is
        due (epoch seconds, or None)."""
        with self.cx.read() as c:
            counts = dict(c.execute("SELECT state, COUNT(*) FROM webhook_outbox GROUP BY state").fetchall())
            next_due = c.execute("SELECT MIN(next_attempt) FROM webhook_outbox WHERE state = 'pending'").fetchone()[0]
            if c.execute("SELECT 1 FROM webhooks WHERE is_active = 1 AND last_event_id <"
                         " (SELECT COALESCE(MAX(id), 0) FROM events) LIMIT 1").fetchone() is not None:
                counts["pending"] = counts.get("pending", 0) + 1  # at least one, not queued yet: due now
                next_due = time.time()
        return {"pending": counts.get("pending", 0), "delivered": counts.get("delivered", 0), "failed": counts.get("failed", 0),
                "next_due": next_due}
