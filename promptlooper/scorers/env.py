"""What scorers that reach outside a run need: the store, the endpoints and the call path.

A scorer is built from its arguments alone, so the ``judge`` (model calls through the response
cache) and the ``embedding`` scorer (the persistent embedding cache) read their surroundings from
a context variable holding a :class:`ScoringEnv`:

* a sweep sets one with its pool and its own :class:`~promptlooper.engine.calls.CallExecutor`, so a
  judge's calls share the sweep's cache look-ups, single-flight, limits, pause gate and batched
  cache writes (``with using(ScoringEnv(store_path=..., pool=pool, calls=calls)):``);
* :func:`promptlooper.rescoring.rescore` sets one on the workbench's store;
* anywhere else, :func:`current` gives a process default on ``$PROMPTLOOPER_DB`` (when that file
  exists): calls go through a private executor over the same ``response_cache`` table, with the
  same keys (``content_hash("call", cache_key_material(...))``), and are written after each call.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..engine.calls import CacheReader, CallExecutor, CallResult
from ..keys import KeyGrants
from ..providers.base import Provider
from ..providers.registry import EndpointPool, provider_for_url
from ..store import CacheEntry, Store, default_path, is_url, open_store

if TYPE_CHECKING:
    from ..embedder import Backend, EmbeddingService
    from .core import ScorerUsage


class _NoCache:
    """A cache reader for an environment without a store: every look-up misses."""

    async def get(self, key: str) -> None:
        return None


async def _open_gate() -> None:
    return None


class ScoringEnv:
    """The store, endpoints and call path that scorers use (see the module docstring)."""

    def __init__(
        self,
        *,
        store: Store | None = None,
        store_path: str | None = None,
        pool: EndpointPool | None = None,
        calls: CallExecutor | None = None,
        concurrency: int = 8,
        flush_every: int = 1,
        per_call_providers: bool = False,
    ):
        self._store = store
        self.store_path = store_path or (store.path if store is not None else None)
        self._owns_store = store is None
        self._pool = pool
        self._owns_pool = pool is None
        self.calls = calls
        self.concurrency = concurrency
        self.flush_every = flush_every  # cache entries written per transaction (standalone calls only)
        self.per_call_providers = per_call_providers  # the process default: no session outlives its loop
        self._direct: dict[tuple[str, str | None], Provider] = {}
        self._executors: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CallExecutor] = weakref.WeakKeyDictionary()
        self._pending: list[CacheEntry] = []
        self._services: dict[str, EmbeddingService] = {}
        self._lock = threading.RLock()
        self._grants: KeyGrants | None = None

    # ------------------------------------------------------------------ resources
    @property
    def store(self) -> Store | None:
        with self._lock:
            if self._store is None and self.store_path:
                self._store = open_store(self.store_path)
            return self._store

    @property
    def pool(self) -> EndpointPool:
        with self._lock:
            if self._pool is None:
                self._pool = self._new_pool()
            return self._pool

    def _new_pool(self) -> EndpointPool:
        store = self.store
        return EndpointPool(store.endpoints() if store is not None else {}, grants=self.grants)

    @property
    def grants(self) -> KeyGrants | None:
        """The store's key grants; None with no store (only the operator's own code runs then)."""
        with self._lock:
            if self._grants is None and self.store is not None:
                self._grants = KeyGrants(self.store)  # one per environment: it re-reads the store on a miss only
            return self._grants

    def endpoint_config(self, name: str) -> dict[str, Any]:
        """A configured endpoint's settings (base_url, api_key_env, timeout...)."""
        pool = self.pool
        if name not in pool.configs:
            known = ", ".join(n for n in pool.names() if n != "local") or "none"
            from ..errors import EndpointError

            raise EndpointError(f"endpoint {name!r} is not configured (known: {known}); add it with `promptlooper endpoints add`")
        return pool.configs[name]

    def provider(self, endpoint: str, *, base_url: str | None = None, api_key_env: str | None = None) -> Provider:
        """The provider for ``endpoint``, or one of the kind serving ``base_url`` when it is given."""
        if base_url is None:
            if self.per_call_providers:
                return self._new_pool().provider(endpoint)
            return self.pool.provider(endpoint)
        key = (base_url.rstrip("/"), api_key_env)
        if not self.per_call_providers and key in self._direct:
            return self._direct[key]
        provider = provider_for_url(endpoint, base_url, api_key_env=api_key_env, grants=self.grants)
        if not self.per_call_providers:
            self._direct[key] = provider
        return provider

    def embeddings(self, backend: Backend) -> EmbeddingService:
        """One embedding service per backend, so concurrent requests are batched together."""
        from ..embedder import EmbeddingService

        with self._lock:
            service = self._services.get(backend.identity)
        if service is None:
            service = EmbeddingService(backend, self.store, **self._embedding_hooks(backend))
            with self._lock:
                service = self._services.setdefault(backend.identity, service)
        return service

    def _embedding_hooks(self, backend: Backend) -> dict[str, Any]:
        """In a sweep's environment, an embeddings endpoint waits at the sweep's pause and budget
        gate like a chat call, and what it serves counts with the sweep's chat calls."""
        from ..embedder import EndpointEmbedder

        calls = self.calls
        if calls is None or not isinstance(backend, EndpointEmbedder):
            return {}
        endpoint, model = backend.endpoint, backend.model

        def spend(tokens: int) -> None:
            if calls.on_spent is not None:
                calls.on_spent(endpoint, model, tokens, 0)

        return {"admit": calls.gate, "spend": spend}

    # ------------------------------------------------------------------ calls
    def executor(self) -> CallExecutor:
        if self.calls is not None:
            return self.calls
        loop = asyncio.get_running_loop()
        ex = self._executors.get(loop)
        if ex is None:
            store = self.store
            reader: Any = CacheReader(store) if store is not None else _NoCache()
            ex = CallExecutor(reader, self._pending.append, global_limit=asyncio.Semaphore(self.concurrency), gate=_open_gate)
            self._executors[loop] = ex
        return ex

    async def call(self, provider: Provider, model: str, messages: list[dict[str, str]], params: dict[str, Any],
                   usage: ScorerUsage | None = None) -> CallResult:
        """One model call through the response cache (the key format of every other call); its
        tokens are added to ``usage``, the scored run's tally, whether it was cached or not."""
        try:
            result = await self.executor().call(provider, model, messages, params)
        finally:
            if self.per_call_providers:
                await provider.aclose()
        if usage is not None:
            usage.add(provider.name, model, result.response.tokens_in, result.response.tokens_out)
        if self.calls is None and len(self._pending) >= self.flush_every:
            await self.flush()
        return result

    async def flush(self) -> None:
        """Write the cache entries of standalone calls (a sweep's executor writes its own)."""
        entries, self._pending[:] = self._pending[:], []
        store = self.store
        if entries and store is not None:
            await asyncio.to_thread(store.write_results, [], entries)

    @property
    def stats(self) -> dict[str, int]:
        executors = [self.calls] if self.calls is not None else list(self._executors.values())
        return {"calls": sum(e.calls for e in executors), "cache_hits": sum(e.hits for e in executors)}

    def active(self) -> contextlib.AbstractContextManager[ScoringEnv]:
        """This environment as the context's (see :func:`using`)."""
        return using(self)

    async def aclose(self) -> None:
        await self.flush()
        for provider in self._direct.values():
            await provider.aclose()
        self._direct.clear()
        if self._owns_pool and self._pool is not None:
            await self._pool.aclose()
        if self._owns_store and self._store is not None:
            self._store.close()
            self._store = None


_CURRENT: contextvars.ContextVar[ScoringEnv | None] = contextvars.ContextVar("promptlooper_scoring_env", default=None)
_DEFAULTS: dict[str, ScoringEnv] = {}
_DEFAULTS_LOCK = threading.Lock()


def current() -> ScoringEnv:
    """The environment set by the caller (a sweep, a re-scoring), else the process default."""
    env = _CURRENT.get()
    if env is not None:
        return env
    path = default_path()
    # No database file yet: cache in memory, create nothing on disk (a server's database is there).
    key = path if is_url(path) or os.path.exists(path) else ""
    with _DEFAULTS_LOCK:
        env = _DEFAULTS.get(key)
        if env is None:
            env = _DEFAULTS[key] = ScoringEnv(store_path=key or None, per_call_providers=True)
        return env


@contextlib.contextmanager
def using(env: ScoringEnv) -> Iterator[ScoringEnv]:
    """Make ``env`` the scoring environment of this context (and of the tasks it starts)."""
    token = _CURRENT.set(env)
    try:
        yield env
    finally:
        _CURRENT.reset(token)


__all__ = ["ScoringEnv", "current", "using"]
