"""The sweep engine on the in-process fake model (and, for faults over the wire and keys, the loopback
fake server): caching, resume, faults, rankings."""

from __future__ import annotations

import asyncio
import math

import pytest
from helpers import db_value, fake_experiment

import promptlooper as pl
from promptlooper.testing import FakeModel, FakeServer, Faults

pytestmark = pytest.mark.both_backends  # each test on a SQLite file and on PostgreSQL (tests/conftest.py)


def _count(db: str, sql: str, *args) -> int:
    return int(db_value(db, sql, *args))


def test_grid_sweep_stores_every_run_and_ranks_configurations(wb, make_fake_exp, fake, db):
    exp = make_fake_exp()
    progress = wb.run(exp)
    assert progress.status == "completed"
    assert progress.total == progress.done == 12 and progress.failed == 0
    assert fake.stats()["completions"] == 12
    assert _count(db, "SELECT COUNT(*) FROM runs WHERE status = 'completed'") == 12
    assert _count(db, "SELECT COUNT(*) FROM stage_results") == 12
    assert _count(db, "SELECT COUNT(*) FROM scores") == 24
    assert _count(db, "SELECT COUNT(*) FROM response_cache") == 12
    board = wb.leaderboard(exp.key)
    assert list(board["rank"]) == [1, 2, 3, 4]
    assert set(board.columns) >= {"answer.temperature", "persona", "score", "ci_low", "ci_high", "n", "length", "keyword",
                                  "tokens", "cost", "latency_ms"}
    assert (board["n"] == 3).all()
    assert board["score"].is_monotonic_decreasing
    for _, row in board.iterrows():
        assert math.isnan(row.ci_low) or row.ci_low <= row.score <= row.ci_high
    by_keyword = wb.leaderboard(exp.key, sort="keyword")
    assert by_keyword["keyword"].is_monotonic_decreasing
    assert progress.tokens > 0


def test_rerun_reaches_the_server_zero_times(wb, make_fake_exp, fake):
    exp = make_fake_exp()
    wb.run(exp)
    fake.reset()
    again = wb.run(exp)
    assert fake.stats()["requests"] == 0
    assert again.done == again.total == again.skipped == 12


def test_cached_calls_cost_nothing_and_are_marked(wb, make_fake_exp, fake, db):
    wb.run(make_fake_exp(name="first"))
    fake.reset()
    second = wb.run(make_fake_exp(name="second"))  # same configurations, another experiment
    assert fake.stats()["requests"] == 0
    assert second.cached == 12 and second.tokens == 0 and second.cache_hit_rate == 1.0
    assert _count(db, "SELECT COUNT(*) FROM runs r JOIN experiments e ON e.id = r.experiment_id"
                      " WHERE e.name = 'second' AND r.status = 'cached'") == 12


def test_repeat_gives_distinct_cache_keys(wb, make_fake_exp, fake, db):
    exp = make_fake_exp(space={}, repeat=3)
    wb.run(exp)
    assert fake.stats()["completions"] == 9  # 3 samples x 3 repeats, none shared
    assert _count(db, "SELECT COUNT(DISTINCT cache_key) FROM stage_results") == 9


def test_random_strategy_is_seeded(wb, make_fake_exp):
    space = {"answer.temperature": {"min": 0.0, "max": 1.0}, "answer.top_p": [0.5, 0.9, 1.0]}
    a = wb.configurations(make_fake_exp(space=space, strategy="random", max_configs=5, seed=7))
    b = wb.configurations(make_fake_exp(space=space, strategy="random", max_configs=5, seed=7))
    c = wb.configurations(make_fake_exp(space=space, strategy="random", max_configs=5, seed=8))
    assert [x.id for x in a] == [x.id for x in b] != [x.id for x in c]
    assert len({x.id for x in a}) == 5
    progress = wb.run(make_fake_exp(space=space, strategy="random", max_configs=4))
    assert progress.total == 12


def test_multi_stage_pipeline_with_function_stage(wb, make_fake_exp, fake):
    seen = []

    def shout(answer: str, question: str) -> str:
        seen.append(question)
        return answer.upper()

    exp = make_fake_exp(
        stages=[
            pl.PromptStage(name="answer", model="fake/fake-small", user="Q: {{ question }}"),
            pl.FunctionStage(name="loud", function=shout),
            pl.PromptStage(name="review", model="fake/fake-large", user="Review {{ loud }} for {{ sample.question }} after {{ previous }}"),
        ],
        space={"answer.temperature": [0.0, 1.0]},
        scorers=[{"name": "length", "max_words": 20, "stage": "loud"}, {"name": "length", "max_words": 5, "label": "short_review"}],
    )
    progress = wb.run(exp)
    assert progress.failed == 0 and progress.done == 6
    assert len(seen) == 6
    assert fake.stats()["by_model"] == {"fake-small": 6, "fake-large": 6}
    run = wb.runs(exp.key)[0]
    detail = wb.run_detail(run["id"])
    assert [s["stage_name"] for s in detail["stages"]] == ["answer", "loud", "review"]
    assert detail["stages"][1]["response_raw"] == detail["stages"][0]["response_raw"].upper()
    assert detail["stages"][1]["response_raw"] in detail["stages"][2]["prompt_sent"][-1]["content"]


def test_a_failing_function_stage_fails_its_runs_with_the_reason(wb, make_fake_exp):
    def broken(answer: str) -> str:
        raise ValueError("no good")

    exp = make_fake_exp(stages=[pl.PromptStage(name="answer", model="fake/fake-small", user="{{ question }}"),
                           pl.FunctionStage(name="post", function=broken)], space={})
    progress = wb.run(exp)
    assert progress.failed == 3
    assert all("stage 'post' raised ValueError: no good" in r["error"] for r in wb.runs(exp.key))


def test_fault_mix_ends_with_every_run_completed_or_failed_with_reason(wb, db):
    faults = Faults(rate_limit=0.06, server_error=0.06, malformed=0.06, drop=0.06, slow=0.06, slow_seconds=1.5, retry_after=0.05)
    with FakeServer(faults=faults, seed=3) as srv:
        exp = fake_experiment(srv.base_url, space={"answer.temperature": [0.0, 0.3, 0.6, 0.9], "persona": ["a", "b", "c"]},
                              endpoints={"fake": {"base_url": srv.base_url, "timeout": 0.5, "max_retries": 2}})
        progress = wb.run(exp)
        stats = srv.stats()
    assert sum(stats["faults"].values()) > 0.15 * stats["requests"]
    assert progress.done == progress.total == 36
    rows = wb.runs(exp.key, limit=100)
    assert len(rows) == 36
    for r in rows:
        assert r["status"] in ("completed", "failed")
        if r["status"] == "failed":
            assert r["error"] and ("HTTP" in r["error"] or "malformed" in r["error"] or "connection" in r["error"] or "timed out" in r["error"])
    assert progress.completed >= 30  # retries rescue most of them


def test_retry_after_is_honoured_and_concurrency_halves_on_429():
    from promptlooper.engine.limits import AdaptiveLimit
    from promptlooper.retrying import Retry

    lim = AdaptiveLimit(16, cooldown=0.0)
    lim.on_overloaded()
    assert lim.limit == 8
    lim.on_overloaded()
    assert lim.limit == 4
    for _ in range(lim.recover_after):
        lim.on_success()
    assert lim.limit == 5
    assert Retry().delay(0, retry_after=2.5) >= 2.5


def test_rate_limited_sweep_recovers(wb):
    model = FakeModel(faults=Faults(rate_limit=0.3, retry_after=0.02), seed=1)
    progress = wb.run(fake_experiment(model.base_url))
    assert model.stats()["by_status"].get(429, 0) > 0
    assert progress.failed == 0 and progress.completed == 12


def test_api_key_value_never_reaches_the_database(db, monkeypatch, stored_bytes):
    secret = "sk-test-SECRET-4f9a1c77d2"
    monkeypatch.setenv("PL_FAKE_KEY", secret)
    with FakeServer(api_key=secret) as srv:
        wb = pl.Workbench(db)
        wb.add_endpoint("keyed", srv.base_url, api_key_env="PL_FAKE_KEY")
        exp = fake_experiment(srv.base_url, endpoints={}, stages=[{"name": "answer", "model": "keyed/fake-small", "user": "{{ question }}"}],
                              space={})
        progress = wb.run(exp)
        assert progress.completed == 3
        assert f"Bearer {secret}" in srv.stats()["auth_headers"]
        wb.close()
    stored = stored_bytes()
    assert b"fake-small" in b"".join(stored.values())  # the runs are in what was read
    for where, data in stored.items():
        assert secret.encode() not in data, where


def test_cache_explain_and_invalidate(wb, make_fake_exp, fake):
    exp = make_fake_exp(space={})
    wb.run(exp)
    run = wb.runs(exp.key)[0]
    [call] = wb.explain_cache(run["id"])
    assert call["matches"] and call["in_cache"]
    assert call["material"]["endpoint"] == fake.base_url
    assert call["material"]["model"] == "fake-small"
    assert call["material"]["messages"][-1]["content"].startswith("Q: ")
    assert wb.invalidate_cache(run=run["id"]) == 1
    fake.reset()
    wb.run(exp)
    assert fake.stats()["completions"] == 1  # only the invalidated run called again
    assert wb.invalidate_cache(experiment=exp.key) == 3
    fake.reset()
    wb.run(exp)
    assert fake.stats()["completions"] == 3


def test_background_handle_on_a_running_loop(wb, make_fake_exp, fake):
    exp = make_fake_exp()

    async def main():
        handle = wb.start(exp)
        assert handle.status in ("pending", "running")
        ticks = 0
        while not handle.done():
            ticks += 1  # the loop stays free while the sweep runs
            await asyncio.sleep(0.001)
        progress = await handle
        return progress, ticks

    progress, ticks = asyncio.run(main())
    assert progress.status == "completed" and progress.done == 12
    assert ticks > 3


def test_sync_handle_in_a_script_pause_resume(wb):
    slow = FakeModel(latency=0.05)
    exp = fake_experiment(slow.base_url, space={"answer.temperature": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]}, concurrency=2)
    handle = wb.start(exp)
    import time

    time.sleep(0.3)
    handle.pause()
    deadline = time.time() + 5
    while handle.status != "paused" and time.time() < deadline:
        time.sleep(0.05)
    assert handle.status == "paused"
    time.sleep(0.3)
    frozen = handle.progress.done
    time.sleep(0.5)
    assert handle.progress.done == frozen  # no new runs while paused
    handle.resume()
    progress = handle.wait(60)
    assert progress.status == "completed" and progress.done == 18
    kinds = [e["type"] for e in wb.events(exp.key, ["experiment.*"])]
    assert kinds[:1] == ["experiment.started"] and "experiment.paused" in kinds and "experiment.resumed" in kinds
    assert kinds[-1] == "experiment.completed"


def test_events_record_runs_and_new_best(wb, make_fake_exp):
    exp = make_fake_exp()
    wb.run(exp)
    events = wb.events(exp.key)
    types = [e["type"] for e in events]
    assert types.count("run.started") == 12 and types.count("run.completed") == 12
    assert "new_best_found" in types
    best = [e for e in events if e["type"] == "new_best_found"][-1]["payload"]
    board = wb.leaderboard(exp.key)
    assert best["score"] == pytest.approx(board.iloc[0]["score"], abs=1e-5)  # ties may pick either configuration
    assert best["config_id"] in set(board[(board.score - board.iloc[0]["score"]).abs() < 1e-9]["full_config_id"])


def test_a_cached_run_records_no_start_only_its_cache_hit(wb, make_fake_exp):
    exp = make_fake_exp()
    wb.run(exp)
    fork = make_fake_exp(name="same-calls")  # new runs, every call already in the cache
    wb.run(fork)
    types = [e["type"] for e in wb.events(fork.key)]
    assert types.count("run.cached") == 12 and "run.started" not in types  # it never waited for a model


def test_identical_calls_of_different_configurations_reach_the_server_once(wb):
    # The first stage's call is the same for every configuration (only the second stage varies):
    # runs of different configurations ask for it at once, looked up ahead and missing; one goes out.
    model = FakeModel(latency=0.05)
    exp = fake_experiment(
        model.base_url, name="shared-first-call",
        stages=[{"name": "answer", "model": "fake/fake-small", "user": "Q: {{ question }}"},
                {"name": "check", "model": "fake/fake-large", "user": "Check {{ answer }}"}],
        space={"check.temperature": [0.0, 0.25, 0.5, 0.75, 1.0]}, concurrency=16,
    )
    progress = wb.run(exp)
    assert progress.failed == 0 and progress.done == 15
    assert model.stats()["by_model"] == {"fake-small": 3, "fake-large": 15}


def test_human_ratings_survive_a_rerun_of_their_run(wb, make_fake_exp, fake):
    exp = make_fake_exp(space={})
    wb.run(exp)
    run = wb.runs(exp.key)[0]
    wb.rate(run["id"], stars=4, comment="good", by="ana")
    wb.invalidate_cache(run=run["id"])
    fake.reset()
    wb.run(exp)  # the run is executed again (a new call) and its record updated
    assert fake.stats()["completions"] == 1
    human = [s for s in wb.run_detail(run["id"])["scores"] if s["source"] == "human"]
    assert [(s["scorer"], s["value"]) for s in human] == [("human_stars", 0.75)]


@pytest.mark.parametrize("scorer", ["sync", "async"])
def test_every_call_slot_is_used_and_never_one_more(wb, scorer):
    """Runs that only wait for their call and runs that also await a scorer both keep the sweep's
    `concurrency` calls out at once, and never more."""
    async def slow_score(output: str) -> float:
        await asyncio.sleep(0.02)
        return 1.0

    scorers = [{"name": "length", "max_words": 6}]
    if scorer == "async":
        scorers.append({"name": "python", "function": slow_score})
    model = FakeModel(latency=0.05)
    exp = fake_experiment(model.base_url, space={"answer.temperature": [round(i * 0.1, 1) for i in range(10)]},
                          scorers=scorers, concurrency=8)
    progress = wb.run(exp)
    assert model.stats()["in_flight_max"] == 8
    assert progress.completed == 30
