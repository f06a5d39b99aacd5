"""A postgresql:// URL selects the PostgreSQL store everywhere: Workbench, $DATABASE_URL, --db.

Sweeps here run on the in-process fake model against a real PostgreSQL (tests/pg.py); the CLI
runs in its own process, as a user runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import fake_experiment, write_experiment

import promptlooper as pl
from promptlooper.errors import StoreError
from promptlooper.store import open_store
from promptlooper.store.postgres import PostgresStore
from promptlooper.testing import FakeModel, FakeServer

CLI = [sys.executable, "-m", "promptlooper.cli"]


def test_a_workbench_on_a_url_sweeps_into_postgresql(pg_url: str, make_fake_exp, fake: FakeModel) -> None:
    wb = pl.Workbench(pg_url)
    try:
        exp = make_fake_exp()
        progress = wb.run(exp)
        assert isinstance(wb.store, PostgresStore)
        assert progress.status == "completed" and progress.done == 12 and progress.failed == 0
        eid = wb.store.experiment(exp.key)["id"]
        assert wb.store.run_counts(eid) == {"completed": 12}
        assert list(wb.leaderboard(exp.key)["rank"]) == [1, 2, 3, 4]
        fake.reset()
        again = wb.run(exp)  # resumed from the database: nothing left to call
        assert fake.stats()["requests"] == 0 and again.skipped == 12
        assert [s["status"] for s in wb.store.sweeps_of(eid)] == ["completed", "completed"]
    finally:
        wb.close()


def _env(**over: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PROMPTLOOPER_DB", "DATABASE_URL")}
    return {**env, "PYTHONPATH": str(Path(__file__).parents[2]), **over}


def test_database_url_selects_postgresql_for_the_cli(pg_url: str, tmp_path: Path) -> None:
    server = FakeServer()
    with server:
        exp_file = write_experiment(tmp_path / "exp.yaml", fake_experiment(server.base_url, name="shared", space={}))
        run = subprocess.run([*CLI, "run", str(exp_file)], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                             env=_env(DATABASE_URL=pg_url))
    assert run.returncode == 0, run.stderr
    assert not (tmp_path / "promptlooper.db").exists()  # no SQLite file beside it: the URL was used
    listed = subprocess.run([*CLI, "--db", pg_url, "experiments"], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env=_env())
    assert listed.returncode == 0, listed.stderr
    assert "tests" in listed.stdout and "shared" in listed.stdout
    store = open_store(pg_url, readonly=True)
    try:
        assert store.run_counts(store.experiment("tests/shared")["id"]) == {"completed": 3}
    finally:
        store.close()


def test_a_url_of_another_scheme_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unsupported database URL scheme 'mysql'"):
        open_store("mysql://u@127.0.0.1/x")
    res = subprocess.run([*CLI, "--db", "mysql://u@127.0.0.1/x", "experiments"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path, env=_env())
    assert res.returncode == 1 and "unsupported database URL scheme 'mysql'" in res.stderr
    assert list(tmp_path.iterdir()) == []  # and no file named after it


def test_sqlite_urls_and_paths_open_the_file(tmp_path: Path) -> None:
    for location in (str(tmp_path / "a.db"), f"sqlite:///{tmp_path / 'b.db'}"):
        store = open_store(location)
        store.close()
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["a.db", "b.db"]


def test_a_dashboard_on_a_url_hands_its_kernels_the_url() -> None:
    from promptlooper.dashboard import voila_command
    from promptlooper.store import shown_location

    url = "postgresql://reader:s3cret@db.internal:5432/promptlooper"
    _, env = voila_command(url, "127.0.0.1", 8402, preheat=False)
    assert env["PROMPTLOOPER_DB"] == url and env["PROMPTLOOPER_READONLY"] == "1"
    assert shown_location(url) == "postgresql://reader:***@db.internal:5432/promptlooper"
    assert shown_location("x.db") == str(Path("x.db").resolve())


def test_cli_commands_on_a_database_without_the_schema(pg_url: str, tmp_path: Path) -> None:
    listed = subprocess.run([*CLI, "--db", pg_url, "experiments"], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env=_env())
    assert listed.returncode == 1 and "no PromptLooper database at 127.0.0.1:" in listed.stderr
    endpoints = subprocess.run([*CLI, "--db", pg_url, "endpoints", "list"], capture_output=True, text=True, timeout=60,
                               cwd=tmp_path, env=_env())
    assert endpoints.returncode == 0 and "local" in endpoints.stdout, endpoints.stderr


def test_scorers_outside_a_sweep_use_the_database_url(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptlooper.scorers import env

    monkeypatch.delenv("PROMPTLOOPER_DB")
    monkeypatch.setenv("DATABASE_URL", pg_url)
    assert env.current().store_path == pg_url  # embeddings cached in the shared database, not in memory
