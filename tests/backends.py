"""The ``open_backend`` fixture: one fresh store of each backend, for tests held to the store's interface.

Parametrized by backend name, as optuna keeps its storage tests: a SQLite file in the test's
folder, and a fresh database of the session's throwaway PostgreSQL cluster (tests/pg.py). The
fixture yields a function that opens a store on that database (``readonly=True`` for a reader),
as many times as a test needs (two processes' stores, a writer and a reader); every store it
opened is closed after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from promptlooper.store import Store
from promptlooper.store.backend import StoreBackend
from promptlooper.store.postgres import PostgresStore

Opener = Callable[..., StoreBackend]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """A function opening one fresh database of this backend (``readonly=True`` for a reader)."""
    opened: list[StoreBackend] = []
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else ""

    def open_store(readonly: bool = False) -> StoreBackend:
        if request.param == "sqlite":
            store: StoreBackend = Store(tmp_path / "store.db", readonly=readonly)
        else:
            store = PostgresStore(url, readonly=readonly)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()
