"""Conformance of a store backend to :class:`promptlooper.store.backend.StoreBackend`.

Every test takes the ``open_backend`` fixture, parametrized by backend name (as optuna keeps its
storage tests): SQLite today; a PostgreSQL backend joins by adding a parameter that opens it.
The tests use only the interface, never SQL, so they hold any backend to the same meaning.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import pytest
from backends import Opener

from promptlooper.errors import NotFoundError, SweepConflictError
from promptlooper.store import CacheEntry, RunRecord, StageRecord, Store, now_iso
from promptlooper.store.backend import StoreBackend
from promptlooper.store.db import ReadOnlyError
from promptlooper.store.postgres import PostgresStore


@pytest.fixture
def store(open_backend: Opener) -> StoreBackend:
    return open_backend()


def _experiment(store: StoreBackend, name: str = "exp", project: str = "proj") -> str:
    eid = store.upsert_experiment(project, name, {"name": name, "scorers": [{"name": "length", "weight": 1.0}]})
    store.add_configurations(eid, [("cfg-a", {"m": "a"}, {"temperature": 0.1}), ("cfg-b", {"m": "b"}, {"temperature": 0.9})])
    return eid


def _run(eid: str, rid: str, config: str, sample: str, *, status: str = "completed", score: float | None = 0.5,
         scores: list[Any] | None = None, key: str | None = None) -> RunRecord:
    ts = now_iso()
    stage = StageRecord(0, "answer", "prompt", prompt_sent=[{"role": "user", "content": f"q {sample}"}],
                        response_raw=f"out {rid}", model_used="m", tokens_out=7, cache_key=key)
    return RunRecord(id=rid, experiment_id=eid, config_id=config, sample_id=sample, sample_index=int(sample[-1]), repeat=0,
                     sweep_id=None, status=status, started_at=ts, completed_at=ts, duration_ms=1.0, score=score,
                     output=f"out {rid}", stages=[stage],
                     scores=scores if scores is not None else [("length", score, None, "length", {})])


def _cache(key: str, model: str, tokens_out: int) -> CacheEntry:
    return CacheEntry(key=key, endpoint="e", model=model, request={"model": model}, response="r", tokens_in=1,
                      tokens_out=tokens_out, latency_ms=2.0)


# --------------------------------------------------------------------------- the interface itself
@pytest.mark.parametrize("implementation", [Store, PostgresStore])
def test_the_store_implements_every_method_with_the_same_signature(implementation: type) -> None:
    members = [n for n in dir(StoreBackend) if not n.startswith("_") and callable(getattr(StoreBackend, n))]
    assert len(members) > 60
    for name in members:
        want = inspect.signature(getattr(StoreBackend, name))
        have = inspect.signature(getattr(implementation, name))
        assert [(p.name, p.kind, p.default) for p in have.parameters.values()] == \
               [(p.name, p.kind, p.default) for p in want.parameters.values()], name


def test_a_backend_satisfies_the_protocol(store: StoreBackend) -> None:
    assert isinstance(store, StoreBackend)


# --------------------------------------------------------------------------- experiments
def test_experiments_are_found_by_id_project_and_name(store: StoreBackend) -> None:
    eid = _experiment(store)
    assert store.upsert_experiment("proj", "exp", {"name": "exp", "v": 2}) == eid  # same name: updated, not new
    assert store.experiment(eid)["spec"]["v"] == 2
    assert store.experiment("proj/exp")["id"] == store.experiment("exp")["id"] == eid
    _experiment(store, project="other")
    with pytest.raises(NotFoundError, match="ambiguous"):
        store.experiment("exp")
    with pytest.raises(NotFoundError):
        store.experiment("nope")
    assert [c["id"] for c in store.configurations(eid)] == ["cfg-a", "cfg-b"]
    assert store.configuration(eid, "cfg-b")["varied"] == {"temperature": 0.9}


# --------------------------------------------------------------------------- runs and scores
def test_written_runs_are_read_back_by_status(store: StoreBackend) -> None:
    eid = _experiment(store)
    store.write_results([_run(eid, "r1", "cfg-a", "s1", score=0.4), _run(eid, "r2", "cfg-a", "s2", score=0.8),
                         _run(eid, "r3", "cfg-b", "s1", status="failed", score=None, scores=[])])
    assert store.finished_run_ids(eid) == {"r1", "r2"}
    assert store.unfinished_run_ids(eid) == {"r3"}
    assert store.run_counts(eid) == {"completed": 2, "failed": 1}
    assert store.finished_score_sums(eid) == {"cfg-a": (pytest.approx(1.2), 2)}
    assert store.run("r2")["stages"][0]["prompt_sent"] == [{"role": "user", "content": "q s2"}]
    with pytest.raises(NotFoundError, match="ambiguous"):
        store.run("r")
    stored = store.finished_runs_with_stages(eid)
    assert [r["id"] for r in stored] == ["r1", "r2"]
    assert stored[0]["varied"] == {"temperature": 0.1}
    assert stored[0]["stages"][0][:2] == ("answer", "prompt")


def test_scorer_sums_leave_missing_scores_out(store: StoreBackend) -> None:
    # A scorer that gave no value (None: failed, unparsable) is a missing score, never a 0; a
    # configuration where every value of one scorer is missing has no sum for it (a resumed sweep
    # reads these to rank the current best).
    eid = _experiment(store)
    store.write_results([
        _run(eid, "r1", "cfg-a", "s1", scores=[("length", 0.5, None, "length", {}), ("judge", None, {"error": "x"}, "judge", {})]),
        _run(eid, "r2", "cfg-a", "s2", scores=[("length", 1.0, None, "length", {}), ("judge", None, {"error": "x"}, "judge", {})]),
        _run(eid, "r3", "cfg-b", "s1", scores=[("length", None, {"error": "y"}, "length", {}), ("judge", 0.25, None, "judge", {})]),
    ])
    assert store.scorer_sums(eid) == {"cfg-a": {"length": [1.5, 2.0]}, "cfg-b": {"judge": [0.25, 1.0]}}


def test_reads_of_some_configurations_read_only_theirs(store: StoreBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker's chunk reads the finished runs and sums of its own configurations only, in parts of SCOPE_MAX ids.
    monkeypatch.setattr("promptlooper.store.scoping.SCOPE_MAX", 2)
    eid = _experiment(store)
    store.add_configurations(eid, [(f"cfg-{c}", {"m": c}, {"temperature": 0.5}) for c in "cde"])
    store.write_results([_run(eid, f"r{i}", f"cfg-{c}", "s1", scores=[("length", 0.1 * (i + 1), None, "length", {})])
                         for i, c in enumerate("abcde")])
    assert store.scorer_sums(eid, ["cfg-b", "cfg-e", "cfg-d"]) == {
        "cfg-b": {"length": [0.2, 1.0]}, "cfg-d": {"length": [0.4, 1.0]}, "cfg-e": {"length": [0.5, 1.0]}}
    assert store.scorer_sums(eid, []) == {}
    assert set(store.scorer_sums(eid)) == {f"cfg-{c}" for c in "abcde"}
    assert store.finished_run_ids(eid, ["cfg-b", "cfg-e", "cfg-d"]) == {"r1", "r3", "r4"}
    assert store.finished_run_ids(eid, []) == set() and store.finished_run_ids(eid) == {f"r{i}" for i in range(5)}


def test_ratings_are_human_rows_kept_in_write_order(store: StoreBackend) -> None:
    eid = _experiment(store)
    store.write_results([_run(eid, "r1", "cfg-a", "s1")])
    ts = now_iso()
    store.rate_run("r1", [("human_stars", 0.75, {"raw": 4}, "human_rating", {"kind": "stars"}),
                          ("human_thumbs", 1.0, {"raw": "up"}, "human_rating", {"kind": "thumbs"})], ts)
    store.rate_run("r1", [("human_stars", 1.0, {"raw": 5}, "human_rating", {"kind": "stars"})], ts)  # rewritten: now last
    assert store.human_scores("r1") == [("human_thumbs", 1.0, {"raw": "up"}), ("human_stars", 1.0, {"raw": 5})]
    assert store.unrate_run("r1", ["human_thumbs", "human_thumbs"]) == 1
    assert [label for label, *_ in store.human_scores("r1")] == ["human_stars"]
    assert {s["scorer"]: s["source"] for s in store.run("r1")["scores"]} == {"length": "auto", "human_stars": "human"}


def test_human_columns_and_the_weighted_score_are_written_together(store: StoreBackend) -> None:
    eid = _experiment(store)
    store.write_results([_run(eid, "r1", "cfg-a", "s1", score=0.2), _run(eid, "r2", "cfg-a", "s2", score=0.2)])
    store.rate_run("r1", [("human_thumbs", 1.0, {}, "human_rating", {})], now_iso())
    seen: list[dict[str, float]] = []

    def columns(given: dict[str, float]) -> dict[str, tuple[float | None, dict[str, Any], dict[str, Any]]]:
        seen.append(given)
        return {"human": (given.get("human_thumbs"), {"from": sorted(given)}, {})}

    store.refresh_human_columns(["r1", "r2"], ["human_thumbs", "human_stars"], columns, {"length": 1.0, "human": 1.0}, now_iso())
    assert seen == [{"human_thumbs": 1.0}, {}]
    assert store.run("r1")["score"] == pytest.approx(0.6)  # (0.2 + 1.0) / 2
    assert store.run("r2")["score"] == pytest.approx(0.2)  # no rating: no human column
    assert "human" not in {s["scorer"] for s in store.run("r2")["scores"]}


def test_replacing_auto_scores_keeps_human_ones_and_rescores_the_run(store: StoreBackend) -> None:
    eid = _experiment(store)
    store.write_results([_run(eid, "r1", "cfg-a", "s1", scores=[("length", 0.2, None, "length", {}), ("old", 0.9, None, "old", {})])])
    store.rate_run("r1", [("human_stars", 0.0, {}, "human_rating", {})], now_iso())
    written = store.replace_auto_scores([("r1", [("length", 0.6, {"why": "é"}, "length", {"max": 3})])], {"length": 1.0},
                                        now_iso(), keep_only=["length"])
    assert written == 1
    run = store.run("r1")
    by_label = {s["scorer"]: s for s in run["scores"]}
    assert set(by_label) == {"length", "human_stars"}  # "old" dropped; the rating stays
    assert by_label["length"]["metadata"] == {"why": "é"} and by_label["length"]["scorer_args"] == {"max": 3}
    assert run["score"] == pytest.approx(0.6)
    judged = [row for row in store.finished_scores(eid) if row[1] == "length"]
    assert judged == [("r1", "length", "length", 0.6, "auto", '{"why": "é"}')]


# --------------------------------------------------------------------------- caches
def test_cached_responses_and_what_they_tell(store: StoreBackend) -> None:
    store.write_results([], cache=[_cache("k1", "small", 10), _cache("k2", "small", 20), _cache("k3", "big", 5)])
    assert set(store.cache_get_many(["k1", "k3", "missing"])) == {"k1", "k3"}
    assert store.mean_tokens_out_by_model() == {"small": 15.0, "big": 5.0}
    assert store.cache_entry("k2")["request"] == {"model": "small"}


def test_embedding_vectors_round_trip_by_key(store: StoreBackend) -> None:
    assert store.embedding_vectors(["a"]) == {}  # the table exists on a new store
    vectors = [(f"k{i}", i.to_bytes(8, "little")) for i in range(1200)]  # more keys than one IN (...) takes
    store.put_embeddings("model-x", vectors)
    store.put_embeddings("model-x", [("k1", b"other!!!")])  # first write wins: a key is its content
    got = store.embedding_vectors([k for k, _ in vectors] + ["none"])
    assert len(got) == 1200 and got["k1"] == (1).to_bytes(8, "little")


def test_a_read_only_store_refuses_writes_but_keeps_no_embeddings_quietly(open_backend: Opener) -> None:
    writer = open_backend()
    eid = _experiment(writer)
    writer.put_embeddings("m", [("k", b"1234")])
    reader = open_backend(readonly=True)
    assert reader.readonly and reader.experiment(eid)["id"] == eid
    assert reader.embedding_vectors(["k"]) == {"k": b"1234"}
    reader.put_embeddings("m", [("k2", b"5678")])  # nothing kept, nothing raised
    assert writer.embedding_vectors(["k2"]) == {}
    with pytest.raises(ReadOnlyError):
        reader.add_event(eid, "x")
    with pytest.raises(ReadOnlyError):
        reader.rate_run("r", [], now_iso())


# --------------------------------------------------------------------------- sweeps and events
def test_one_live_sweep_per_experiment_and_steering_is_a_queue(store: StoreBackend) -> None:
    eid = _experiment(store)
    first = store.begin_sweep(eid, "grid", 4, {"a": 1})
    # Held by another live process of this host (our parent), the lease is refused.
    store.update_sweep(first, owner_pid=os.getppid())
    with pytest.raises(SweepConflictError):
        store.begin_sweep(eid, "grid", 4, {})
    assert store.request_steering(eid, "pause")["id"] == first
    store.add_steering(first, "redirect")
    assert store.take_steering(first) == ["pause", "redirect"]
    assert store.take_steering(first) == []
    store.merge_sweep_options(first, {"b": 2})
    assert store.sweep(first)["options"] == '{"a": 1, "b": 2}'
    store.update_sweep(first, status="completed")
    second = store.begin_sweep(eid, "random", 2, {})
    assert [s["id"] for s in store.sweeps_of(eid)] == [first, second]
    assert store.latest_sweep(eid)["id"] == second


def test_events_filter_by_family_and_cursor(store: StoreBackend) -> None:
    eid = _experiment(store)
    ids = [store.add_event(eid, t, {"n": i}) for i, t in enumerate(["run.completed", "run.failed", "sweep.paused"])]
    assert [e["type"] for e in store.events(eid, types=["run.*"])] == ["run.completed", "run.failed"]
    assert [e["payload"] for e in store.events(eid, after_id=ids[1])] == [{"n": 2}]


# --------------------------------------------------------------------------- webhooks
def test_webhook_rows_are_queued_claimed_once_and_recorded(store: StoreBackend) -> None:
    eid = _experiment(store)
    store.add_event(eid, "run.completed", {"before": True})  # before the webhook: never sent
    wid = store.add_webhook("run.*", "http://127.0.0.1:9/hook", {"X-Token": "HOOK_TOKEN"}, 3, 0.5)
    assert store.has_active_webhooks() and store.webhooks()[0]["headers_env"] == {"X-Token": "HOOK_TOKEN"}
    store.add_event(eid, "run.failed", {"n": 1})
    store.add_event(eid, "sweep.paused", {})  # not of the family
    assert store.webhook_summary()["pending"] >= 1
    claimed = store.claim_due_deliveries(limit=10, lease=60.0)
    assert [(c.event["type"], c.event["experiment"], c.max_attempts) for c in claimed] == [("run.failed", "proj/exp", 3)]
    assert store.claim_due_deliveries(limit=10, lease=60.0) == []  # leased to the first claimer
    store.record_delivery_attempt(claimed[0], status=200, error=None, state="delivered")
    assert [r["state"] for r in store.webhook_outbox()] == ["delivered"]
    assert [(d["attempt"], d["status"]) for d in store.webhook_deliveries(wid)] == [(1, 200)]
    assert store.webhook_summary() == {"pending": 0, "delivered": 1, "failed": 0, "next_due": None}
    assert store.remove_webhook(wid[:8]) == 1 and not store.has_active_webhooks()
