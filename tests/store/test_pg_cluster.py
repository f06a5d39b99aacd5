"""The tests' PostgreSQL cluster (tests/pg.py): a real server, one fresh database per test."""

from __future__ import annotations

import psycopg
from pg import Cluster


def test_each_test_gets_an_empty_database_of_a_real_server(pg_url: str, pg_cluster: Cluster) -> None:
    with psycopg.connect(pg_url) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()[0]
        assert int(version) >= 150000
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0
        conn.execute("CREATE TABLE t (x int)")
    assert pg_url.startswith(f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/t_")


def test_a_second_test_does_not_see_the_first_ones_tables(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0
