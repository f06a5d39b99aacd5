"""Endpoints by name: the built-in ``local`` (embedded model) and OpenAI-compatible ones.

A model reference is ``endpoint/model``; only the first slash separates them, so OpenRouter's
``openrouter/meta-llama/llama-3-8b`` means endpoint ``openrouter``, model ``meta-llama/llama-3-8b``.
Providers are built lazily (the package imports without llama_cpp), one per endpoint per pool.
"""

from __future__ import annotations

from typing import Any

from ..errors import EndpointError
from ..keys import KeyGrants
from ..spec import EndpointGroupSpec, EndpointSpec
from .base import Provider
from .pricing import find_price, price_for

LOCAL = "local"


def split_model(ref: str) -> tuple[str, str]:
    endpoint, sep, model = ref.partition("/")
    if not sep or not endpoint or not model:
        raise EndpointError(f"model {ref!r} must be written endpoint/model, e.g. local/smollm2-135m")
    return endpoint, model


def split_fallback(ref: str) -> tuple[str, str | None]:
    """``(endpoint, model or None)`` of a group's fallback: ``c`` or ``c/other-model``."""
    endpoint, _, model = ref.partition("/")
    return endpoint, model or None


class EndpointPool:
    """The endpoints a sweep may use, and one shared provider per endpoint."""

    def __init__(
        self,
        stored: dict[str, dict[str, Any]] | None = None,
        inline: dict[str, EndpointSpec | EndpointGroupSpec] | None = None,
        prices: dict[str, tuple[float, float]] | None = None,
        grants: KeyGrants | None = None,
    ):
        # Pools built from a store get its grants: a key goes only where the operator granted it.
        self.grants = grants
        self.configs: dict[str, dict[str, Any]] = {}
        for name, row in (stored or {}).items():
            self.configs[name] = {k: row[k] for k in ("base_url", "api_key_env", "max_concurrency", "timeout", "max_retries", "prices") if k in row}
        self.groups: dict[str, EndpointGroupSpec] = {}
        for name, spec in (inline or {}).items():
            if isinstance(spec, EndpointGroupSpec):
                self.groups[name] = spec
            else:
                self.configs[name] = spec.model_dump()
        self.user_prices = prices or {}
        self._providers: dict[str, Provider] = {}

    def names(self) -> list[str]:
        return [LOCAL, *sorted(n for n in [*self.configs, *self.groups] if n != LOCAL)]

    def has(self, name: str) -> bool:
        return name == LOCAL or name in self.configs or name in self.groups

    def describe(self, name: str) -> dict[str, Any]:
        if name in self.groups:
            group = self.groups[name]
            return {"name": name, "kind": "group", "members": list(group.group), "fallback": group.fallback,
                    "base_url": None, "api_key_env": None}
        if name == LOCAL and name not in self.configs:
            from .embedded import MODEL_NAME, available

            problem = available()
            return {"name": LOCAL, "kind": "embedded", "base_url": None, "models": [MODEL_NAME],
                    "api_key_env": None, "available": problem is None, "problem": problem}
        cfg = self.configs[name]
        return {"name": name, "kind": "openai-compatible", **cfg}

    def provider(self, name: str) -> Provider:
        if name in self._providers:
            return self._providers[name]
        if name in self.groups:
            provider: Provider = self._group(name)
        elif name == LOCAL and name not in self.configs:
            from .embedded import EmbeddedProvider

            provider = EmbeddedProvider()
        elif name in self.configs:
            from .openai_compatible import OpenAICompatible

            cfg = self.configs[name]
            provider = OpenAICompatible(
                name, cfg["base_url"], api_key_env=cfg.get("api_key_env"),
                max_concurrency=int(cfg.get("max_concurrency", 16)), timeout=float(cfg.get("timeout", 60.0)),
                max_retries=int(cfg.get("max_retries", 6)), grants=self.grants,
                **{k: cfg[k] for k in ("retry_after_max", "breaker_failures", "breaker_cooldown") if cfg.get(k) is not None},
            )
        else:
            known = ", ".join(self.names())
            raise EndpointError(f"endpoint {name!r} is not configured (known: {known}); add it with `promptlooper endpoints add`")
        self._providers[name] = provider
        return provider

    def _group(self, name: str) -> Provider:
        from .groups import GroupProvider

        spec = self.groups[name]
        for member in [*spec.group, *([split_fallback(spec.fallback)[0]] if spec.fallback else [])]:
            if member in self.groups:
                raise EndpointError(f"endpoint group {name!r}: {member!r} is a group; list endpoints only")
        fallback, fallback_model = split_fallback(spec.fallback) if spec.fallback else (None, None)
        return GroupProvider(name, [self.provider(m) for m in spec.group],
                             self.provider(fallback) if fallback else None, fallback_model)

    def _priced_as(self, endpoint: str) -> str:
        # A group's calls answered from the cache are priced as its first member's.
        return self.groups[endpoint].group[0] if endpoint in self.groups else endpoint

    def price(self, endpoint: str, model: str) -> tuple[float, float]:
        endpoint = self._priced_as(endpoint)
        own = {k: tuple(v) for k, v in (self.configs.get(endpoint, {}).get("prices") or {}).items()}
        return price_for(model, self.user_prices, own)  # type: ignore[arg-type]

    def has_price(self, endpoint: str, model: str) -> bool:
        """Whether some table prices ``model``: an unpriced one is counted as $0, so a cost budget
        cannot hold over it (see ``promptlooper prices set``)."""
        endpoint = self._priced_as(endpoint)
        own = {k: tuple(v) for k, v in (self.configs.get(endpoint, {}).get("prices") or {}).items()}
        return find_price(model, self.user_prices, own) is not None  # type: ignore[arg-type]

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()
