"""Steering requests as PostgreSQL notifications: a queued request wakes its sweep at commit.

A sweep reads its steering queue (``take_steering``) every 250 ms whatever the backend; on
PostgreSQL, :meth:`~.store.PostgresStore.add_steering` also sends ``NOTIFY promptlooper_steering``
with the sweep's id in the same transaction (delivered when it commits), and the sweep's
:class:`Listener` — one connection of its own, in a daemon thread — wakes its poll at once. So
pause / stop / redirect from any machine take effect in milliseconds, and many idle workers need
not poll faster to get there.

A listening connection that is lost (a server restart, ``pg_terminate_backend``, a link down) is
made again, after 50 ms and then pauses doubling up to 2 s while the server stays away, and listens
again; once back it wakes the sweep, since a request committed meanwhile was announced to nobody.
Meanwhile the sweep's poll still reads its queue, only later.

Sharers of the call cache (engine/claims.py) are told the same way: a process that joins them, or
starts claiming, sends ``NOTIFY promptlooper_sharers`` with its claims tick, and every sharer's
claims tick at once instead of at their next heartbeat (a lone sweep's is 250 ms away: three
workers starting a sweep together waited for it, measured on benchmarks/workers.py b). And a sweep
queued for workers (or re-planned by a redirect) sends ``NOTIFY promptlooper_work``: idle workers
claim its chunks at once instead of at their next poll (``IDLE_POLL``, 250 ms).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg

from .connection import dead_peer_settings

CHANNEL = "promptlooper_steering"
SHARERS_CHANNEL = "promptlooper_sharers"
SHARERS_PAYLOAD = "changed"  # a sharer joined, or claims now
WORK_CHANNEL = "promptlooper_work"
WORK_PAYLOAD = "queued"  # chunks were queued for workers
RECONNECT_PAUSES = (0.05, 2.0)  # the first pause before listening again, and the longest (it doubles)


def notify(c: Any, sweep_id: str) -> None:
    """Inside a write transaction: wake the listeners of ``sweep_id`` when it commits."""
    c.execute("SELECT pg_notify(?, ?)", (CHANNEL, sweep_id))


def announce_sharers(conn: psycopg.Connection[Any]) -> None:
    """Inside a claims tick's transaction (store/postgres/ticks.py): wake the other sharers'
    claims when it commits."""
    conn.execute("SELECT pg_notify(%s, %s)", (SHARERS_CHANNEL, SHARERS_PAYLOAD))


def announce_work(c: Any) -> None:
    """Inside a write transaction: wake the idle workers when it commits."""
    c.execute("SELECT pg_notify(?, ?)", (WORK_CHANNEL, WORK_PAYLOAD))


class Listener:
    """``wake()`` on each notification of ``channel`` whose payload is ``payload`` (a sweep's id
    on the steering channel) until :meth:`stop`."""

    def __init__(self, url: str, payload: str, wake: Callable[[], None], *, channel: str = CHANNEL):
        self.url = url
        self.payload = payload
        self.channel = channel
        self.wake = wake
        self._stopped = threading.Event()
        # Connected and listening before this returns: a request queued afterwards is never missed.
        self.conn: psycopg.Connection[Any] | None = self._listen()
        self.thread = threading.Thread(target=self._run, name=f"promptlooper-{self.channel}", daemon=True)
        self.thread.start()

    def _listen(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.url, autocommit=True, **dead_peer_settings(self.url))
        try:
            conn.execute(f"LISTEN {self.channel}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _run(self) -> None:
        pause = RECONNECT_PAUSES[0]
        while not self._stopped.is_set():
            try:
                if self.conn is None:
                    self.conn = self._listen()
                    pause = RECONNECT_PAUSES[0]
                    self.wake()  # back: what was requested meanwhile was announced to nobody
                # A bounded wait, so that stop() is seen within half a second.
                for note in self.conn.notifies(timeout=0.5):
                    if note.payload == self.payload:
                        self.wake()
            except psycopg.Error:
                self._close()
                self._stopped.wait(pause)
                pause = min(pause * 2, RECONNECT_PAUSES[1])
        self._close()

    def _close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._stopped.set()
