"""Helpers shared by the tests (a module of its own: `conftest` names two files, tests/ and tests/ui/).

A small experiment on the fake endpoint (and its YAML file, for the CLI), waiting, free ports, and
reading another process's store with plain SQL, on either backend: ``db`` is a SQLite file or a
``postgresql://`` URL (tests/conftest.py's ``db``). The statements are ones both dialects read the
same way, with ``?`` placeholders (turned into psycopg's ``%s`` for PostgreSQL); the tests use them
to look under the facade (row counts, the sweep row) exactly as before, whatever the backend.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import yaml

import promptlooper as pl


def wait(predicate: Any, timeout: float = 10.0, every: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not reached in time")


async def until(predicate: Any, timeout: float = 10.0) -> None:
    """:func:`wait` on an event loop: poll ``predicate`` without blocking the loop."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def open_gate() -> None:
    """A sweep's gate that never holds a call (engine/calls.py, claims' ``acquire``)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _is_postgres(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


def store_exists(db: str) -> bool:
    """Whether another process has made the store yet: a file appears; a server's database is there."""
    return _is_postgres(db) or Path(db).exists()


def db_rows(db: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """All rows of one statement on the store at ``db`` (a file or a PostgreSQL URL)."""
    if _is_postgres(db):
        import psycopg  # the optional driver: only PostgreSQL runs need it

        with psycopg.connect(db, autocommit=True) as c:
            cur = c.execute(sql.replace("?", "%s"), args)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []  # an UPDATE returns none
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


def db_value(db: str, sql: str, *args: Any, default: Any = None) -> Any:
    """First column of the first row, or ``default`` while the other process creates the schema
    (no file / no tables yet)."""
    if _is_postgres(db):
        import psycopg

        not_yet: tuple[type[Exception], ...] = (psycopg.errors.UndefinedTable,)
    else:
        not_yet = (sqlite3.OperationalError,)
    try:
        rows = db_rows(db, sql, *args)
    except not_yet:
        return default
    return rows[0][0] if rows else default


def sweep_status(db: str) -> str | None:
    return db_value(db, "SELECT status FROM sweeps ORDER BY started_at DESC LIMIT 1")


def runs_done(db: str) -> int:
    return int(db_value(db, "SELECT COUNT(*) FROM runs WHERE status IN ('completed','cached')", default=0))


def fake_experiment(base_url: str, name: str = "fake-exp", **over: Any) -> pl.Experiment:
    """A small experiment on the fake endpoint: 2 temperatures x 2 personas x 3 samples."""
    data: dict[str, Any] = {
        "project": "tests",
        "name": name,
        "samples": [
            {"question": "capital of France", "reference": "paris"},
            {"question": "capital of Japan", "reference": "tokyo"},
            {"question": "capital of Italy", "reference": "rome"},
        ],
        "stages": [{"name": "answer", "model": "fake/fake-small", "system": "{{ persona }}", "user": "Q: {{ question }}",
                    "params": {"max_tokens": 8}}],
        "space": {"answer.temperature": [0.0, 0.5], "persona": ["terse", "verbose"]},
        "scorers": [{"name": "length", "max_words": 6}, {"name": "keyword", "words": ["alpha", "bravo"], "weight": 2}],
        "endpoints": {"fake": {"base_url": base_url, "max_retries": 8, "max_concurrency": 16}},
        "concurrency": 8,
    }
    data.update(over)
    if "persona" not in data["space"] and "stages" not in over:
        data["stages"][0].pop("system")
    return pl.Experiment.model_validate(data)


def temperature_sweep(base_url: str, name: str, n_temps: int, **over: Any) -> pl.Experiment:
    """:func:`fake_experiment` over ``n_temps`` temperatures (0.00, 0.01, ...), 4 calls at a time:
    ``3 * n_temps`` runs, long enough to steer or interrupt on a slow server."""
    return fake_experiment(base_url, name=name, space={"answer.temperature": [round(i * 0.01, 2) for i in range(n_temps)]},
                           **{"concurrency": 4, **over})


def write_experiment(path: Path, exp: pl.Experiment) -> Path:
    """``exp`` as the YAML file a user hands the CLI."""
    path.write_text(yaml.safe_dump(exp.model_dump(mode="json", exclude_none=True)))
    return path
