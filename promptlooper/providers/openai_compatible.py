"""OpenAI-compatible chat completions (vLLM, Ollama, llama.cpp server, LM Studio, OpenAI, OpenRouter).

One aiohttp session per endpoint and event loop, with no connection cap of its own: concurrency is
the engine's business (an adaptive limit per endpoint). Measured on loopback at latency 0, plain
httpx 0.28 fell from ~610 to ~190 calls/s between 4 and 64 connections, httpx on the aiohttp
transport held ~1,900/s and aiohttp alone ~4,000/s, so the hot path is aiohttp itself. Every
foreign failure is mapped to ProviderError here, with ``retryable`` saying whether trying again
can help.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from yarl import URL

from ..errors import EndpointError, ProviderError
from ..hashing import json_encoder
from ..keys import KeyGrants, key_value, redact
from ..retrying import parse_retry_after, retryable_status
from .base import ChatRequest, ChatResponse, Provider
from .registry import EndpointPool, tuning
from .tool_calls import envelope


def _error_message(body: str) -> str:
    try:
        data = json.loads(body)
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message") or err)
        return str(err)
    except (ValueError, AttributeError):
        return body[:300]


_json_dumps = json_encoder()  # json.dumps, without building an encoder per request


def from_config(name: str, config: dict[str, Any], pool: EndpointPool) -> OpenAICompatible:
    """The ``openai-compatible`` kind's factory (see :mod:`promptlooper.providers.registry`)."""
    return OpenAICompatible(name, config["base_url"], api_key_env=config.get("api_key_env"), grants=pool.grants,
                            **tuning(config))


def status_error(status: int, body: str, retry_after: float | None = None) -> ProviderError:
    """The error a reply with HTTP ``status`` (not 200) and ``body`` raises: a 429 is rate limiting,
    a 5xx, 408 or 409 worth retrying, any other refused. Public so fakes raise exactly this."""
    message = redact(f"HTTP {status}: {_error_message(body)}")  # some proxies echo the key
    if status == 429:
        return ProviderError(message, retryable=True, status=status, retry_after=retry_after, rate_limited=True)
    return ProviderError(message, retryable=retryable_status(status), status=status, retry_after=retry_after)


def malformed_error(raw: bytes, status: int = 200) -> ProviderError:
    """The error a reply whose body is not a chat completion raises (retryable: it may be a glitch)."""
    return ProviderError(redact(f"malformed reply: {raw[:120]!r}"), retryable=True, status=status)


class OpenAICompatible(Provider):
    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        api_key_env: str | None = None,
        max_concurrency: int = 16,
        timeout: float = 60.0,
        max_retries: int = 6,
        grants: KeyGrants | None = None,
        retry_after_max: float = 60.0,
        breaker_failures: int = 5,
        breaker_cooldown: float = 30.0,
    ):
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.identity = self.base_url
        # Parsed once: aiohttp parses a str URL on every request (~10% of a loopback call's CPU).
        self._chat_url = URL(f"{self.base_url}/chat/completions")
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_after_max = retry_after_max
        self.breaker_failures = breaker_failures
        self.breaker_cooldown = breaker_cooldown
        self._headers = {"Content-Type": "application/json"}
        if api_key_env:
            # Refused unless the operator granted the variable to this base URL's origin.
            key = key_value(api_key_env, self.base_url, grants, f"endpoint {name!r}")
            self._headers["Authorization"] = f"Bearer {key}"
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._loop = loop
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=min(10.0, self.timeout)),
                json_serialize=_json_dumps,
            )
        return self._session

    async def chat(self, request: ChatRequest) -> ChatResponse:
        body: dict[str, Any] = {"model": request.model, "messages": request.messages, **request.params}
        started = time.perf_counter()
        try:
            async with self._client().post(self._chat_url, json=body) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except TimeoutError as exc:
            raise ProviderError(f"timed out after {self.timeout:g}s", retryable=True, timed_out=True) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError(f"connection failed: {type(exc).__name__}: {exc}", retryable=True) from exc
        latency_ms = (time.perf_counter() - started) * 1000
        if status != 200:
            raise status_error(status, raw.decode("utf-8", "replace"), retry_after)
        try:
            data = json.loads(raw)
            message = data["choices"][0]["message"]
            text = message["content"] or ""
            calls = message.get("tool_calls")
            if calls:  # the model asked for tools: its output is what it asked for
                text = envelope(text, calls)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise malformed_error(raw, status) from exc
        usage = data.get("usage") or {}
        tokens_in = int(usage.get("prompt_tokens") or 0)
        tokens_out = int(usage.get("completion_tokens") or 0)
        if not usage:  # some servers omit usage: estimate so budgets still work
            tokens_in = sum(len(str(m.get("content") or "").split()) for m in request.messages)
            tokens_out = len(text.split())
        return ChatResponse(text=text, tokens_in=tokens_in, tokens_out=tokens_out, latency_ms=latency_ms)

    async def list_models(self) -> list[str]:
        try:
            async with self._client().get(f"{self.base_url}/models") as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise EndpointError(redact(f"{self.base_url}/models answered HTTP {resp.status}: {_error_message(raw.decode('utf-8', 'replace'))}"))
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise EndpointError(f"cannot reach {self.base_url}: {type(exc).__name__}: {exc}") from exc
        try:
            return sorted(m["id"] for m in json.loads(raw)["data"])
        except (ValueError, KeyError, TypeError) as exc:
            raise EndpointError(f"{self.base_url}/models returned an unexpected body") from exc

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
