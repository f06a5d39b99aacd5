"""Checking what an OpenAI-compatible ``/embeddings`` endpoint returned: one vector per input.

Servers differ. OpenAI, vLLM and Ollama return one vector per input; llama.cpp's server started
without pooling returns one vector *per token* (``[[...], [...]]``) for each input. Token vectors
are mean-pooled here (the pooling sentence-transformers uses), so the scorer gets one vector per
text either way. Anything else (a vector count that is not the input count, vectors of different
sizes, non-numbers, NaN) is refused with a message naming the problem: a cosine computed from
such vectors would be a meaningless number, and ``max(0, NaN)`` is a silent 0. An all-zero
vector (some servers give one for a text with no tokens) is kept: the scorer sees it and reports a
missing score for that run alone, instead of failing every text batched with it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class VectorsError(ValueError):
    """An ``/embeddings`` reply that does not give one usable vector per input."""


def read_vectors(body: Any, count: int) -> np.ndarray:
    """One float32 row per input from ``body`` (the decoded JSON reply to ``count`` inputs)."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise VectorsError("the reply has no 'data' list (an OpenAI-compatible /embeddings reply is "
                           '{"data": [{"index": 0, "embedding": [...]}, ...]})')
    items = body["data"]
    if len(items) != count:
        raise VectorsError(f"{len(items)} vector(s) for {count} input(s); the endpoint must return one per input")
    try:
        items = sorted(items, key=lambda d: d["index"])
        raw = [d["embedding"] for d in items]
    except (KeyError, TypeError) as exc:
        raise VectorsError(f"an item of 'data' lacks 'index' or 'embedding' ({exc})") from exc
    rows = [_one_vector(emb, i) for i, emb in enumerate(raw)]
    sizes = {len(v) for v in rows}
    if len(sizes) > 1:
        raise VectorsError(f"vectors of different sizes {sorted(sizes)}; one model gives one size")
    return np.stack(rows).astype(np.float32)


def _one_vector(emb: Any, index: int) -> np.ndarray:
    where = f"input {index}"
    if not isinstance(emb, list) or not emb:
        raise VectorsError(f"{where}: the embedding is {type(emb).__name__ if emb != [] else 'empty'}, not a list of numbers")
    tokens = isinstance(emb[0], list)
    if tokens:
        # llama.cpp without --pooling: one vector per token; their mean is the text's vector.
        if not all(isinstance(t, list) and t for t in emb):
            raise VectorsError(f"{where}: a mix of numbers and lists; expected one vector or one vector per token")
        if len({len(t) for t in emb}) > 1:
            raise VectorsError(f"{where}: token vectors of different sizes")
        matrix = _numbers(emb, where)
        vec = matrix.mean(axis=0)
    else:
        vec = _numbers(emb, where)
    if vec.ndim != 1:
        raise VectorsError(f"{where}: expected one vector or one vector per token, got {vec.ndim + tokens}-level nesting")
    return vec


def _numbers(values: list[Any], where: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise VectorsError(f"{where}: the embedding holds values that are not numbers") from exc
    if not np.isfinite(array).all():
        bad = next(x for x in array.flat if not math.isfinite(x))
        raise VectorsError(f"{where}: the embedding holds {bad!r}")
    return array


__all__ = ["VectorsError", "read_vectors"]
