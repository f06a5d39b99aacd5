"""A PostgreSQL store returns the Python values the SQLite store returns, types included.

The same writes go to both backends; every read model is then compared value for value and type
for type (an ``int`` is not a ``Decimal``, a ``float`` not a float32 rounding), after taking out
what is new in each store by design: generated ids and timestamps.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from promptlooper.errors import StoreError
from promptlooper.store import CacheEntry, RunRecord, StageRecord, Store, now_iso
from promptlooper.store.backend import StoreBackend
from promptlooper.store.postgres import PostgresStore
from promptlooper.store.postgres.dialect import translate

_VOLATILE = {"created_at", "updated_at", "started_at", "completed_at", "finished_at", "decided_at", "ts", "heartbeat",
             "owner_pid", "owner_host", "archived_at"}

_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00")


def _run(eid: str, rid: str, config: str, sample: int, status: str = "completed") -> RunRecord:
    ts = now_iso()
    stages = [StageRecord(i, f"s{i}", "prompt", prompt_sent=[{"role": "user", "content": f"q{sample} é%?"}],
                          response_raw=f"r{i}", model_used="m", parameters={"temperature": 0.1 * sample}, tokens_in=3,
                          tokens_out=7 + i, latency_ms=12.5, cached=i == 1, cache_key=f"key-{rid}-{i}") for i in range(2)]
    return RunRecord(id=rid, experiment_id=eid, config_id=config, sample_id=f"smp{sample}", sample_index=sample, repeat=0,
                     sweep_id=None, status=status, started_at=ts, completed_at=ts, duration_ms=1.25, latency_ms=0.1 + sample,
                     tokens_in=3, tokens_out=2**33 + sample, cost=0.0001 * sample, score=1 / 3 if status == "completed" else None,
                     output=f"out {rid}", error=None if status == "completed" else "boom", stages=stages,
                     scores=[("length", 1 / 3, {"n": sample}, "length", {"max": 3}), ("judge", None if status == "failed" else 0.5, {"why": "?"}, "judge", {})])


def _scenario(store: StoreBackend) -> dict[str, Any]:
    eid = store.upsert_experiment("proj", "exp", {"name": "exp", "samples": [1, 2.5, "x"]}, "about")
    store.add_configurations(eid, [("cfg-a", {"model": "a"}, {"temperature": 0.1}), ("cfg-b", {"model": "b"}, {"t": 1})])
    store.record_definition(eid, "def1", {"v": 1}, ["smp1", "smp2"])
    store.add_configurations(eid, [("cfg-c", {"model": "c"}, {})])
    sid = store.begin_sweep(eid, "grid", 3, {"o": [1, 2]})
    store.write_results([_run(eid, "r1", "cfg-a", 1), _run(eid, "r2", "cfg-b", 2), _run(eid, "r3", "cfg-b", 3, "failed")],
                        cache=[CacheEntry("k1", "e", "m", {"model": "m"}, "resp", 1, 9, 2.5),
                               CacheEntry("k2", "e", "m", {"model": "m"}, "resp", 1, 4, 2.5)],
                        events=[(now_iso(), eid, "run.completed", {"n": 1})],
                        sweep_update={"id": sid, "done": 2, "failed": 1, "cost": 0.5, "best_score": 1 / 3})
    store.rate_run("r1", [("human_stars", 0.75, {"raw": 4}, "human_rating", {"kind": "stars"})], now_iso())
    store.tell(eid, "cfg-c", 0.25, "agent")
    store.set_setting("theme", {"dark": True})
    store.save_endpoint("local", {"base_url": "http://127.0.0.1:1/v1", "max_concurrency": 4, "prices": {"m": [1, 2]}})
    project = store.project("proj")["id"]
    store.add_note(project, "a note", "ann")
    return {
        "experiment": store.experiment(eid), "experiments": store.experiments(), "projects": store.project_list(),
        "configurations": store.configurations(eid), "definitions": store.definitions(eid),
        "definition": store.definition(eid), "runs": store.runs(eid), "run": store.run("r1"), "run_by_upper_prefix": store.run("R1")["id"],
        "events_by_family": [e["type"] for e in store.events(eid, types=["RUN.*"])],
        "run_rows": sorted(store.run_rows(eid)), "run_table_rows": store.run_table_rows(eid),
        "run_prompts": sorted(store.run_prompts(eid)), "run_prompts_q": sorted(store.run_prompts(eid, "Q1 É%?")),
        "run_counts": store.run_counts(eid), "failed": store.failed_runs(eid), "told": store.told_values(eid),
        "sums": store.scorer_sums(eid), "score_rows": sorted(store.score_rows(eid), key=repr),
        "values": sorted(store.run_score_values(eid), key=repr), "finished": store.finished_score_sums(eid),
        "finished_scores": sorted(store.finished_scores(eid), key=repr), "human": store.human_scores("r1"),
        "with_stages": store.finished_runs_with_stages(eid), "cache": store.cache_get_many(["k1", "k2", "k3"]),
        "cache_entry": store.cache_entry("k1"), "mean_tokens": store.mean_tokens_out_by_model(),
        "events": store.events(eid), "endpoints": store.endpoints(), "setting": store.get_setting("theme"),
        "sweep": store.sweep(sid), "sweeps": store.sweeps_of(eid), "notes": store.notes(project),
        "ids": (eid, project, sid),
    }


def _normal(value: Any, ids: dict[str, str]) -> Any:
    """``value`` with generated ids named, timestamps dropped, and every leaf as (type, value)."""
    if isinstance(value, dict):
        return {k: _normal(v, ids) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list | tuple | set):
        items = [_normal(v, ids) for v in value]
        return (type(value).__name__, sorted(items, key=repr) if isinstance(value, set) else items)
    if isinstance(value, str):
        value = _TIMESTAMP.sub("<time>", value)
        for generated, name in ids.items():
            value = value.replace(generated, name)
    return (type(value).__name__, value)


def test_both_backends_return_the_same_values_of_the_same_types(tmp_path: Path, pg_url: str) -> None:
    sqlite, pg = Store(tmp_path / "values.db"), PostgresStore(pg_url)
    try:
        got = []
        for store in (sqlite, pg):
            result = _scenario(store)
            eid, project, sid = result.pop("ids")
            got.append(_normal(result, {eid: "<experiment>", project: "<project>", sid: "<sweep>"}))
    finally:
        sqlite.close()
        pg.close()
    want, have = got
    for key in want:
        assert have[key] == want[key], key


def test_statements_are_rewritten_into_postgresql() -> None:
    assert translate("SELECT * FROM runs WHERE id LIKE ? AND x = '%'") == "SELECT * FROM runs WHERE id ILIKE %s AND x = '%%'"
    assert translate("INSERT OR IGNORE INTO t (a) VALUES (?)") == "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING"
    assert translate("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)") == (
        "INSERT INTO settings (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value")
    assert translate("SELECT 1 FROM e WHERE 1 AND x") == "SELECT 1 FROM e WHERE TRUE AND x"
    assert translate("SELECT substr(w.event_type, -1) = '*'") == "SELECT right(w.event_type, 1) = '*'"


@pytest.mark.parametrize("readonly", [False, True])
def test_a_url_without_a_server_is_a_clear_error(readonly: bool) -> None:
    with pytest.raises(StoreError, match="cannot connect to the PostgreSQL database 127.0.0.1:9/nothing"):
        PostgresStore("postgresql://u:secret@127.0.0.1:9/nothing?connect_timeout=1", readonly=readonly)


def test_nan_and_infinity_are_stored_as_sqlite_stores_them(tmp_path: Path, pg_url: str) -> None:
    got = []
    for store in (Store(tmp_path / "nan.db"), PostgresStore(pg_url)):
        try:
            eid = store.upsert_experiment("p", "e", {})
            run = _run(eid, "r1", "c", 1)
            run.score, run.latency_ms, run.cost = float("nan"), float("inf"), float("-inf")
            store.write_results([run])
            row = store.run("r1")
            got.append((row["score"], row["latency_ms"], row["cost"]))
        finally:
            store.close()
    assert got[0] == got[1] == (None, float("inf"), float("-inf"))


def test_a_run_given_twice_in_one_batch_is_stored_as_the_last_one(tmp_path: Path, pg_url: str) -> None:
    got = []
    for store in (Store(tmp_path / "twice.db"), PostgresStore(pg_url)):
        try:
            eid = store.upsert_experiment("p", "e", {})
            store.write_results([_run(eid, "r1", "c", 1, "failed"), _run(eid, "r1", "c", 1)])
            row = store.run("r1")
            got.append((row["status"], len(row["stages"]), sorted(s["scorer"] for s in row["scores"])))
        finally:
            store.close()
    assert got[0] == got[1] == ("completed", 2, ["judge", "length"])
