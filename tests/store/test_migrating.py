"""Our migration runner (store/migrating.py): one transaction for every pending migration, on the
store's own connection, recorded in sqlite-utils' table so either one can take over a database."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlite_utils

from promptlooper.store import Store, schema
from promptlooper.store.migrating import MigrationDb, Migrations, statements
from promptlooper.store.schema import migrations

ROOT = Path(__file__).resolve().parents[2]


def _objects(path: Path) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(path) as c:
        return sorted(c.execute("SELECT type, name, sql FROM sqlite_master"))


def _records(path: Path) -> list[tuple[int, str, str, str]]:
    with sqlite3.connect(path) as c:
        return list(c.execute("SELECT id, migration_set, name, applied_at FROM _sqlite_migrations ORDER BY id"))


def _by_sqlite_utils(path: Path) -> sqlite_utils.Migrations:
    """Our migration functions in sqlite-utils' own runner, applied to ``path``."""
    theirs = sqlite_utils.Migrations("promptlooper")
    for name, fn in migrations:
        theirs(name=name)(fn)
    theirs.apply(sqlite_utils.Database(path))
    return theirs


def _registry(steps) -> Migrations:
    copy = Migrations("promptlooper")
    for name, fn in steps:
        copy(name=name)(fn)
    return copy


def test_a_new_store_imports_neither_sqlite_utils_nor_pandas(tmp_path: Path) -> None:
    code = ("import sys; from promptlooper.store import Store; Store(sys.argv[1]).close();"
            " print([m for m in ('sqlite_utils', 'pandas', 'numpy', 'pyarrow') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "new.db")], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
    assert len(_records(tmp_path / "new.db")) == len(list(migrations))


def test_a_database_sqlite_utils_migrated_opens_without_running_anything(tmp_path: Path) -> None:
    path = tmp_path / "theirs.db"
    _by_sqlite_utils(path)
    before = _records(path)
    assert [name for _, _, name, _ in before] == [name for name, _ in migrations]
    Store(path).close()
    assert _records(path) == before


def test_a_database_our_runner_migrated_is_current_for_sqlite_utils_and_the_same(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours.db", tmp_path / "theirs.db"
    Store(ours).close()
    runner = _by_sqlite_utils(theirs)
    with sqlite3.connect(ours) as c:
        assert runner.pending(sqlite_utils.Database(c)) == []
    assert _objects(ours) == _objects(theirs)  # the record table and its index included
    assert [r[1:3] for r in _records(ours)] == [r[1:3] for r in _records(theirs)]


@pytest.mark.parametrize("k", [1, 7, 13])
def test_a_database_with_the_first_migrations_gets_the_missing_ones_in_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, k: int) -> None:
    path = tmp_path / "older.db"
    with monkeypatch.context() as m:
        m.setattr(schema, "migrations", _registry(list(migrations)[:k]))
        Store(path).close()
    first = _records(path)
    assert len(first) == k
    Store(path).close()
    assert _records(path)[:k] == first
    assert [name for _, _, name, _ in _records(path)] == [name for name, _ in migrations]
    Store(tmp_path / "new.db").close()
    assert _objects(path) == _objects(tmp_path / "new.db")


def test_a_migration_that_raises_leaves_the_database_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def m999_boom(db: MigrationDb) -> None:
        db.executescript("CREATE TABLE boom (x);")  # a script, as most migrations are
        raise RuntimeError("boom")

    path = tmp_path / "new.db"
    with monkeypatch.context() as m:
        m.setattr(schema, "migrations", _registry([*migrations, ("m999_boom", m999_boom)]))
        with pytest.raises(RuntimeError, match="boom"):
            Store(path)
    assert _objects(path) == []  # the earlier migrations and the record table rolled back too
    Store(path).close()  # and the file opens as a new one
    assert len(_records(path)) == len(list(migrations))


def test_stores_opening_a_new_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    # Three rounds at once, two processes each, every process waiting for the same instant.
    code = ("import sys, time; from promptlooper.store import Store;"
            " time.sleep(max(0.0, float(sys.argv[2]) - time.time())); Store(sys.argv[1]).close()")
    start = str(time.time() + 2.0)
    paths = [tmp_path / f"race{i}.db" for i in range(3)]
    procs = [subprocess.Popen([sys.executable, "-c", code, str(p), start], cwd=ROOT, stderr=subprocess.PIPE, text=True)
             for p in paths for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    for path in paths:
        assert [name for _, _, name, _ in _records(path)] == [name for name, _ in migrations]


def test_migrations_outside_a_transaction_are_refused() -> None:
    with pytest.raises(RuntimeError, match="inside a write transaction"):
        migrations.apply(sqlite3.connect(":memory:", isolation_level=None))


def test_a_name_registered_twice_is_refused() -> None:
    twice = Migrations("x")

    @twice()
    def m001_first(db: MigrationDb) -> None:
        db.execute("CREATE TABLE t (x)")

    with pytest.raises(ValueError, match="m001_first"):
        twice()(m001_first)


SCRIPT = """
    CREATE TABLE t (x TEXT);  -- a comment; with a semicolon
    CREATE TABLE log (x TEXT);
    CREATE TRIGGER t_log AFTER INSERT ON t BEGIN
        INSERT INTO log VALUES ('a;b');
        INSERT INTO log VALUES (new.x);
    END;
    INSERT INTO t VALUES ('it''s; still one')
"""


def test_a_script_is_split_at_the_ends_of_its_statements() -> None:
    parts = statements(SCRIPT)
    assert [p.split()[:3] for p in parts] == [["CREATE", "TABLE", "t"], ["--", "a", "comment;"],
                                              ["CREATE", "TRIGGER", "t_log"], ["INSERT", "INTO", "t"]]
    assert "END;" in parts[2] and "'it''s; still one'" in parts[3]


def test_a_script_runs_inside_the_open_transaction() -> None:
    # sqlite3's own executescript would COMMIT the transaction first (Python 3.11).
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    MigrationDb(conn).executescript(SCRIPT)
    assert conn.in_transaction
    assert [r[0] for r in conn.execute("SELECT x FROM log ORDER BY rowid")] == ["a;b", "it's; still one"]
    conn.execute("ROLLBACK")
    assert list(conn.execute("SELECT name FROM sqlite_master")) == []
