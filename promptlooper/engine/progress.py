"""Live progress of a sweep: what the CLI bar, the widgets and get_experiment_status show."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Progress:
    status: str = "pending"  # running | paused | stopped | completed | failed
    total: int = 0
    done: int = 0  # finished runs, including those finished by an earlier sweep
    completed: int = 0
    cached: int = 0
    failed: int = 0
    skipped: int = 0  # already finished when this sweep started
    calls: int = 0  # model calls sent
    cache_hits: int = 0  # model calls served from the cache
    tokens_in: int = 0  # spent by this sweep (cache hits spend none)
    tokens_out: int = 0
    cost: float = 0.0
    unpriced: list[str] = field(default_factory=list)  # endpoint/model that served calls with no price: $0 in cost
    best_config_id: str | None = None
    best_score: float | None = None
    started: float = field(default_factory=time.monotonic)
    stop_reason: str | None = None
    failure_reasons: dict[str, int] = field(default_factory=dict)  # why runs failed in this sweep: reason -> runs

    @property
    def cache_hit_rate(self) -> float:
        total = self.calls + self.cache_hits
        return self.cache_hits / total if total else 0.0

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Runs per second in this sweep."""
        worked = self.done - self.skipped
        return worked / self.elapsed if self.elapsed > 0 and worked > 0 else 0.0

    @property
    def eta(self) -> float | None:
        remaining = self.total - self.done
        if remaining <= 0:
            return 0.0
        return remaining / self.rate if self.rate > 0 else None

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("started")
        data.update(cache_hit_rate=round(self.cache_hit_rate, 4), elapsed=round(self.elapsed, 3),
                    eta=None if self.eta is None else round(self.eta, 1), rate=round(self.rate, 2), tokens=self.tokens)
        return data

    def line(self) -> str:
        """One-line text form (CLI progress bar)."""
        width = 24
        frac = self.done / self.total if self.total else 1.0
        bar = "█" * int(frac * width) + "░" * (width - int(frac * width))
        eta = "--" if self.eta is None else f"{self.eta:,.0f}s"
        best = "" if self.best_score is None else f" best {self.best_score:.3f}"
        return (f"{bar} {self.done}/{self.total} runs | {self.tokens:,} tok | ${self.cost:.4f} | "
                f"cache {self.cache_hit_rate:.0%} | ETA {eta} | {self.status}{best}")
