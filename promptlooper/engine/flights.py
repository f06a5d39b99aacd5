"""Calls out now and replies landed lately: the in-process half of "an identical call goes out once".

A :class:`~.calls.CallExecutor` looks a call up here before the store: an identical call in
flight is awaited (single-flight), a reply landed a moment ago is used at once (its cache entry
may not be committed yet). One sweep has one :class:`Flights`; the chunk sweeps of one shared
sweep that a worker runs at the same time share one (:mod:`.sharing`), so that their identical
calls go out once without claiming each other's keys in the store (:mod:`.claims`). What this
process would claim when another one starts sharing the store is read here too.
"""

from __future__ import annotations

import asyncio
import collections

from ..providers.base import ChatResponse

Value = tuple[str, int, int, float]  # a cache entry: (response, tokens in, tokens out, latency ms)


class Flights:
    """The calls out now (key -> the future of their reply) and the ``recent_size`` latest replies."""

    def __init__(self, recent_size: int = 8192):
        self.recent: collections.OrderedDict[str, Value] = collections.OrderedDict()
        self.recent_size = recent_size
        self.inflight: dict[str, asyncio.Future[ChatResponse]] = {}

    def remember(self, key: str, value: Value) -> None:
        self.recent[key] = value
        if len(self.recent) > self.recent_size:
            self.recent.popitem(last=False)

    def claim_candidates(self, recent: int = 4096) -> tuple[list[str], list[str]]:
        """Keys of the calls out now, and of the ``recent`` latest answered or looked up: what this
        process claims when another one starts sweeping the store (entries may be uncommitted)."""
        keys = list(self.recent)
        return list(self.inflight), keys[-recent:]


__all__ = ["Flights", "Value"]
