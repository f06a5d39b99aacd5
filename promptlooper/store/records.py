"""The records a sweep hands the store, and the batch of rows one write transaction stores.

Plain data, no SQL: :class:`RunRecord` (with its :class:`StageRecord` and scores) and
:class:`CacheEntry` are what the engine builds; :class:`ResultBatch` encodes them into the rows
that :func:`~promptlooper.store.batchwriter.write_rows` binds, in whichever backend's process.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from ..hashing import json_encoder
from .batchwriter import Rows


def new_id() -> str:
    return uuid.uuid4().hex


# json.dumps(value, ensure_ascii=False, default=str), built once: a sweep encodes ~8 values a run.
dumps = json_encoder(ensure_ascii=False, default=str)


@dataclass(slots=True)
class StageRecord:
    stage_index: int
    stage_name: str
    kind: str
    prompt_sent: Any = None
    response_raw: str | None = None
    model_used: str | None = None
    endpoint: str | None = None
    parameters: dict[str, Any] | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float | None = None
    cached: bool = False
    cache_key: str | None = None
    # JSON of prompt_sent / parameters when the engine already has it (the cache key encodes both).
    prompt_json: str | None = None
    parameters_json: str | None = None


@dataclass(slots=True)
class RunRecord:
    id: str
    experiment_id: str
    config_id: str
    sample_id: str
    sample_index: int
    repeat: int
    sweep_id: str | None
    status: str  # completed | cached | failed
    started_at: str
    completed_at: str
    duration_ms: float
    latency_ms: float = 0.0  # time spent in model calls and functions, without queueing
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    score: float | None = None
    output: str | None = None
    error: str | None = None
    stages: list[StageRecord] = field(default_factory=list)
    scores: list[tuple[str, float, dict[str, Any] | None, str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class CacheEntry:
    key: str
    endpoint: str
    model: str
    request: dict[str, Any]
    response: str
    tokens_in: int
    tokens_out: int
    latency_ms: float


class ResultBatch:
    """The rows of one write transaction (see :meth:`Store.write_batch`), built as results arrive.

    A sweep adds each finished run here on its event loop, so the JSON encoding and tuple building
    (Python work, under the GIL whichever thread does it) happen in small steps between runs, and
    the writer thread only binds and steps a few multi-row statements.
    """

    __slots__ = ("cache", "run_ids", "replaced", "runs", "stages", "scores", "events")

    def __init__(self) -> None:
        self.cache: list[tuple[Any, ...]] = []
        self.run_ids: list[str] = []
        self.replaced: list[str] = []  # runs that may already have rows (a failed run tried again)
        self.runs: list[tuple[Any, ...]] = []
        self.stages: list[tuple[Any, ...]] = []
        self.scores: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []

    @property
    def empty(self) -> bool:
        return not (self.cache or self.run_ids or self.events)

    def rows(self) -> Rows:
        """What :func:`~promptlooper.store.batchwriter.write_rows` takes (and a writer process is sent)."""
        return self.cache, self.replaced, self.runs, self.stages, self.scores, self.events

    def add_cache(self, e: CacheEntry) -> None:
        self.cache.append((e.key, e.endpoint, e.model, dumps(e.request), e.response, e.tokens_in, e.tokens_out, e.latency_ms))

    def add_run(self, r: RunRecord, replace: bool = True) -> None:
        """Add ``r`` with its stages and scores; ``replace=False`` when no row of it can exist yet
        (a run the sweep has never stored), which spares the writer two look-ups a run."""
        self.run_ids.append(r.id)
        if replace:
            self.replaced.append(r.id)
        self.runs.append((r.id, r.experiment_id, r.config_id, r.sample_id, r.sample_index, r.repeat, r.sweep_id, r.status, r.error,
                          r.started_at, r.completed_at, r.duration_ms, r.latency_ms, r.tokens_in, r.tokens_out, r.cost, r.score, r.output))
        for s in r.stages:
            # The engine hands over the JSON it already encoded for the cache key; others are encoded here.
            self.stages.append((r.id, s.stage_index, s.stage_name, s.kind, s.prompt_json or dumps(s.prompt_sent), s.response_raw,
                                s.model_used, s.endpoint, s.parameters_json or dumps(s.parameters), s.tokens_in, s.tokens_out,
                                s.latency_ms, int(s.cached), s.cache_key))
        for label, value, meta, name, args in r.scores:
            self.scores.append((r.id, label, value, dumps(meta) if meta else None, name, args if type(args) is str else dumps(args)))

    def add_event(self, ts: str | None, experiment_id: str | None, etype: str, payload: dict[str, Any]) -> None:
        self.events.append((ts, experiment_id, etype, dumps(payload)))

