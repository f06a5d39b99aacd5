"""An in-process fake model: the engine's calls answered without HTTP.

:class:`FakeModel` is what :class:`~promptlooper.testing.FakeServer` is, minus the socket: the same
replies to the same request (by default a deterministic function of every parameter), the same
:class:`~promptlooper.testing.Faults` drawn the same way, the same counters (``stats()``). Only the
HTTP hop is replaced: an endpoint whose ``base_url`` is ``fake://NAME`` gets a provider (the
``fake`` kind of :mod:`promptlooper.providers.registry`) that hands each call to the FakeModel
registered as NAME, so cache keys, retries, limits, the circuit breaker, accounting and scoring
are the engine's own. A fault reaches the engine as the exception
:mod:`~promptlooper.providers.openai_compatible` raises for the same failure over the wire:

==============================  ==================================================================
fault                           what the engine sees
==============================  ==================================================================
``rate_limit``                  429 with ``retry_after`` (rate limited, retryable)
``server_error``/``fail_first`` HTTP 500 (retryable; counts towards the circuit breaker)
``malformed``                   a malformed reply (retryable)
``drop``                        a connection closed without a reply (retryable)
``slow``                        ``slow_seconds`` more latency; a timeout if that passes the
                                endpoint's ``timeout``
``refusal``                     a reply with no content (OpenAI's ``refusal``): the text is ""
==============================  ==================================================================

Example::

    import promptlooper as pl
    from promptlooper.testing import FakeModel, Faults, fake_endpoint

    fake = FakeModel(reply=["paris", "tokyo"], faults=Faults(fail_first=1))
    exp = pl.Experiment(..., stages=[{"name": "a", "model": "fake/fake-small", "user": "{{ q }}"}],
                        endpoints={"fake": fake_endpoint(fake, max_retries=2)})
    # or, in a file:  endpoints: {fake: {base_url: "fake://demo"}}  (default replies)
    assert fake.stats()["completions"] == 2

Replies: ``reply=None`` gives :func:`~promptlooper.testing.scripted.default_reply`; a string is
every reply; a list is consumed in order (a call after the last fails, not retried); a function
is called with the request body the server would get (``{"model", "messages", **params}``);
if it raises, the call fails as an HTTP 500 naming the exception (the server answers 500 too).
A ``fake://NAME`` no FakeModel registered gets a default one of that name on first use.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from ..errors import ProviderError
from ..providers.base import ChatRequest, ChatResponse, Provider
from ..providers.openai_compatible import malformed_error, status_error
from ..providers.registry import EndpointPool, tuning
from ..providers.tool_calls import envelope
from ..spec import EndpointSpec
from .scripted import (
    DEFAULT_MODELS,
    Faults,
    Scripted,
    content_text,
    default_reply,
    default_tool_calls,
    embed,
    word_count,
)

__all__ = ["FakeModel", "fake_endpoint"]

Reply = str | Iterable[str] | Callable[[dict[str, Any]], str] | None
ToolCalls = Callable[[dict[str, Any]], list[tuple[str, dict[str, Any]]] | None]

# The error bodies FakeServer sends, so a failure's recorded reason is the same either way.
_RATE_LIMITED = '{"error": {"message": "Rate limit reached (fake)."}}'
_SERVER_ERROR = '{"error": {"message": "The server had an error while processing your request (fake)."}}'
_DROPPED = "connection failed: ServerDisconnectedError: Server disconnected"

_MODELS: dict[str, FakeModel] = {}  # fake://NAME -> its model, for the registry's factory
_LOCK = threading.Lock()
_NUMBERS = itertools.count(1)


class FakeModel(Scripted):
    """A scripted model endpoint in this process; see the module docstring.

    ``latency`` (seconds, ``asyncio.sleep``) delays every call, faulted or not, as on the server.
    ``stats()`` has FakeServer's keys: ``requests``, ``completions``, ``by_status``, ``by_model``,
    ``faults``, ``in_flight_max``, ``tokens_served``, ``bodies`` ...
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        reply: Reply = None,
        latency: float = 0.0,
        faults: Faults | None = None,
        models: list[str] | None = None,
        usage: bool = True,
        tool_calls: ToolCalls | None = None,
        seed: int = 0,
    ) -> None:
        self.name = name or f"model-{next(_NUMBERS)}"
        self.latency = latency
        self.models = list(models) if models is not None else list(DEFAULT_MODELS)
        self.usage = usage
        self.tool_calls = tool_calls or default_tool_calls
        self._reply, self._script = _script(reply)
        super().__init__(faults, seed)
        with _LOCK:
            _MODELS[self.name] = self  # a later model of the same name takes its place

    @property
    def base_url(self) -> str:
        return f"fake://{self.name}"

    async def complete(self, request: ChatRequest, timeout: float = 60.0) -> ChatResponse:
        """One chat call as an endpoint with this ``timeout`` (seconds) would answer it."""
        started = time.perf_counter()
        body: dict[str, Any] = {"model": request.model, "messages": request.messages, **request.params}
        stats = self._stats
        with stats.lock:
            stats.requests += 1
            stats.bodies.append(body)
            stats.by_model[request.model] += 1
            stats.in_flight += 1
            stats.in_flight_max = max(stats.in_flight_max, stats.in_flight)
            fault = self._dice.draw()
            faults = self._dice.faults
            if fault is not None:
                stats.faults[fault] += 1
        try:
            delay = self.latency + (faults.slow_seconds if fault == "slow" else 0.0)
            if delay > timeout:  # what the client's own timeout makes of a slow endpoint
                await asyncio.sleep(timeout)
                raise ProviderError(f"timed out after {timeout:g}s", retryable=True, timed_out=True)
            if delay > 0:
                await asyncio.sleep(delay)
            return self._answer(request, body, fault, faults, started)
        finally:
            with stats.lock:
                stats.in_flight -= 1

    def _answer(self, request: ChatRequest, body: dict[str, Any], fault: str | None, faults: Faults,
                started: float) -> ChatResponse:
        if fault == "rate_limit":
            raise self._failed(status_error(429, _RATE_LIMITED, faults.retry_after), 429)
        if fault in ("server_error", "fail_first"):
            raise self._failed(status_error(500, _SERVER_ERROR), 500)
        if fault == "drop":
            raise ProviderError(_DROPPED, retryable=True)
        if fault == "malformed":
            raise self._failed(malformed_error(b'{"choices": ['), 200)
        try:
            text = self._text(body)
        except ProviderError:
            raise
        except Exception as exc:  # noqa: BLE001 - a reply function that raises is a server that answers 500
            body_text = json.dumps({"error": {"message": f"the fake's reply function raised {type(exc).__name__}: {exc}"}})
            raise self._failed(status_error(500, body_text), 500) from exc
        tokens_in = max(1, sum(word_count(content_text(m.get("content"))) for m in request.messages if isinstance(m, dict)))
        tokens_out = word_count(text)
        served = tokens_in + tokens_out  # what the server bills, whether or not it reports usage
        if not self.usage:  # as the client estimates when a server sends no usage
            tokens_in = sum(len(str(m.get("content") or "").split()) for m in request.messages)
        out = text
        if fault == "refusal":
            out = ""
        elif body.get("tools") and body.get("tool_choice") != "none":
            calls = self.tool_calls(body)
            if calls:
                out = envelope("", [{"function": {"name": n, "arguments": json.dumps(a)}} for n, a in calls])
        if not self.usage:
            tokens_out = len(out.split())
        with self._stats.lock:
            self._stats.completions += 1
            self._stats.by_status[200] += 1
            self._stats.tokens_served += served
        return ChatResponse(out, tokens_in, tokens_out, (time.perf_counter() - started) * 1000)

    def _text(self, body: dict[str, Any]) -> str:
        if self._script is None:
            return self._reply(body)
        with self._stats.lock:
            text = next(self._script, None)
        if text is None:
            raise ProviderError(f"FakeModel {self.name!r}: its scripted replies ran out", retryable=False)
        return text

    def _failed(self, error: ProviderError, status: int) -> ProviderError:
        with self._stats.lock:
            self._stats.by_status[status] += 1
        return error

    async def embed(self, model: str, inputs: list[str]) -> list[list[float]]:
        """Embeddings as FakeServer's ``/v1/embeddings`` gives them (one pooled vector per input)."""
        tokens = sum(word_count(s) for s in inputs)
        with self._stats.lock:
            self._stats.tokens_served += tokens
            self._stats.embedding_tokens_served += tokens
        return [embed(s) for s in inputs]


def _script(reply: Reply) -> tuple[Callable[[dict[str, Any]], str], Any]:
    """``(function of the body, iterator of scripted replies or None)``."""
    if reply is None:
        return default_reply, None
    if isinstance(reply, str):
        return (lambda body: reply), None
    if callable(reply):
        return reply, None
    return default_reply, iter(list(reply))


class FakeEndpoint(Provider):
    """The provider of a ``fake://NAME`` endpoint: the endpoint's settings, NAME's model's replies."""

    def __init__(self, name: str, base_url: str, model: FakeModel, *, max_concurrency: int = 16, timeout: float = 60.0,
                 max_retries: int = 6, retry_after_max: float = 60.0, breaker_failures: int = 5,
                 breaker_cooldown: float = 30.0) -> None:
        self.name = name
        self.identity = base_url  # as an OpenAI-compatible endpoint's: its base URL
        self.model = model
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_after_max = retry_after_max
        self.breaker_failures = breaker_failures
        self.breaker_cooldown = breaker_cooldown

    async def chat(self, request: ChatRequest) -> ChatResponse:
        return await self.model.complete(request, self.timeout)

    async def list_models(self) -> list[str]:
        return sorted(self.model.models)  # as the client lists a server's


def model_for(base_url: str) -> FakeModel:
    """The FakeModel a ``fake://NAME`` URL names (a default one, made now, if none was)."""
    name = urlsplit(base_url).netloc
    with _LOCK:
        found = _MODELS.get(name)
    return found if found is not None else FakeModel(name)


def from_config(name: str, config: dict[str, Any], pool: EndpointPool) -> FakeEndpoint:
    """The ``fake`` kind's factory (see :mod:`promptlooper.providers.registry`)."""
    base_url = str(config["base_url"]).rstrip("/")
    return FakeEndpoint(name, base_url, model_for(base_url), **tuning(config))


def fake_endpoint(model: FakeModel | None = None, **settings: Any) -> EndpointSpec:
    """An endpoint served by ``model`` (a new default FakeModel if None), for an experiment's
    ``endpoints:``; ``settings`` are :class:`~promptlooper.spec.EndpointSpec`'s (``max_retries``,
    ``timeout``, ``max_concurrency``, ...). ``Workbench.add_endpoint(name, model.base_url)`` stores one."""
    return EndpointSpec(base_url=(model or FakeModel()).base_url, **settings)
