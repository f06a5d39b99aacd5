"""The webhook courier's thread through a fault of its store: it goes on delivering.

Seen in CI: the courier's thread died on "database is locked" while recording an attempt (two of
its threads met on one connection, store/plain_db.py); nothing was lost, but every other event
waited for something to wake the courier again. A store error now pauses deliveries for a moment
(and says so once), instead of ending them.
"""

from __future__ import annotations

import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from test_webhook_outbox import Receiver

from promptlooper import webhooks
from promptlooper.store import Store, open_store


def test_a_store_error_while_recording_an_attempt_pauses_deliveries_instead_of_ending_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = str(tmp_path / "hooks.db")
    receiver = Receiver()
    failed: list[int] = []

    def opened(path: str) -> Any:
        store = open_store(path)
        record = store.record_delivery_attempt

        def record_delivery_attempt(row: Any, **kwargs: Any) -> None:
            if not failed:
                failed.append(row.event["id"])
                raise sqlite3.OperationalError("database is locked")
            record(row, **kwargs)

        store.record_delivery_attempt = record_delivery_attempt
        return store

    monkeypatch.setattr(webhooks, "open_store", opened)
    store = Store(db)
    webhooks.add_webhook(store, "note", receiver.url)
    ids = [store.add_event(None, "note", {"i": i}) for i in range(5)]
    courier = webhooks.CourierThread(db)
    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            courier.hold()  # as a sweep of this process holds it; nothing wakes it after the fault
            deadline = time.monotonic() + 10
            while set(receiver.ok_ids()) < set(ids) and time.monotonic() < deadline:
                time.sleep(0.05)
            delivered = set(receiver.ok_ids())
            later = [store.add_event(None, "note", {"i": i}) for i in range(5, 8)]  # raised after the fault
            deadline = time.monotonic() + 10
            while set(receiver.ok_ids()) < set(later) | set(ids) and time.monotonic() < deadline:
                time.sleep(0.05)
            delivered_later = set(receiver.ok_ids())
            courier.release()
    finally:
        courier.close(drain=0.5)
        receiver.close()
    # The rows claimed with the one whose record failed went out at once, not after their lease.
    assert failed and delivered >= set(ids), (failed, delivered, ids)
    assert delivered_later >= set(later), (later, delivered_later)  # the courier went on
    assert [str(w.message) for w in said if "webhook deliveries paused" in str(w.message)] != []
    # The attempt whose record failed went out; its row stays claimed until its lease ends, and
    # is then sent again (receivers get at-least-once, with the event id to tell).
    assert store.webhook_summary()["pending"] >= 1
    store.close()
