"""The PostgreSQL schema mirrors the SQLite one: the same migrations, the same tables and columns."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg

from promptlooper.store import Store
from promptlooper.store.postgres import PostgresStore
from promptlooper.store.postgres.schema import MIGRATIONS
from promptlooper.store.schema import migrations as sqlite_migrations


def test_every_sqlite_migration_has_its_postgresql_twin_in_the_same_order() -> None:
    assert [name for name, _ in MIGRATIONS] == [name for name, _ in sqlite_migrations]


def test_tables_and_columns_match_the_sqlite_store(tmp_path: Path, pg_url: str) -> None:
    Store(tmp_path / "s.db").close()
    PostgresStore(pg_url).close()
    with sqlite3.connect(tmp_path / "s.db") as c:
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                          " AND name NOT LIKE 'sqlite_%' AND name != '_sqlite_migrations'")]
        want = {t: [r[1] for r in c.execute(f"PRAGMA table_info({t})")] for t in tables}
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
                            " AND table_name != '_promptlooper_migrations' ORDER BY table_name, ordinal_position").fetchall()
    have: dict[str, list[str]] = {}
    for table, column in rows:
        if column != "rowid":  # PostgreSQL's stand-in for SQLite's implicit rowid (schema.py)
            have.setdefault(table, []).append(column)
    assert have == want


def test_stores_opening_a_new_database_at_once_migrate_it_once(pg_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def open_one() -> None:
        barrier.wait()
        try:
            PostgresStore(pg_url).close()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM _promptlooper_migrations").fetchone()[0] == len(MIGRATIONS)
