"""``promptlooper migrate --to postgresql://…``: a SQLite store copied into PostgreSQL (real server, tests/pg.py).

What a team moving its store expects: the same leaderboard, runs, export and events on the other
side, the response cache carried over (a rerun on PostgreSQL makes no call), a rerun of migrate
that copies nothing twice, and a failed copy that leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers import fake_experiment, wait

import promptlooper as pl
from promptlooper.cli import main
from promptlooper.errors import StoreError
from promptlooper.store.copying import copy_store
from promptlooper.testing import FakeModel


@contextlib.contextmanager
def _opened(location: str) -> Iterator[pl.Workbench]:
    wb = pl.Workbench(location)
    try:
        yield wb
    finally:
        wb.close()


def _filled(path: Path, make_fake_exp) -> pl.Experiment:
    exp = make_fake_exp()
    with _opened(str(path)) as wb:
        wb.run(exp)
        wb.rate(_rated(wb, exp), stars=4, comment="good", by="ana")
        wb.approve(exp.key, wb.leaderboard(exp.key, as_frame=False)[0]["config_id"], by="ana", reason="best")
        wb.add_note("tests", "moved to the team server", by="ana")
        wb.add_webhook("run.*", "http://127.0.0.1:9/hook", {"Authorization": "HOOK_AUTH"})
    return exp


def _picture(wb: pl.Workbench, exp: pl.Experiment) -> dict:
    return {"board": wb.leaderboard(exp.key, as_frame=False), "counts": wb.store.run_counts(wb.experiment(exp.key)["id"]),
            "export": {k: v for k, v in json.loads(wb.export(exp.key, "json")).items() if k != "exported_at"}, "events": wb.events(exp.key),
            "notes": wb.notes("tests"), "webhooks": wb.webhooks(), "ratings": wb.ratings(_rated(wb, exp))}


def _rated(wb: pl.Workbench, exp: pl.Experiment) -> str:
    return min(r["id"] for r in wb.runs(exp.key, limit=100))


def test_a_migrated_store_ranks_exports_and_caches_as_the_file_did(tmp_path: Path, pg_url: str, make_fake_exp,
                                                                   fake: FakeModel, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "pl.db"
    exp = _filled(db, make_fake_exp)
    with _opened(str(db)) as wb:
        before = _picture(wb, exp)
    assert main(["migrate", "--from", str(db), "--to", pg_url]) == 0
    out = capsys.readouterr().out
    assert "verified" in out and "runs" in out and "response_cache" in out
    with _opened(pg_url) as wb:
        assert _picture(wb, exp) == before
        fake.reset()
        again = wb.run(exp)
        assert fake.stats()["requests"] == 0 and again.skipped == 12
        other = make_fake_exp(name="second")
        second = wb.run(other)  # the copied response cache serves every call
        assert fake.stats()["requests"] == 0 and second.cached == 12
        # New rows get new ids: the identity sequences were moved past the copied ones.
        assert min(e["id"] for e in wb.events(other.key)) > max(e["id"] for e in before["events"])
        assert wb.add_note("tests", "after")["id"] > max(n["id"] for n in before["notes"])


def test_a_second_migrate_copies_only_what_the_file_gained(tmp_path: Path, pg_url: str, make_fake_exp) -> None:
    db = tmp_path / "pl.db"
    exp = _filled(db, make_fake_exp)
    first = copy_store(str(db), pg_url)
    assert first.copied > 0 and all(t.already == 0 for t in first.tables)
    again = copy_store(str(db), pg_url)
    assert again.copied == 0 and [t.already for t in again.tables] == [t.source for t in first.tables]
    with _opened(str(db)) as wb:
        wb.add_note("tests", "one more line", by="bo")
    third = copy_store(str(db), pg_url)
    assert {t.table: t.copied for t in third.tables if t.copied} == {"project_notes": 1}
    with _opened(pg_url) as wb:
        assert [n["text"] for n in wb.notes("tests")][-1] == "one more line" and len(wb.runs(exp.key, limit=100)) == 12


def test_a_row_the_target_changed_since_is_kept_and_a_renumbered_history_is_refused(tmp_path: Path, pg_url: str,
                                                                                     make_fake_exp) -> None:
    db = tmp_path / "pl.db"
    exp = _filled(db, make_fake_exp)
    copy_store(str(db), pg_url)
    with _opened(pg_url) as wb:  # the team goes on on PostgreSQL: another configuration approved
        other = wb.leaderboard(exp.key, as_frame=False)[1]["config_id"]
        wb.approve(exp.key, other, by="bo", reason="on second thought")
    again = copy_store(str(db), pg_url)
    kept = {t.table: t.kept for t in again.tables if t.kept}
    # (the webhook's cursor moved on too: the PostgreSQL side's process queued the approval for it)
    assert kept == {"configurations": 1, "webhooks": 1} and again.copied == 0
    with _opened(pg_url) as wb:
        assert wb.store.configuration(wb.experiment(exp.key)["id"], other)["decided_by"] == "bo"  # the target's kept
        events_before = wb.events(exp.key)
    # Now the file goes on too: its next event has the number PostgreSQL gave to the approval above.
    with _opened(str(db)) as wb:
        wb.request_human(exp.key, "written after the copy")
    with pytest.raises(StoreError, match="events.*numbers the target uses"):
        copy_store(str(db), pg_url)
    with _opened(pg_url) as wb:
        assert wb.events(exp.key) == events_before


def test_two_migrates_racing_copy_each_row_once(tmp_path: Path, pg_url: str, make_fake_exp) -> None:
    db = tmp_path / "pl.db"
    _filled(db, make_fake_exp)
    reports: list[Any] = []
    errors: list[BaseException] = []

    def copy() -> None:
        try:
            reports.append(copy_store(str(db), pg_url))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=copy) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(reports) == 2
    first, second = sorted(reports, key=lambda r: -r.copied)
    assert second.copied == 0 and first.copied == sum(t.source for t in first.tables)
    with _opened(pg_url) as wb:
        assert len(wb.runs("tests/fake-exp", limit=100)) == 12


def test_a_store_copied_while_a_sweep_writes_it_is_a_consistent_snapshot(tmp_path: Path, pg_url: str) -> None:
    db = tmp_path / "pl.db"
    fake = FakeModel(f"test-{uuid.uuid4().hex[:12]}", latency=0.05)
    exp = fake_experiment(fake.base_url, name="busy", space={"answer.temperature": [round(i * 0.01, 2) for i in range(100)]},
                          concurrency=4)
    with _opened(str(db)) as wb:
        handle = wb.start(exp)
        wait(lambda: handle.progress.done >= 20, timeout=30)
        copies = []
        while not handle.done():  # each copy reads one snapshot: a run's scores never without their run
            copies.append(copy_store(str(db), pg_url))
        assert handle.wait(60).status == "completed"
        last = copy_store(str(db), pg_url)
    assert len(copies) >= 2 and sum(c.copied for c in copies) > 0
    with _opened(pg_url) as wb:
        runs = wb.runs(exp.key, limit=1000)
        assert len(runs) == 300 and all(r["status"] in ("completed", "cached") for r in runs)
        board = wb.leaderboard(exp.key, as_frame=False)
    with _opened(str(db)) as wb:
        assert wb.leaderboard(exp.key, as_frame=False) == board
        sweep = wb.store.latest_sweep(wb.experiment(exp.key)["id"])
        assert sweep["status"] == "completed" and sweep["done"] == 300 and wb.experiment(exp.key)["status"] == "completed"
    # The sweep's row and its experiment's changed in the file after the first copy: a later copy's newer values won.
    updated = {t.table for c in [*copies[1:], last] for t in c.tables if t.updated}
    assert updated == {"sweeps", "experiments"}


def test_no_key_value_reaches_the_database(tmp_path: Path, pg_url: str, make_fake_exp,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "pl.db"
    monkeypatch.setenv("TEAM_LLM_KEY", "sk-team-very-secret-1234")
    monkeypatch.setenv("HOOK_AUTH", "Bearer hook-very-secret-5678")
    _filled(db, make_fake_exp)
    with _opened(str(db)) as wb:
        wb.add_endpoint("team", "http://127.0.0.1:9/v1", api_key_env="TEAM_LLM_KEY")
    copy_store(str(db), pg_url)
    with psycopg.connect(pg_url) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        dump = "".join(str(conn.execute(f'SELECT json_agg(t)::text FROM "{t}" t').fetchone()[0]) for t in tables)
    assert "TEAM_LLM_KEY" in dump and "HOOK_AUTH" in dump  # the variables' names, as in the file
    assert "very-secret" not in dump


def test_a_copy_that_fails_half_way_leaves_the_target_as_it_was(tmp_path: Path, pg_url: str, make_fake_exp) -> None:
    db = tmp_path / "pl.db"
    _filled(db, make_fake_exp)
    with sqlite3.connect(db) as c:  # a value PostgreSQL's column cannot take, in a table copied after many others
        c.execute("UPDATE scores SET value = 'not a number' WHERE rowid = (SELECT max(rowid) FROM scores)")
    with pytest.raises(StoreError, match="nothing was written"):
        copy_store(str(db), pg_url)
    with _opened(pg_url) as wb:
        assert wb.projects() == [] and wb.webhooks() == []


def test_migrate_refuses_a_sqlite_target_and_another_teams_database(tmp_path: Path, pg_url: str, make_fake_exp,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "pl.db"
    _filled(db, make_fake_exp)
    assert main(["migrate", "--from", str(db), "--to", str(tmp_path / "other.db")]) == 1
    assert "postgresql://" in capsys.readouterr().err and not (tmp_path / "other.db").exists()
    with _opened(pg_url) as wb:
        wb.create_project("their-project")
    assert main(["migrate", "--from", str(db), "--to", pg_url]) == 1
    assert "their-project" in capsys.readouterr().err
    with _opened(pg_url) as wb:
        assert [p["name"] for p in wb.projects()] == ["their-project"]
    assert main(["migrate", "--from", str(db), "--to", pg_url, "--force"]) == 0
    with _opened(pg_url) as wb:
        assert sorted(p["name"] for p in wb.projects()) == ["tests", "their-project"]


def test_a_file_that_is_no_database_is_named_and_nothing_written(tmp_path: Path, pg_url: str) -> None:
    junk = tmp_path / "notes.db"
    junk.write_bytes(b"not a database at all " * 100)
    with pytest.raises(StoreError, match="notes.db"):
        copy_store(str(junk), pg_url)
    with _opened(pg_url) as wb:
        assert wb.projects() == []


def test_migrate_names_a_missing_source_file(tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--from", str(tmp_path / "nope.db"), "--to", pg_url]) == 1
    assert "nope.db" in capsys.readouterr().err and not (tmp_path / "nope.db").exists()
