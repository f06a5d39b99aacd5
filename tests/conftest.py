"""Shared fixtures: an in-process fake model, a real loopback fake server, a workbench on a fresh database file.

Engine tests use ``fake`` / ``make_fake_exp`` (no HTTP); tests about HTTP itself (faults over the
wire, connections, endpoints, the CLI in other processes) use ``server`` / ``make_exp``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import fake_experiment
from pg import pg_cluster, pg_url  # noqa: F401  (fixtures: a throwaway PostgreSQL, tests/pg.py)

import promptlooper as pl
from promptlooper.testing import FakeModel, FakeServer


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTLOOPER_DB", str(tmp_path / "default.db"))
    monkeypatch.delenv("MAX_TOKENS_PER_SWEEP", raising=False)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


@pytest.fixture
def fake() -> FakeModel:
    # A name of its own per test: fake:// endpoints are looked up by name in this process.
    return FakeModel(f"test-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "pl.db")


@pytest.fixture
def wb(db: str) -> Iterator[pl.Workbench]:
    w = pl.Workbench(db)
    yield w
    w.close()


@pytest.fixture
def make_exp(server: FakeServer):
    def make(**over: Any) -> pl.Experiment:
        return fake_experiment(server.base_url, **over)

    return make


@pytest.fixture
def make_fake_exp(fake: FakeModel):
    def make(**over: Any) -> pl.Experiment:
        return fake_experiment(fake.base_url, **over)

    return make


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from promptlooper.providers.embedded import available

    problem = available()
    if problem:
        skip = pytest.mark.skip(reason=f"embedded model unavailable: {problem}")
        for item in items:
            if "embedded" in item.keywords:
                item.add_marker(skip)


os.environ.setdefault("PROMPTLOOPER_LOCAL_THREADS", "1")
