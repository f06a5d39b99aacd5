"""A dashboard's read-only role: the PostgreSQL server itself refuses its writes."""

from __future__ import annotations

import psycopg
import pytest

import promptlooper as pl
from promptlooper.errors import StoreError
from promptlooper.store.postgres import PostgresStore
from promptlooper.store.postgres.roles import create_reader_role


def test_a_reader_role_reads_everything_and_the_server_refuses_its_writes(pg_url: str, make_fake_exp) -> None:
    wb = pl.Workbench(pg_url)
    exp = make_fake_exp()
    wb.run(exp)
    wb.close()
    reader_url = create_reader_role(pg_url, "dashboard_reader")
    assert reader_url.startswith("postgresql://dashboard_reader@127.0.0.1:")
    dashboard = pl.Workbench(reader_url, readonly=True)
    try:
        assert list(dashboard.leaderboard(exp.key)["rank"]) == [1, 2, 3, 4]
        assert len(dashboard.runs(exp.key, limit=100)) == 12
    finally:
        dashboard.close()
    # Even a client that does not ask for a read-only store cannot write as this role.
    with pytest.raises(StoreError, match="read-only transaction"):
        PostgresStore(reader_url)
    with psycopg.connect(reader_url, autocommit=True) as conn, pytest.raises(psycopg.Error, match="permission denied for table runs"):
        conn.execute("SET default_transaction_read_only = off")  # the role's setting, undone by the session,
        conn.execute("DELETE FROM runs")  # still lacks the privilege
    assert create_reader_role(pg_url, "dashboard_reader") == reader_url  # again: grants refreshed, no error
