"""Fixtures for the widgets' Python side: a finished experiment on the fake server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import promptlooper as pl


@pytest.fixture(autouse=True)
def _not_readonly(monkeypatch: pytest.MonkeyPatch) -> None:
    # the views default to read-only under Voila / PROMPTLOOPER_READONLY: tests choose explicitly
    for name in ("PROMPTLOOPER_READONLY", "VOILA_BASE_URL", "VOILA_SERVER_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def done(wb: pl.Workbench, make_exp: Any) -> Iterator[tuple[pl.Workbench, pl.Experiment]]:
    """A workbench with one finished experiment (4 configurations x 3 samples)."""
    exp = make_exp()
    progress = wb.run(exp)
    assert (progress.status, progress.done, progress.failed) == ("completed", 12, 0), progress.as_dict()
    assert len(wb.leaderboard(exp.key)) == 4, wb.leaderboard(exp.key)
    yield wb, exp


@pytest.fixture
def fake_handle() -> type:
    """A stand-in SweepHandle class (progress, listeners called from a thread, done())."""
    return FakeHandle


class FakeProgress:
    def __init__(self, total: int = 100):
        self.status, self.total, self.done = "running", total, 0

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "total": self.total, "done": self.done, "tokens": self.done * 10, "cost": 0.0,
                "cache_hit_rate": 0.0, "best_score": None, "best_config_id": None}

    @property
    def eta(self) -> float:
        return 1.0


class FakeHandle:
    """What LiveSweep needs of a SweepHandle: progress, listeners, done()."""

    def __init__(self, total: int = 100):
        self.progress = FakeProgress(total)
        self.listeners: list[Any] = []
        self.finished = False

    def add_listener(self, fn: Any) -> None:
        self.listeners.append(fn)

    def done(self) -> bool:
        return self.finished

    def fire(self) -> None:
        for fn in self.listeners:
            fn(self.progress)
