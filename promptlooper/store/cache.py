"""The response cache (every model call, by content hash), the embedding cache, and what they tell.

Part of :class:`~promptlooper.store.Store`. Both caches are shared by content across experiments.
Vectors are stored as little-endian float32 bytes; turning them into arrays is the embedder's job,
so the store needs no numpy.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from .batchwriter import now_iso
from .db import Queries
from .in_lists import marks, parts


class Cache(Queries):
    """Cached model responses and embedding vectors."""

    def cache_get_many(self, keys: Sequence[str]) -> dict[str, tuple[str, int, int, float]]:
        out: dict[str, tuple[str, int, int, float]] = {}
        with self.cx.read() as c:
            for chunk in parts(keys):
                for key, resp, tin, tout, lat in c.execute(
                    f"SELECT key, response, tokens_in, tokens_out, latency_ms FROM response_cache WHERE key IN ({marks(len(chunk))})",
                    chunk,
                ):
                    out[key] = (resp, tin or 0, tout or 0, lat or 0.0)
        return out

    def cache_entry(self, key: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM response_cache WHERE key = ?", [key]))
        if not rows:
            return None
        row = rows[0]
        row["request"] = json.loads(row["request"])
        return row


    def invalidate_cache(self, *, run_id: str | None = None, experiment_id: str | None = None) -> int:
        """Delete the cached responses behind one run or a whole experiment; returns how many."""
        with self.cx.write() as c:
            if run_id:
                keys = [r[0] for r in c.execute("SELECT cache_key FROM stage_results WHERE run_id = ? AND cache_key IS NOT NULL", (run_id,))]
            elif experiment_id:
                keys = [r[0] for r in c.execute(
                    "SELECT DISTINCT s.cache_key FROM stage_results s JOIN runs r ON r.id = s.run_id"
                    " WHERE r.experiment_id = ? AND s.cache_key IS NOT NULL", (experiment_id,))]
            else:
                raise ValueError("give run_id or experiment_id")
            c.executemany("DELETE FROM response_cache WHERE key = ?", [(k,) for k in keys])
            # The runs stay (their results are history) but are no longer "finished": the next
            # sweep calls the model again for them.
            if run_id:
                c.execute("UPDATE runs SET status = 'invalidated' WHERE id = ?", (run_id,))
            else:
                c.execute("UPDATE runs SET status = 'invalidated' WHERE experiment_id = ? AND status IN ('completed','cached')", (experiment_id,))
            return len(keys)

    def mean_tokens_out_by_model(self) -> dict[str, float]:
        """Mean output tokens of the cached responses, per model (a plan's estimate of what a call returns)."""
        with self.cx.read() as c:
            return {model: float(avg or 0) for model, avg in c.execute("SELECT model, AVG(tokens_out) FROM response_cache GROUP BY model")}

    # ------------------------------------------------------------------ embeddings
    def embedding_vectors(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The stored vectors (float32 bytes) of those embedding keys that are cached."""
        out: dict[str, bytes] = {}
        try:
            with self.cx.read() as c:
                for chunk in parts(keys):
                    out.update(c.execute(f"SELECT key, vector FROM embedding_cache WHERE key IN ({marks(len(chunk))})",
                                         chunk).fetchall())
        except sqlite3.OperationalError:
            return {}  # a read-only store of a database never migrated to the table: nothing cached
        return out

    def put_embeddings(self, model: str, rows: Sequence[tuple[str, bytes]]) -> None:
        """Cache vectors (key, float32 bytes) of one embedding model; a read-only store keeps none."""
        if self.readonly or not rows:
            return
        ts = now_iso()
        with self.cx.write() as c:
            c.executemany("INSERT OR IGNORE INTO embedding_cache (key, model, vector, created_at) VALUES (?,?,?,?)",
                          [(key, model, vector, ts) for key, vector in rows])
