"""The LLM judge: robust reply parsing, the shared response cache, the fake server and the embedded model."""

from __future__ import annotations

import asyncio

import pytest
from helpers import db_rows, fake_experiment

import promptlooper as pl
from promptlooper.engine.calls import cache_key_material
from promptlooper.hashing import content_hash
from promptlooper.scorers import ScoreContext, build, get
from promptlooper.scorers.env import ScoringEnv, using
from promptlooper.scorers.judge import parse_score
from promptlooper.testing import FakeModel, FakeServer

CTX = ScoreContext(output="Paris is the capital of France.", sample={"question": "capital of France?", "reference": "Paris"},
                   input="What is the capital of France?")


def judge_once(args: dict, env: ScoringEnv, ctx: ScoreContext = CTX):
    fn = build("judge", args)

    async def go():
        with using(env):
            try:
                return await fn(ctx)
            finally:
                await env.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize(("reply", "scale", "expected"), [
    ("4", (1, 5), 4), ("Score: 3", (1, 5), 3), ("**5**", (1, 5), 5), ("I'd rate it 4/5.", (1, 5), 4),
    ("Step 1 done. Rating: 8 out of 10", (0, 10), 8), ("7.5", (0, 10), 7.5), ("There are 12 issues; score 2", (1, 5), 2),
    ("10", (1, 5), None), ("excellent", (1, 5), None), ("", (0, 10), None), ("0", (0, 10), 0),
])
def test_reply_parsing(reply, scale, expected):
    assert parse_score(reply, *scale) == expected


def test_judge_is_registered_as_calling_models():
    assert get("judge").model_calls is True
    assert not get("embedding").model_calls and not get("contains").model_calls


@pytest.mark.both_backends  # the judge's own store: a SQLite file or PostgreSQL
def test_judge_against_the_fake_server_goes_through_the_response_cache(db):
    seen = []

    def reply(body):
        seen.append(body)
        return "Score: 4"

    with FakeServer(reply=reply) as srv:
        args = {"model": "fake/fake-small", "base_url": srv.base_url, "scale": [1, 5]}
        result = judge_once(args, ScoringEnv(store_path=db))
        assert result.value == pytest.approx(0.75)
        assert result.detail["raw"] == 4 and result.detail["cached"] is False and result.detail["reply"] == "Score: 4"
        prompt = seen[0]["messages"][-1]["content"]
        assert "Paris is the capital of France." in prompt and "REFERENCE" in prompt and "What is the capital" in prompt
        assert seen[0]["temperature"] == 0 and seen[0]["model"] == "fake-small"

        # The key is exactly a stage call's key: the same material, the same hash.
        class P:
            identity = srv.base_url
        key = content_hash("call", cache_key_material(P(), "fake-small", seen[0]["messages"],  # type: ignore[arg-type]
                                                      {k: v for k, v in seen[0].items() if k not in ("model", "messages")}))
        assert result.detail["cache_key"] == key
        assert db_rows(db, "SELECT response, model FROM response_cache WHERE key = ?", key) == [("Score: 4", "fake-small")]

        srv.reset()
        again = judge_once(args, ScoringEnv(store_path=db))
        assert again.value == result.value and again.detail["cached"] is True
        assert srv.stats()["requests"] == 0


def test_unparsable_reply_and_failed_call_are_missing_scores_with_the_reason(tmp_path):
    with FakeServer(reply=lambda body: "It is quite good.") as srv:
        result = judge_once({"model": "fake/fake-small", "base_url": srv.base_url}, ScoringEnv(store_path=str(tmp_path / "a.db")))
    assert result.value is None and "no grade from 1 to 5" in result.detail["error"]
    assert result.detail["reply"] == "It is quite good."
    down = judge_once({"model": "fake/fake-small", "base_url": "http://127.0.0.1:9/v1", "params": {}},
                      ScoringEnv(store_path=str(tmp_path / "b.db"), pool=pl.Workbench(":memory:").pool()))
    assert down.value is None and down.detail["call_failed"] is True


def test_custom_prompt_scale_and_params(tmp_path):
    bodies = []
    with FakeServer(reply=lambda body: bodies.append(body) or "7") as srv:
        args = {"model": "fake/fake-large", "base_url": srv.base_url, "scale": [0, 10], "system": None,
                "prompt": "Q={{ question }} A={{ output }} ref={{ reference }} ({{ min }}..{{ max }})", "params": {"max_tokens": 3}}
        result = judge_once(args, ScoringEnv(store_path=str(tmp_path / "c.db")))
    assert result.value == pytest.approx(0.7)
    assert bodies[0]["messages"] == [{"role": "user", "content": "Q=capital of France? A=Paris is the capital of France. ref=Paris (0..10)"}]
    assert bodies[0]["max_tokens"] == 3


@pytest.mark.both_backends
def test_judge_in_a_sweep_shares_the_sweeps_endpoints_and_cache(wb, db):
    def reply(body):
        text = body["messages"][-1]["content"]
        return "5" if "Rate the RESPONSE" in text else "alpha bravo"

    model = FakeModel(reply=reply)
    exp = fake_experiment(model.base_url, space={}, scorers=[{"name": "judge", "model": "fake/fake-small"}])
    assert wb.validate(exp) == []
    async def sweep():
        # What the sweep does once wired: the environment lives on the sweep's loop.
        env = ScoringEnv(store_path=db, pool=wb.pool(exp))
        with using(env):
            progress = await wb.sweep(exp)
        await env.aclose()
        await env.pool.aclose()
        return progress

    progress = asyncio.run(sweep())
    assert progress.failed == 0
    assert model.stats()["completions"] == 6  # 3 stage calls + 3 judge calls
    board = wb.leaderboard(exp.key)
    assert board.loc[0, "judge"] == 1.0
    assert db_rows(db, "SELECT COUNT(*) FROM response_cache") == [(6,)]


def test_judge_without_an_environment_uses_the_default_database(monkeypatch, tmp_path):
    db = str(tmp_path / "default-judge.db")
    pl.Workbench(db).store.close()
    monkeypatch.setenv("PROMPTLOOPER_DB", db)
    with FakeServer(reply=lambda body: "3") as srv:
        fn = build("judge", {"model": "fake/fake-small", "base_url": srv.base_url})
        first = asyncio.run(fn(CTX))
        second = asyncio.run(fn(CTX))  # another loop: no session of the first one is reused
        assert first.value == second.value == 0.5
        assert srv.stats()["completions"] == 1 and second.detail["cached"] is True


def test_bad_judge_arguments_fail_validation(make_fake_exp):
    wb = pl.Workbench(":memory:")
    for args, needle in (({"scale": [5, 1]}, "scale"), ({"scale": [1, 2, 3]}, "scale"), ({"model": "no-slash"}, "endpoint/model"),
                         ({"prompt": "{{ output "}, "prompt"), ({"params": {"temperature": 9}}, "temperature")):
        problems = wb.validate(make_fake_exp(scorers=[{"name": "judge", **args}]))
        assert any(needle in str(p) for p in problems), (args, problems)


@pytest.mark.embedded
def test_judge_on_the_embedded_model(tmp_path):
    env_args = {"model": "local/smollm2-135m", "scale": [1, 5]}
    db = str(tmp_path / "local.db")
    first = judge_once(env_args, ScoringEnv(store_path=db))
    assert 0.0 <= first.value <= 1.0
    assert ("raw" in first.detail) != ("error" in first.detail)
    assert first.detail["cached"] is False and first.detail["reply"]
    second = judge_once(env_args, ScoringEnv(store_path=db))
    assert second.detail["cached"] is True and second.value == first.value and second.detail["reply"] == first.detail["reply"]
