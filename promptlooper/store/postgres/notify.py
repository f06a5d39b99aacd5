"""Steering requests as PostgreSQL notifications: a queued request wakes its sweep at commit.

A sweep reads its steering queue (``take_steering``) every 250 ms whatever the backend; on
PostgreSQL, :meth:`~.store.PostgresStore.add_steering` also sends ``NOTIFY promptlooper_steering``
with the sweep's id in the same transaction (delivered when it commits), and the sweep's
:class:`Listener` — one connection of its own, in a daemon thread — wakes its poll at once. So
pause / stop / redirect from any machine take effect in milliseconds, and many idle workers need
not poll faster to get there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg

from .connection import dead_peer_settings

CHANNEL = "promptlooper_steering"


def notify(c: Any, sweep_id: str) -> None:
    """Inside a write transaction: wake the listeners of ``sweep_id`` when it commits."""
    c.execute("SELECT pg_notify(?, ?)", (CHANNEL, sweep_id))


class Listener:
    """``wake()`` on each notification for ``sweep_id`` until :meth:`stop`."""

    def __init__(self, url: str, sweep_id: str, wake: Callable[[], None]):
        self.sweep_id = sweep_id
        self.wake = wake
        self._stopped = threading.Event()
        # Connected and listening before this returns: a request queued afterwards is never missed.
        self.conn = psycopg.connect(url, autocommit=True, **dead_peer_settings(url))
        self.conn.execute(f"LISTEN {CHANNEL}")
        self.thread = threading.Thread(target=self._run, name="promptlooper-steering-listener", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self._stopped.is_set():
                # A bounded wait, so that stop() is seen within half a second.
                for note in self.conn.notifies(timeout=0.5):
                    if note.payload == self.sweep_id:
                        self.wake()
        except psycopg.Error:
            pass  # the server went away: the sweep still polls its queue, only later
        finally:
            self.conn.close()

    def stop(self) -> None:
        self._stopped.set()
