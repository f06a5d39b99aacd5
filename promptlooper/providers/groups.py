"""Endpoint groups: one model served by several endpoints, with a fallback.

A group is a provider of its own to the engine (one adaptive limit, one cache identity), whose
calls go to its members: each call to the member with the most free slots (its
``max_concurrency`` less the group's calls in flight on it), so members fill in proportion to
their limits. A member that fails (an error, a timeout, a refused key) hands the call to the next
member, in the same order; when every member has failed, the fallback (another endpoint, or
``endpoint/model``) gets it. If that fails too, the last error goes back to the engine, which
retries the group as it would one endpoint. A member that failed is tried after the others for a
pause that doubles with each failure in a row (0.5 s to 30 s), then first again if it has the
most free slots.

The reply says who answered (``ChatResponse.endpoint`` / ``.model``), which the stage result
records. Every member serves the same model, so a reply is cached under the group's identity
(its members' and its fallback's): a reply of a fallback *model* is cached there too, as the
answer that group gave; a cache hit records the group's name as its endpoint.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from ..errors import EndpointError, ProviderError
from .base import ChatRequest, ChatResponse, Provider
from .registry import EndpointPool, split_fallback

FIRST_PAUSE = 0.5  # seconds a member that just failed is tried after the others
MAX_PAUSE = 30.0


class GroupProvider(Provider):
    def __init__(self, name: str, members: list[Provider], fallback: Provider | None = None,
                 fallback_model: str | None = None):
        if not members:
            raise ValueError(f"endpoint group {name!r} has no members")
        self.name = name
        self.members = members
        self.fallback = fallback
        self.fallback_model = fallback_model
        # The members' identities in order, and the fallback's: a group with another fallback (which
        # may answer with another model) keeps cache entries of its own.
        self.identity = "group:" + ",".join(m.identity for m in members) + (
            f"|fallback:{fallback.identity}/{fallback_model or ''}" if fallback is not None else "")
        self.max_concurrency = sum(m.max_concurrency for m in members)
        self.max_retries = max(m.max_retries for m in members)
        self.timeout = max(m.timeout for m in members)
        self.in_flight: dict[str, int] = {m.name: 0 for m in members}
        self.failing: dict[str, int] = {m.name: 0 for m in members}  # failures in a row
        # A member that failed goes to the back of the order until then (0.5 s, doubling per failure
        # in a row, at most 30 s), and is tried first again afterwards: it may have recovered.
        self.down_until: dict[str, float] = {m.name: 0.0 for m in members}
        self.answered: dict[str, int] = {m.name: 0 for m in members}  # replies per member (and fallback)

    def order(self) -> list[Provider]:
        """Members in the order a call tries them: healthy first, then most free slots."""
        now = time.monotonic()
        return sorted(self.members, key=lambda m: (self.down_until[m.name] > now, self.in_flight[m.name] - m.max_concurrency,
                                                   self.in_flight[m.name]))

    async def chat(self, request: ChatRequest) -> ChatResponse:
        error: ProviderError | None = None
        tried: list[str] = []
        for member in self.order():
            self.in_flight[member.name] += 1
            try:
                resp = await member.chat(request)
            except ProviderError as exc:
                self.failing[member.name] += 1
                pause = min(MAX_PAUSE, FIRST_PAUSE * 2 ** (self.failing[member.name] - 1))
                self.down_until[member.name] = time.monotonic() + pause
                error = exc
                tried.append(f"{member.name}: {exc}")
                continue
            finally:
                self.in_flight[member.name] -= 1
            self.failing[member.name] = 0
            self.down_until[member.name] = 0.0
            return self._answered(resp, member.name, None)
        if self.fallback is not None:
            model = self.fallback_model or request.model
            try:
                resp = await self.fallback.chat(replace(request, model=model))
            except ProviderError as exc:
                error = exc
                tried.append(f"fallback {self.fallback.name}: {exc}")
            else:
                return self._answered(resp, self.fallback.name, model if model != request.model else None)
        assert error is not None
        raise ProviderError(f"every endpoint of group {self.name!r} failed ({'; '.join(tried)})", retryable=error.retryable,
                            status=error.status, retry_after=error.retry_after, rate_limited=error.rate_limited)

    def _answered(self, resp: ChatResponse, endpoint: str, model: str | None) -> ChatResponse:
        self.answered[endpoint] = self.answered.get(endpoint, 0) + 1
        return resp._replace(endpoint=endpoint, model=model)

    async def list_models(self) -> list[str]:
        models: set[str] = set()
        for member in self.members:
            models |= set(await member.list_models())
        return sorted(models)

    async def aclose(self) -> None:
        pass  # the members are the pool's providers: it closes them

    def describe(self) -> dict[str, Any]:
        return {"members": [m.name for m in self.members], "fallback": self.fallback.name if self.fallback else None}


def from_config(name: str, config: dict[str, Any], pool: EndpointPool) -> GroupProvider:
    """The ``group`` kind's factory: its members and fallback are the pool's own providers."""
    fallback, fallback_model = split_fallback(config["fallback"]) if config.get("fallback") else (None, None)
    for member in [*config["group"], *([fallback] if fallback else [])]:
        if member in pool.groups:
            raise EndpointError(f"endpoint group {name!r}: {member!r} is a group; list endpoints only")
    return GroupProvider(name, [pool.provider(m) for m in config["group"]],
                         pool.provider(fallback) if fallback else None, fallback_model)
