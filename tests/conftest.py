"""Shared fixtures: an in-process fake model, a real loopback fake server, a workbench on a fresh store.

Engine tests use ``fake`` / ``make_fake_exp`` (no HTTP); tests about HTTP itself (faults over the
wire, connections, endpoints, the CLI in other processes) use ``server`` / ``make_exp``.

Backends: ``db`` is the location a user would pass as ``--db`` / ``Workbench(db)``. A test module
marked ``pytestmark = pytest.mark.both_backends`` runs each of its tests that use ``db`` (or ``wb``)
twice, on a SQLite file and on a fresh PostgreSQL database of the session's cluster (tests/pg.py),
as ``test_x[sqlite]`` and ``test_x[postgresql]``; a test that is about SQLite itself (its file, its
writer process) is marked ``sqlite_only``. Everything else stays on SQLite, so the PostgreSQL runs
cost only what the store, engine, steering, MCP and dashboard tests take a second time.
Module-scoped fixtures (one sweep read by many tests) take ``new_store(name)`` instead of ``db``:
the module's tests then run once per backend, each backend's sweep made once.
``--backends=sqlite`` (or ``$PROMPTLOOPER_TEST_BACKENDS``) narrows the marked modules to one
backend while working; CI runs both, in the README's one pytest command.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from backends import open_backend  # noqa: F401  (fixture: a fresh store of each backend, tests/backends.py)
from helpers import fake_experiment
from pg import admin, pg_cluster, pg_url  # noqa: F401  (fixtures: a throwaway PostgreSQL, tests/pg.py)

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


BACKENDS = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--backends", default=os.environ.get("PROMPTLOOPER_TEST_BACKENDS", ",".join(BACKENDS)),
                     help="store backends the both_backends tests run on, comma-separated (default: sqlite,postgresql)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_backends: the module's tests that use `db` run on SQLite and PostgreSQL")
    config.addinivalue_line("markers", "sqlite_only: about SQLite itself (its file, its writer process): SQLite only")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not {"backend", "module_backend"} & set(metafunc.fixturenames):
        return
    if not metafunc.definition.get_closest_marker("both_backends"):
        return
    if metafunc.definition.get_closest_marker("sqlite_only"):
        return
    chosen = [b.strip() for b in metafunc.config.getoption("backends").split(",") if b.strip()]
    unknown = set(chosen) - set(BACKENDS)
    if unknown:
        raise pytest.UsageError(f"--backends: unknown {sorted(unknown)}; choose from {', '.join(BACKENDS)}")
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", chosen, indirect=True)
    if "module_backend" in metafunc.fixturenames:
        metafunc.parametrize("module_backend", chosen, indirect=True, scope="module")


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The store backend of this test: its parameter under ``both_backends``, otherwise SQLite."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where this test's store lives: a SQLite file, or a fresh PostgreSQL database's URL."""
    if backend == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return str(tmp_path / "pl.db")


@pytest.fixture(scope="module")
def module_backend(request: pytest.FixtureRequest) -> str:
    """``backend`` for a module's shared fixtures (one sweep read by many tests)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="module")
def new_store(module_backend: str, tmp_path_factory: pytest.TempPathFactory,
              request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
    """``new_store(name)``: the location of a fresh store for a module-scoped fixture, on the
    module's backend (a file, or a PostgreSQL database dropped when the module's tests end)."""
    with contextlib.ExitStack() as made:
        def make(name: str) -> str:
            if module_backend == "postgresql":
                return str(made.enter_context(request.getfixturevalue("pg_cluster").database()))
            return str(tmp_path_factory.mktemp(name) / f"{name}.db")

        yield make


@pytest.fixture
def stored_bytes(db: str, request: pytest.FixtureRequest) -> Callable[[], dict[str, bytes]]:
    """Everything the test's store holds, as bytes, by where it lies: the SQLite file and its
    sidecars, or a ``pg_dump`` of the PostgreSQL database (to show a secret never reaches it)."""
    def read() -> dict[str, bytes]:
        if db.startswith("postgresql://"):
            return {"pg_dump": request.getfixturevalue("pg_cluster").dump(db)}
        return {str(path): path.read_bytes() for path in Path(db).parent.glob(Path(db).name + "*")}

    return read


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
