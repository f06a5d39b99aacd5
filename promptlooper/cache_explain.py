"""Why a run's call was (or was not) served from the cache: its key, recomputed from what went in.

A call's cache key is ``content_hash("call", material)`` of the provider's identity, the model,
the messages sent and every parameter (:func:`~promptlooper.engine.calls.cache_key_material`);
recomputing it from the stored stage shows exactly which part differs when two runs miss.
"""

from __future__ import annotations

from typing import Any

from .engine.calls import cache_key_material
from .hashing import canonical_json, content_hash
from .providers.registry import EndpointPool
from .store import Store


class _Identity:
    """A provider's identity alone: what the key material reads of a provider."""

    def __init__(self, identity: str):
        self.identity = identity


def explain(store: Store, run: dict[str, Any], pool: EndpointPool) -> list[dict[str, Any]]:
    """For each stage of a stored ``run``: its cache key, the recomputed one and their material."""
    out = []
    for stage in run["stages"]:
        if stage["kind"] != "prompt":
            out.append({"stage": stage["stage_name"], "kind": "function", "cache_key": None})
            continue
        identity = pool.provider(stage["endpoint"]).identity if pool.has(stage["endpoint"]) else stage["endpoint"]
        material = cache_key_material(_Identity(identity), stage["model_used"], stage["prompt_sent"], stage["parameters"] or {})  # type: ignore[arg-type]
        key = content_hash("call", material)
        out.append({"stage": stage["stage_name"], "kind": "prompt", "cache_key": stage["cache_key"],
                    "recomputed_key": key, "matches": key == stage["cache_key"], "material": material,
                    "canonical_json": canonical_json(material),
                    "in_cache": store.cache_entry(stage["cache_key"]) is not None})
    return out


__all__ = ["explain"]
