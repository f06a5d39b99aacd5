"""Endpoints by name, and the registry of provider kinds that makes their providers.

Every provider is made by a factory registered with :func:`register_provider`, the built-ins
included: ``openai-compatible`` (``http://`` / ``https://`` base URLs), ``embedded`` (the ``local``
endpoint), ``group`` (endpoint groups) and ``fake`` (``fake://`` base URLs, the in-process fake of
:mod:`promptlooper.testing`). A kind is chosen by the endpoint's shape, never by an if/elif on
kinds: a group is a group, ``local`` without a configuration is the embedded model, and any
other endpoint's kind is its base URL's scheme, as registered.

A factory may be given as ``"module:function"`` and is imported on its first use (as entry points
are): the package imports no provider module, SDK or llama_cpp until an endpoint of that kind is
called. A factory is called as ``factory(name, config, pool)`` and returns a
:class:`~promptlooper.providers.base.Provider`; ``config`` is the endpoint's settings (an
:class:`~promptlooper.spec.EndpointSpec` or :class:`~promptlooper.spec.EndpointGroupSpec` as a
dict, ``{}`` for the embedded model) and ``pool`` the :class:`EndpointPool` (a group asks it for
its members).

A model reference is ``endpoint/model``; only the first slash separates them, so OpenRouter's
``openrouter/meta-llama/llama-3-8b`` means endpoint ``openrouter``, model ``meta-llama/llama-3-8b``.
Providers are built once per endpoint per pool.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import EndpointError
from ..keys import KeyGrants
from ..spec import EndpointGroupSpec, EndpointSpec
from .base import Provider
from .pricing import find_price, price_for

LOCAL = "local"

ProviderFactory = Callable[[str, dict[str, Any], "EndpointPool"], Provider]
Describer = Callable[[str, dict[str, Any]], dict[str, Any]]


@dataclass
class ProviderKind:
    """A registered kind: its factory (or ``"module:function"``), the base-URL schemes it serves,
    and optionally what ``endpoints list`` says about an endpoint of it."""

    name: str
    factory: ProviderFactory | str
    schemes: tuple[str, ...] = ()
    describe: Describer | str | None = None

    def make(self, name: str, config: dict[str, Any], pool: EndpointPool) -> Provider:
        self.factory = _resolve(self.factory)
        return self.factory(name, config, pool)

    def describe_endpoint(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        if self.describe is None:
            return {}
        self.describe = _resolve(self.describe)
        return self.describe(name, config)


_KINDS: dict[str, ProviderKind] = {}
_SCHEMES: dict[str, str] = {}  # base-URL scheme -> kind


def register_provider(kind: str, factory: ProviderFactory | str | None = None, *, schemes: tuple[str, ...] = (),
                      describe: Describer | str | None = None) -> Any:
    """Register the factory that makes providers of ``kind``, for endpoints whose base URL has one of
    ``schemes``. A later registration of a kind or a scheme replaces the earlier one.

    Usable as a call or as a decorator::

        @register_provider("echo", schemes=("echo",))
        def echo(name, config, pool):
            return EchoProvider(name, config["base_url"])
    """
    def add(made: ProviderFactory | str) -> ProviderFactory | str:
        _KINDS[kind] = ProviderKind(kind, made, tuple(schemes), describe)
        for scheme in schemes:
            _SCHEMES[scheme] = kind
        return made

    return add if factory is None else add(factory)


def provider_kinds() -> dict[str, tuple[str, ...]]:
    """Each registered kind and the base-URL schemes it serves."""
    return {k.name: k.schemes for k in _KINDS.values()}


def kind_of_url(base_url: str) -> str:
    """The kind serving ``base_url``, by its scheme."""
    scheme = urlsplit(base_url).scheme.lower()
    if scheme not in _SCHEMES:
        raise EndpointError(f"no provider serves {scheme or 'a'}:// base URLs ({base_url!r}); "
                            f"known schemes: {', '.join(sorted(_SCHEMES))}")
    return _SCHEMES[scheme]


def _resolve(ref: Any) -> Any:
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def tuning(config: dict[str, Any]) -> dict[str, Any]:
    """The limits every endpoint's provider takes from its settings (keyword arguments)."""
    out: dict[str, Any] = {"max_concurrency": int(config.get("max_concurrency", 16)),
                           "timeout": float(config.get("timeout", 60.0)),
                           "max_retries": int(config.get("max_retries", 6))}
    out.update({k: config[k] for k in ("retry_after_max", "breaker_failures", "breaker_cooldown") if config.get(k) is not None})
    return out


def split_model(ref: str) -> tuple[str, str]:
    endpoint, sep, model = ref.partition("/")
    if not sep or not endpoint or not model:
        raise EndpointError(f"model {ref!r} must be written endpoint/model, e.g. local/smollm2-135m")
    return endpoint, model


def split_fallback(ref: str) -> tuple[str, str | None]:
    """``(endpoint, model or None)`` of a group's fallback: ``c`` or ``c/other-model``."""
    endpoint, _, model = ref.partition("/")
    return endpoint, model or None


def provider_for_url(name: str, base_url: str, *, api_key_env: str | None = None,
                     grants: KeyGrants | None = None) -> Provider:
    """A provider for an endpoint given only by its base URL (a scorer's ``base_url``), of the kind
    that serves its scheme, with the default limits."""
    config = {"base_url": base_url.rstrip("/"), "api_key_env": api_key_env}
    return _KINDS[kind_of_url(base_url)].make(name, config, EndpointPool(grants=grants))


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

    def _kind(self, name: str) -> tuple[ProviderKind, dict[str, Any]]:
        """The kind of endpoint ``name`` and its settings, by the endpoint's shape."""
        if name in self.groups:
            return _KINDS["group"], self.groups[name].model_dump()
        if name in self.configs:
            config = self.configs[name]
            return _KINDS[kind_of_url(config["base_url"])], config
        if name == LOCAL:
            return _KINDS["embedded"], {}
        known = ", ".join(self.names())
        raise EndpointError(f"endpoint {name!r} is not configured (known: {known}); add it with `promptlooper endpoints add`")

    def describe(self, name: str) -> dict[str, Any]:
        kind, config = self._kind(name)
        base = {"base_url": None, "api_key_env": None} if "base_url" not in config else {}
        if kind.name == "group":
            config = {"members": config["group"], "fallback": config["fallback"]}
        return {"name": name, "kind": kind.name, **base, **config, **kind.describe_endpoint(name, config)}

    def provider(self, name: str) -> Provider:
        if name in self._providers:
            return self._providers[name]
        kind, config = self._kind(name)
        provider = self._providers[name] = kind.make(name, config, self)
        return provider

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


# The built-in kinds, registered exactly as a third party's would be; each factory is imported on
# first use (start-up: aiohttp, llama_cpp and the test fakes stay unimported until called).
register_provider("openai-compatible", "promptlooper.providers.openai_compatible:from_config", schemes=("http", "https"))
register_provider("embedded", "promptlooper.providers.embedded:from_config", describe="promptlooper.providers.embedded:describe")
register_provider("group", "promptlooper.providers.groups:from_config")
register_provider("fake", "promptlooper.testing.fake_provider:from_config", schemes=("fake",))
