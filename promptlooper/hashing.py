"""Canonical JSON and versioned content hashes.

Every identity in PromptLooper (a configuration, a run, a cached model call) is the SHA-256 of
the canonical JSON of what defines it, prefixed by a kind and a schema version. Canonical means
sorted keys, no whitespace, UTF-8, and floats written so that ``0.7`` and ``0.70`` agree. Bumping
``HASH_VERSION`` invalidates every key at once, which is the point: a change in what goes into a
key must never silently reuse old entries.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

HASH_VERSION = 1


def _normalise(value: Any) -> Any:
    # 1.0 and 1 must hash alike (YAML and JSON disagree on which one a user wrote).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """Deterministic JSON text for ``value`` (sorted keys, compact, integral floats as ints)."""
    return json.dumps(
        _normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def content_hash(kind: str, value: Any) -> str:
    """SHA-256 hex digest of ``value`` under ``kind`` and the current hash version."""
    payload = f"promptlooper:{kind}:v{HASH_VERSION}\n{canonical_json(value)}"
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def short(digest: str) -> str:
    """The 12-character prefix used in tables and messages."""
    return digest[:12]
