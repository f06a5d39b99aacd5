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
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg

from .connection import dead_peer_settings

CHANNEL = "promptlooper_steering"
RECONNECT_PAUSES = (0.05, 2.0)  # the first pause before listening again, and the longest (it doubles)


def notify(c: Any, sweep_id: str) -> None:
    """Inside a write transaction: wake the listeners of ``sweep_id`` when it commits."""
    c.execute("SELECT pg_notify(?, ?)", (CHANNEL, sweep_id))


class Listener:
    """``wake()`` on each notification for ``sweep_id`` until :meth:`stop`."""

    def __init__(self, url: str, sweep_id: str, wake: Callable[[], None]):
        self.url = url
        self.sweep_id = sweep_id
        self.wake = wake
        self._stopped = threading.Event()
        # Connected and listening before this returns: a request queued afterwards is never missed.
        self.conn: psycopg.Connection[Any] | None = self._listen()
        self.thread = threading.Thread(target=self._run, name="promptlooper-steering-listener", daemon=True)
        self.thread.start()

    def _listen(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.url, autocommit=True, **dead_peer_settings(self.url))
        try:
            conn.execute(f"LISTEN {CHANNEL}")
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
                    if note.payload == self.sweep_id:
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
