"""What a sweep sends a PostgreSQL store over and over: the statements the server sees.

The server's own statement log (``log_statement = all`` on the test's database) shows what was sent.

* A claims tick (every 0.1 s of a sweep sharing calls) sends the same few statements whatever
  the number of keys it renews, releases and waits for: written with one placeholder a key,
  every batch size was a new statement text the server parsed and planned again (dozens of
  shapes of ``DELETE … key IN ($2,…,$N)`` in one benchmark run). What a tick decides is checked
  on both backends in tests/test_shared_calls*.py.
* A cache look-up (every loop turn) is one statement, not a pooled connection's liveness check
  and then the look-up; its held connection lost, the next look-up still answers.
* Cache look-ups are planned for their keys, not from a plan the server kept since the cache was
  small (a scan of the whole table for every look-up, once it grew).
* A worker's batch is pipelined after its lease's fence: a statement that fails on the server
  after others were sent still leaves nothing of the batch, nor of its progress.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from promptlooper.store import CacheEntry, RunRecord, now_iso
from promptlooper.store.chunks import chunk_ranges
from promptlooper.store.claims import ClaimTick
from promptlooper.store.postgres import PostgresStore
from promptlooper.store.records import ResultBatch

# "… LOG:  execute <unnamed>: SQL" (extended protocol) or "… LOG:  statement: SQL" (simple)
_LOGGED = re.compile(r"LOG:  (?:execute [^:]*|statement): (.*)$")


def _claims_statements(log: str) -> set[str]:
    return {m.group(1).strip() for line in log.splitlines() if (m := _LOGGED.search(line)) and "call_claims" in m.group(1)}


def _entry(key: str) -> CacheEntry:
    return CacheEntry(key, "http://x", "m", {"messages": []}, f"reply to {key}", 3, 4, 5.0)


def _tick(owner: str, **over: Any) -> ClaimTick:
    return ClaimTick(**{"owner": owner, "now": time.time(), "ttl": 30.0, "stale_after": 5.0, "claiming": True, **over})


def _round(store: PostgresStore, n: int) -> None:
    """A sharer's tick of each kind with ``n`` keys, as a sweep of ``n`` calls in flight makes them."""
    keys = [f"n{n}-{i:04d}" for i in range(n)]
    store.claims_tick(_tick("a", claiming=None))
    store.claims_tick(_tick("a", adopt=keys[: n // 2]))
    store.claims_tick(_tick("a", claim=keys[n // 2 :]))
    store.claims_tick(_tick("a", renew=keys))
    store.write_results([], cache=[_entry(k) for k in keys[: n // 2]])
    released = store.claims_tick(_tick("a", release_if_cached=keys[: n // 2], release=keys[n // 2 :])).released
    assert released == set(keys[: n // 2])
    assert store.call_claims() == []


def test_claims_ticks_send_one_statement_shape_whatever_the_number_of_keys(pg_cluster: Any, pg_url: str, admin: Any) -> None:
    admin.execute(f'ALTER DATABASE "{pg_url.rsplit("/", 1)[1]}" SET log_statement = \'all\'')
    store = PostgresStore(pg_url)  # its sessions start after the setting: they log every statement
    try:
        shapes = []
        for n in (4, 37, 500):  # 500: more keys than a portable statement takes (CHUNK)
            start = pg_cluster.log.stat().st_size
            _round(store, n)
            with open(pg_cluster.log) as f:
                f.seek(start)
                shapes.append(_claims_statements(f.read()))
        assert shapes[0], "the server logged no claims statement: the test sees nothing"
        assert shapes[0] == shapes[1] == shapes[2]
        assert not any("$9" in s for s in shapes[2])  # keys travel as one array, not one placeholder each
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------- cache look-ups
def _logged(log: Any, start: int) -> list[str]:
    with open(log) as f:
        f.seek(start)
        return [m.group(1).strip() for line in f.read().splitlines() if (m := _LOGGED.search(line))]


def test_a_cache_look_up_is_one_statement_on_a_held_connection(pg_cluster: Any, pg_url: str, admin: Any) -> None:
    admin.execute(f'ALTER DATABASE "{pg_url.rsplit("/", 1)[1]}" SET log_statement = \'all\'')
    store = PostgresStore(pg_url)
    try:
        store.write_results([], cache=[_entry("k1")])
        assert set(store.cache_get_many(["k1", "k2"])) == {"k1"}
        start = pg_cluster.log.stat().st_size
        for _ in range(10):
            assert set(store.cache_get_many(["k1", "k2"])) == {"k1"}
        time.sleep(0.2)  # the server's log is written by its own process
        sent = _logged(pg_cluster.log, start)
        # Nothing but the look-ups: no liveness check of a pooled connection before each.
        assert len(sent) == 10 and all(s.startswith("SELECT key, response") for s in sent), sent
    finally:
        store.close()


def test_a_cache_look_up_after_its_connection_was_dropped_answers(pg_url: str, admin: Any) -> None:
    store = PostgresStore(pg_url)
    try:
        store.write_results([], cache=[_entry("k1")])
        assert set(store.cache_get_many(["k1"])) == {"k1"}
        # Every session of the store ends (a restart, an admin): the next look-ups still answer.
        ended = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                              " WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall()
        assert ended
        for _ in range(3):
            assert store.cache_get_many(["k1", "k2"]) == {"k1": ("reply to k1", 3, 4, 5.0)}
        store.write_results([], cache=[_entry("k2")])
        assert set(store.cache_get_many(["k1", "k2"])) == {"k1", "k2"}
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------- pipelined batches
def _run(eid: str, sid: str, rid: str) -> RunRecord:
    ts = now_iso()
    return RunRecord(id=rid, experiment_id=eid, config_id="c", sample_id="s0", sample_index=0, repeat=0, sweep_id=sid,
                     status="completed", started_at=ts, completed_at=ts, duration_ms=1.0, score=1.0, output="x")


def test_a_workers_batch_that_fails_on_the_server_leaves_nothing(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    try:
        eid = store.upsert_experiment("proj", "exp", {"name": "exp"})
        sid = store.queue_sweep(eid, "grid", 3, 0, {"workers": True}, chunk_ranges(1, 3, 3), 3)
        lease = store.claim_chunk("w", 30.0)
        assert lease is not None
        update = {"id": sid, "fence": (lease.index, lease.generation, 30.0), "add": {"done": 2, "tokens_in": 10}}
        bad = ResultBatch()
        bad.add_cache(_entry("k1"))
        bad.add_run(_run(eid, sid, "r1"), replace=False)
        bad.add_run(_run("no-such-experiment", sid, "r2"), replace=False)  # its runs row fails (foreign key)
        bad.add_event(now_iso(), eid, "run.completed", {"run_id": "r1"})
        with pytest.raises(Exception, match="foreign key"):
            store.write_chunk_batch(bad, update)
        row = store.sweep(sid)
        assert (row["done"], row["tokens_in"]) == (0, 0) and store.cache_get_many(["k1"]) == {}
        assert store.run_counts(eid) == {} and store.events(eid) == []
        good = ResultBatch()
        good.add_cache(_entry("k1"))
        good.add_run(_run(eid, sid, "r1"), replace=False)
        good.add_event(now_iso(), eid, "run.completed", {"run_id": "r1"})
        assert len(store.write_chunk_batch(good, update)) == 1  # the worker's lease and store still work
        assert store.sweep(sid)["done"] == 2 and set(store.cache_get_many(["k1"])) == {"k1"}
        assert [e["type"] for e in store.events(eid)] == ["run.completed"]
    finally:
        store.close()


def _seq_scans(admin: Any) -> int:
    """Whole-table scans of the cache, as published by sessions that ended (a session publishes
    its counts at its end, an idle one only every ten seconds or so)."""
    row = admin.execute("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'response_cache'").fetchone()
    return int(row[0] or 0)


def test_cache_look_ups_read_by_the_index_once_the_cache_grew(pg_url: str, admin: Any) -> None:
    # A sweep's first look-ups meet a small cache (its statistics, as autovacuum gathers them, say
    # so); a plan made then (a scan of the whole table) must not serve the look-ups that follow,
    # once the table holds thousands of entries.
    store = PostgresStore(pg_url)
    try:
        store.write_results([], cache=[_entry(f"first-{i}") for i in range(20)])
        admin.execute("ANALYZE response_cache")
        for i in range(12):  # these may scan the table: it is one page
            assert store.cache_get_many([f"early-{i}", f"early-{i + 1}"]) == {}
        store.write_results([], cache=[_entry(f"k{i:05d}") for i in range(3000)])
        for i in range(30):
            assert set(store.cache_get_many([f"k{i:05d}", "missing"])) == {f"k{i:05d}"}
    finally:
        store.close()
    sessions = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    deadline = time.monotonic() + 10
    while admin.execute(sessions).fetchone()[0] and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    assert _seq_scans(admin) < 12 + 10  # not one more for each of the 30 later look-ups
