"""Dashboards on PostgreSQL read through a role the server refuses writes to (real server, tests/pg.py).

Two layers, each tried by a crafted write straight through the connection the dashboards' store
uses (what code in a dashboard kernel could reach): the read-only store's sessions start with
``default_transaction_read_only``; and the role ``promptlooper db reader-role`` makes has no write
privilege at all, so even a session that turns read-only off is refused.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

import promptlooper as pl
from promptlooper.cli import main
from promptlooper.dashboard import serve
from promptlooper.store.postgres.roles import may_write


@pytest.fixture
def stored(pg_url: str, make_fake_exp) -> Iterator[str]:
    wb = pl.Workbench(pg_url)
    wb.run(make_fake_exp())
    wb.close()
    yield pg_url


def _reader_url(pg_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("READER_PASSWORD", "look-dont-touch")
    assert main(["--db", pg_url, "db", "reader-role", "pl_reader", "--password-env", "READER_PASSWORD"]) == 0
    out = capsys.readouterr().out
    assert "pl_reader" in out and "look-dont-touch" not in out  # the password is never printed
    return pg_url.replace("postgresql://postgres@", "postgresql://pl_reader:look-dont-touch@")


def _write_through(wb: pl.Workbench, *, turn_read_only_off: bool = False) -> None:
    with wb.store.cx.pool.connection() as conn:  # what the dashboards' store reads with
        if turn_read_only_off:
            conn.execute("SET default_transaction_read_only = off")
        conn.execute("INSERT INTO settings (key, value) VALUES ('crafted', '1')")


def test_a_dashboards_store_refuses_a_write_on_the_server_even_as_the_owner(stored: str) -> None:
    wb = pl.Workbench(stored, readonly=True)  # as notebooks/dashboards/*.ipynb open it
    try:
        assert wb.projects()  # it reads
        with pytest.raises(errors.ReadOnlySqlTransaction):
            _write_through(wb)
    finally:
        wb.close()


def test_the_reader_role_refuses_writes_a_session_tries_after_turning_read_only_off(
        stored: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    reader = _reader_url(stored, capsys, monkeypatch)
    assert may_write(stored) and not may_write(reader)
    wb = pl.Workbench(reader, readonly=True)
    try:
        assert [r["rank"] for r in wb.leaderboard("tests/fake-exp", as_frame=False)] == [1, 2, 3, 4]
        with pytest.raises(errors.InsufficientPrivilege):
            _write_through(wb, turn_read_only_off=True)
    finally:
        wb.close()
    # A plain connection as the reader, not through PromptLooper at all: refused as well.
    with psycopg.connect(reader, autocommit=True) as conn, pytest.raises(errors.ReadOnlySqlTransaction):
        conn.execute("DELETE FROM runs")
    # Tables a later migration adds are readable too (default privileges of the owner).
    with psycopg.connect(stored, autocommit=True) as conn:
        conn.execute("CREATE TABLE later_table (x int)")
    with psycopg.connect(reader, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM later_table").fetchone() == (0,)


def test_db_reader_role_wants_a_postgresql_store(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", str(tmp_path / "pl.db"), "db", "reader-role", "r"]) == 1
    assert "PostgreSQL" in capsys.readouterr().err and not (tmp_path / "pl.db").exists()


def test_the_dashboard_warns_when_given_a_role_that_may_write(stored: str, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    reader = _reader_url(stored, capsys, monkeypatch)
    # A taken port stops serve() right after the warning, before Voila starts.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert serve(stored, "127.0.0.1", port) == 1
        assert serve(reader, "127.0.0.1", port) == 1
    err = capsys.readouterr().err
    assert err.count("may write") == 1 and "reader-role" in err, err
