"""Change notifications: live views of a PostgreSQL store wake on a commit instead of polling.

Every write that a view shows sends ``NOTIFY promptlooper_changes`` with the experiment's id in
its own transaction (so it is delivered when, and only if, it commits): a sweep's result batch,
a sweep row changing (start, progress, pause, end), a steering request, an event (ratings,
decisions, human requests), a note (for every experiment of its project). What every view may
show — prices (costs) and endpoints — is announced as ``*``, which wakes every subscriber. A view
subscribes to one experiment's id, or to every experiment (``None``: the overview).

:class:`ChangeFeed` is one listening connection per database per process, in a daemon thread,
shared by all the views of that process (a dashboard page has half a dozen): subscribing costs
no connection. If the connection is lost (a server restart), the feed reconnects once a second
and, when it is back, wakes every subscriber, since changes committed meanwhile were not
announced; so a view is never left behind, and an idle view makes no query at all.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable
from typing import Any

import psycopg

CHANNEL = "promptlooper_changes"
EVERYTHING = "*"  # the payload of a change every view may show
RECONNECT_EVERY = 1.0  # seconds between attempts while the server is unreachable


def notify_changes(conn: psycopg.Connection[Any], experiment_ids: Iterable[str | None]) -> None:
    """Inside a write transaction: announce, at commit, that these experiments changed.
    (PostgreSQL folds identical notifications of one transaction into one.)"""
    ids = sorted({e for e in experiment_ids if e})
    if ids:
        conn.execute("SELECT pg_notify(%s, e) FROM unnest(%s::text[]) AS e", (CHANNEL, ids))


def notify_sweep_changed(conn: psycopg.Connection[Any], sweep_id: str) -> None:
    """Inside a write transaction: announce a change of the sweep's experiment."""
    conn.execute("SELECT pg_notify(%s, experiment_id) FROM sweeps WHERE id = %s", (CHANNEL, sweep_id))


def notify_project_changed(conn: psycopg.Connection[Any], project_id: str) -> None:
    """Inside a write transaction: announce a change of every experiment of the project."""
    conn.execute("SELECT pg_notify(%s, id) FROM experiments WHERE project_id = %s", (CHANNEL, project_id))


def notify_everything_changed(conn: psycopg.Connection[Any]) -> None:
    """Inside a write transaction: wake every view (prices, endpoints)."""
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, EVERYTHING))


class ChangeFeed:
    """One LISTEN connection to a database, dispatching its notifications to subscribers."""

    _feeds: dict[str, ChangeFeed] = {}
    _feeds_lock = threading.Lock()

    @classmethod
    def listen(cls, url: str, experiment_id: str | None, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake()`` (from the feed's thread) after each commit that changes ``experiment_id``
        (any experiment for None) in the database at ``url``. Returns once listening, so no later
        commit is missed; the returned function unsubscribes."""
        with cls._feeds_lock:
            feed = cls._feeds.get(url)
            if feed is None:
                feed = cls._feeds[url] = cls(url)
            stop = feed._subscribe(experiment_id, wake)
        # Bounded: a server that cannot be reached must not hang the view's start; the view is
        # woken when the feed gets through (see _run).
        feed._listening.wait(5)
        return stop

    def __init__(self, url: str):
        self.url = url
        self._subscribers: dict[int, tuple[str | None, Callable[[], None]]] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None

    def _subscribe(self, experiment_id: str | None, wake: Callable[[], None]) -> Callable[[], None]:
        with self._lock:
            token = next(self._ids)
            self._subscribers[token] = (experiment_id, wake)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="promptlooper-change-feed", daemon=True)
                self._thread.start()
        return lambda: self._unsubscribe(token)

    def _unsubscribe(self, token: int) -> None:
        with self._feeds_lock, self._lock:
            self._subscribers.pop(token, None)
            if self._subscribers:
                return
            # The last one: the thread ends within half a second; the next subscriber starts a new feed.
            self._stopped.set()
            if self._feeds.get(self.url) is self:
                del self._feeds[self.url]

    def _wake(self, experiment_id: str | None) -> None:
        with self._lock:
            targets = [wake for eid, wake in self._subscribers.values() if experiment_id is None or eid in (None, experiment_id)]
        for wake in targets:
            try:
                wake()
            except Exception:  # noqa: BLE001 - one view gone wrong (its loop closed) must not deafen the others
                pass

    def _run(self) -> None:
        first = True
        while not self._stopped.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    if not first:
                        self._wake(None)  # back after a loss: what changed meanwhile was not announced
                    first = False
                    while not self._stopped.is_set():
                        # A bounded wait, so that the feed's end is seen within half a second.
                        for note in conn.notifies(timeout=0.5):
                            self._wake(None if note.payload == EVERYTHING else note.payload)
            except psycopg.Error:
                self._listening.clear()
                first = False
                self._stopped.wait(RECONNECT_EVERY)

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

