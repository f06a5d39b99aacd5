"""Shared fixtures: a real loopback fake server and a workbench on a fresh database file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import promptlooper as pl
from promptlooper.testing import FakeServer


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTLOOPER_DB", str(tmp_path / "default.db"))
    monkeypatch.delenv("MAX_TOKENS_PER_SWEEP", raising=False)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "pl.db")


@pytest.fixture
def wb(db: str) -> Iterator[pl.Workbench]:
    w = pl.Workbench(db)
    yield w
    w.close()


def fake_experiment(base_url: str, name: str = "fake-exp", **over: Any) -> pl.Experiment:
    """A small experiment on the fake endpoint: 2 temperatures x 2 personas x 3 samples."""
    data: dict[str, Any] = {
        "project": "tests",
        "name": name,
        "samples": [
            {"question": "capital of France", "reference": "paris"},
            {"question": "capital of Japan", "reference": "tokyo"},
            {"question": "capital of Italy", "reference": "rome"},
        ],
        "stages": [{"name": "answer", "model": "fake/fake-small", "system": "{{ persona }}", "user": "Q: {{ question }}",
                    "params": {"max_tokens": 8}}],
        "space": {"answer.temperature": [0.0, 0.5], "persona": ["terse", "verbose"]},
        "scorers": [{"name": "length", "max_words": 6}, {"name": "keyword", "words": ["alpha", "bravo"], "weight": 2}],
        "endpoints": {"fake": {"base_url": base_url, "max_retries": 8, "max_concurrency": 16}},
        "concurrency": 8,
    }
    data.update(over)
    if "persona" not in data["space"] and "stages" not in over:
        data["stages"][0].pop("system")
    return pl.Experiment.model_validate(data)


@pytest.fixture
def make_exp(server: FakeServer):
    def make(**over: Any) -> pl.Experiment:
        return fake_experiment(server.base_url, **over)

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
