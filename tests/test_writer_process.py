"""The sweep's writer process, and the hashes the engine builds from parts.

A sweep hands its result batches to a child process (promptlooper.store.batchwriter); these tests
hold what that must not change: everything committed survives the parent's death, a batch cut off
midway is never half-written, a failing batch is reported and the next one still lands, a terminal's
Ctrl+C stops the sweep but not its writer, and a machine where the child cannot start still gets
its results (from a thread). The cache key and run id fast paths must equal the general hash, or a
cache filled before would silently stop hitting.
"""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import struct
import subprocess
import sys
import warnings

import pytest
from helpers import fake_experiment, runs_done, temperature_sweep, wait, write_experiment

import promptlooper as pl
from promptlooper.engine import sweep as sweep_module
from promptlooper.engine.calls import cache_key_material, call_key
from promptlooper.hashing import canonical_json, content_hash
from promptlooper.store import Store
from promptlooper.store.batchwriter import WriterError, WriterProcess
from promptlooper.store.store import ResultBatch
from promptlooper.sweeps.runs import run_id
from promptlooper.testing import FakeServer

CLI = [sys.executable, "-m", "promptlooper.cli"]


class _Provider:
    def __init__(self, identity: str):
        self.identity = identity


@pytest.mark.parametrize(
    ("messages", "params"),
    [
        ([{"role": "user", "content": "Q: 2+2?"}], {"temperature": 1.0, "max_tokens": 16}),
        ([{"role": "system", "content": "Réponds « bref »\n\t\"quoted\""}, {"role": "user", "content": "日本語 ✓"}],
         {"temperature": 0.7, "top_p": 0.90, "seed": 3, "stop": ["\n", "END"], "extra": {"b": 1.0, "a": [1.5, 2.0]}}),
        ([{"role": "user", "content": [{"type": "text", "text": "parts"}]}], {}),  # not all strings: general path
    ],
)
def test_call_key_from_parts_equals_the_content_hash(messages, params):
    provider = _Provider("http://127.0.0.1:9/v1")
    key, messages_json = call_key(provider.identity, "m-1", messages, canonical_json(params))
    assert key == content_hash("call", cache_key_material(provider, "m-1", messages, params))  # type: ignore[arg-type]
    assert messages_json == canonical_json(messages)


def test_run_id_is_the_content_hash_of_its_parts():
    assert run_id("exp", "cfg", "id:7", 2) == content_hash("run", ["exp", "cfg", "id:7", 2])[:32]


# ---------------------------------------------------------------------- the process itself
def _batch(experiment_id: str, sweep_id: str | None, n: int, start: int = 0) -> ResultBatch:
    batch = ResultBatch()
    for i in range(start, start + n):
        rid = f"run{i:05d}"
        batch.run_ids.append(rid)
        batch.runs.append((rid, experiment_id, "cfg", f"s{i}", i, 0, sweep_id, "completed", None, "t0", "t1", 1.0, 1.0,
                           3, 4, 0.0, 0.5, f"out {i}"))
        batch.stages.append((rid, 0, "answer", "prompt", "[]", f"out {i}", "m", "fake", "{}", 3, 4, 1.0, 0, None))
        batch.scores.append((rid, "length", 0.5, None, "length", "{}"))
    batch.add_event(None, experiment_id, "run.completed", {"n": n})
    return batch


@pytest.fixture()
def experiment_db(tmp_path):
    """A store holding one experiment (runs must belong to one) and its id."""
    db = str(tmp_path / "w.db")
    store = Store(db)
    experiment_id = store.upsert_experiment("p", "e", {})
    store.close()
    return db, experiment_id


def _count(db: str, table: str) -> int:
    with sqlite3.connect(db) as c:
        return int(c.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_writer_commits_each_batch_before_answering(experiment_db):
    db, experiment_id = experiment_db
    writer = WriterProcess(db)
    try:
        event_ids = writer.write(_batch(experiment_id, None, 100).rows(), None)
        assert len(event_ids) == 1
        assert _count(db, "runs") == 100 and _count(db, "stage_results") == 100 and _count(db, "scores") == 100
        writer.write(_batch(experiment_id, None, 50, start=100).rows(), None)
        assert _count(db, "runs") == 150
    finally:
        writer.close()


def test_a_failing_batch_is_reported_whole_and_the_next_one_lands(experiment_db):
    db, experiment_id = experiment_db
    writer = WriterProcess(db)
    try:
        bad = _batch("no-such-experiment", None, 10)  # a foreign key the store refuses
        with pytest.raises(WriterError, match="FOREIGN KEY"):
            writer.write(bad.rows(), None)
        assert _count(db, "runs") == 0 and _count(db, "events") == 0  # nothing of it: one transaction
        writer.write(_batch(experiment_id, None, 10).rows(), None)
        assert _count(db, "runs") == 10
    finally:
        writer.close()


def test_when_the_parent_dies_every_complete_batch_is_committed_and_a_cut_one_is_not(experiment_db):
    db, experiment_id = experiment_db
    writer = WriterProcess(db)
    proc = writer.proc
    assert proc.stdin is not None and proc.stdout is not None
    # What a parent killed mid-send leaves in the pipe: three whole batches (never acknowledged:
    # nobody reads the answers any more) and the first half of a fourth.
    proc.stdout.close()
    for k in range(3):
        data = pickle.dumps((_batch(experiment_id, None, 200, start=200 * k).rows(), None))
        proc.stdin.write(struct.pack("<Q", len(data)) + data)
    data = pickle.dumps((_batch(experiment_id, None, 200, start=600).rows(), None))
    proc.stdin.write(struct.pack("<Q", len(data)) + data[: len(data) // 2])
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    assert _count(db, "runs") == 600
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_dead_writer_is_an_error_not_a_hang(experiment_db):
    db, experiment_id = experiment_db
    writer = WriterProcess(db)
    writer.proc.kill()
    writer.proc.wait()
    with pytest.raises(WriterError, match="exited"):
        writer.write(_batch(experiment_id, None, 5).rows(), None)
    writer.close()


# ---------------------------------------------------------------------- through sweeps
def test_ctrl_c_at_the_terminal_stops_the_sweep_and_keeps_every_finished_run(tmp_path, db):
    # A terminal sends SIGINT to the whole foreground process group: the CLI and, unless it has a
    # session of its own, its writer process, which would die before committing the last batch.
    with FakeServer(latency=0.02) as srv:
        path = write_experiment(tmp_path / "ctrlc.yaml", temperature_sweep(srv.base_url, "ctrlc", 60))
        proc = subprocess.Popen([*CLI, "--db", db, "run", str(path), "--quiet"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        wait(lambda: os.path.exists(db) and runs_done(db) >= 20, timeout=60, every=0.01)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        calls_before = srv.stats()["completions"]
        done = runs_done(db)
        # Every call that came back was stored as a run: none is asked again on the re-run.
        res = subprocess.run([*CLI, "--db", db, "run", str(path), "--quiet"], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert srv.stats()["completions"] - calls_before == 180 - done
    assert runs_done(db) == 180


def test_without_a_writer_process_the_sweep_writes_from_a_thread(tmp_path, db, monkeypatch):
    def no_process(path):
        raise OSError("no interpreter to start")

    monkeypatch.setattr(sweep_module, "WriterProcess", no_process)
    with FakeServer() as srv:
        wb = pl.Workbench(db)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            progress = wb.run(fake_experiment(srv.base_url, name="thread"))
        wb.close()
    assert any("no writer process" in str(w.message) for w in caught)
    assert progress.status == "completed" and progress.failed == 0
    assert runs_done(db) == progress.total > 0


def test_a_sweep_returns_with_everything_committed_and_close_waits_for_its_writers(tmp_path, db, monkeypatch):
    started: list[WriterProcess] = []

    class Recorded(WriterProcess):
        def __init__(self, path: str):
            super().__init__(path)
            started.append(self)

    monkeypatch.setattr(sweep_module, "WriterProcess", Recorded)
    with FakeServer() as srv:
        wb = pl.Workbench(db)
        progress = wb.run(fake_experiment(srv.base_url, name="first"))
        assert runs_done(db) == progress.total  # committed when run() returns, checkpoint or not
        wb.run(fake_experiment(srv.base_url, name="second"))  # beside the first one's last checkpoint
        assert runs_done(db) == 2 * progress.total
        wb.close()
    assert len(started) == 2 and all(w.proc.returncode == 0 for w in started)
    for path in tmp_path.glob("pl.db*"):  # nothing moves under a reader any more
        path.read_bytes()


def test_the_plan_names_its_runs_as_run_id_does():
    from promptlooper.engine.sweep import SweepPlan
    from promptlooper.sweeps.space import Configuration

    configs = [Configuration(id=f"cfg{i}", stages=(), vars={}, varied={}) for i in range(2)]
    samples = [("id:1", {}), ('id:"quoted" ✓', {}), ("0f3a", {})]
    plan = SweepPlan("exp-1", configs, samples, repeat=2, strategy="grid")
    got = [item.run_id for item in plan.items(set())]
    assert got == [run_id("exp-1", c.id, sid, r) for c in configs for sid, _ in samples for r in range(2)]
