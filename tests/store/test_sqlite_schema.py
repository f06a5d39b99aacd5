"""The SQLite schema is made by its migrations only (store/migrating.py), the embedding cache included."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from promptlooper.store import Store


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as c:
        return {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_new_store_has_the_embedding_cache_from_its_migrations(tmp_path: Path) -> None:
    Store(tmp_path / "new.db").close()
    assert "embedding_cache" in _tables(tmp_path / "new.db")
    with sqlite3.connect(tmp_path / "new.db") as c:  # appended last: released migrations never change
        names = [r[0] for r in c.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    assert names.index("m007_embedding_cache") == 6  # later migrations follow it


def test_a_database_whose_embedder_made_the_table_keeps_its_vectors(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    Store(path).close()
    # As the embedder used to leave it: the table made outside the migrations, not recorded as one.
    with sqlite3.connect(path) as c:
        c.execute("DELETE FROM _sqlite_migrations WHERE name = 'm007_embedding_cache'")
        c.execute("DROP TABLE embedding_cache")
        c.execute("CREATE TABLE embedding_cache (key TEXT PRIMARY KEY, model TEXT NOT NULL, vector BLOB NOT NULL, created_at TEXT)")
        c.execute("INSERT INTO embedding_cache VALUES ('k', 'm', x'00008040', NULL)")
    store = Store(path)
    try:
        assert store.embedding_vectors(["k"]) == {"k": bytes.fromhex("00008040")}
    finally:
        store.close()
