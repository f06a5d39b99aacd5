"""The embedding scorer: the offline MiniLM model, its caches, and the endpoint backend."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from helpers import fake_experiment

import promptlooper as pl
from promptlooper import embedder
from promptlooper.scorers import ScoreContext, build
from promptlooper.scorers.env import ScoringEnv, using
from promptlooper.testing import FakeServer

CAT = "The cat sat on the mat."


def score(spec_args: dict, output: str, sample: dict, env: ScoringEnv | None = None):
    fn = build("embedding", spec_args)

    async def go():
        if env is None:
            return await fn(ScoreContext(output=output, sample=sample))
        with using(env):
            try:
                return await fn(ScoreContext(output=output, sample=sample))
            finally:
                await env.aclose()

    return asyncio.run(go())


def test_known_similar_and_dissimilar_pairs():
    similar = embedder.similarity(CAT, "A kitten is resting on a rug.")
    unrelated = embedder.similarity(CAT, "Stock markets fell sharply today.")
    assert similar == pytest.approx(0.606, abs=0.005)
    assert unrelated == pytest.approx(0.042, abs=0.005)
    assert embedder.similarity(CAT, CAT) == pytest.approx(1.0, abs=1e-5)


def test_vectors_are_unit_length_and_batched_like_one_at_a_time():
    texts = [CAT, "short", "a much longer sentence " * 20, ""]
    batch = embedder.embed(texts)
    assert batch.shape == (4, 384)
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    one = np.stack([embedder.local_embedder().embed([t])[0] for t in texts])
    assert np.allclose(batch, one, atol=1e-4)  # padding in a batch changes nothing


def test_scorer_against_a_field_a_list_and_a_template():
    close = score({"field": "reference"}, "A kitten is resting on a rug.", {"reference": CAT})
    far = score({"field": "reference"}, "Stock markets fell sharply today.", {"reference": CAT})
    assert close.value == pytest.approx(0.606, abs=0.005) and far.value == pytest.approx(0.042, abs=0.005)
    assert close.detail["cosine"] == pytest.approx(close.value, abs=1e-5)
    best_of = score({"field": "answers"}, "A kitten is resting on a rug.", {"answers": ["Stock markets fell sharply today.", CAT]})
    assert best_of.value == pytest.approx(close.value, abs=1e-5) and best_of.detail["closest_reference"] == 1
    templated = score({"template": "The {{ animal }} sat on the mat."}, "A kitten is resting on a rug.", {"animal": "cat"})
    assert templated.value == pytest.approx(close.value, abs=1e-5)
    empty = score({"field": "reference"}, "   ", {"reference": CAT})
    assert empty.value == 0.0 and empty.detail == {"empty_output": True}


def test_persistent_cache_serves_vectors_without_the_model(tmp_path):
    store_path = str(tmp_path / "emb.db")
    embedder._LRU_CACHE.data.clear()  # texts embedded by earlier tests would not reach this store
    env = ScoringEnv(store_path=store_path)
    first = score({"field": "reference"}, "A unique sentence about persistent caches.", {"reference": CAT}, env)
    embedder._LRU_CACHE.data.clear()  # a new process: only the store remembers

    async def again():
        env2 = ScoringEnv(store_path=store_path)
        service = env2.embeddings(embedder.local_embedder())
        vectors = await service.vectors(["A unique sentence about persistent caches.", CAT])
        computed = service.computed
        await env2.aclose()
        return vectors, computed

    vectors, computed = asyncio.run(again())
    assert computed == 0
    assert embedder.to_unit(embedder.cosine(vectors[0], vectors[1])) == pytest.approx(first.value, abs=1e-6)
    store = pl.Workbench(store_path).store
    rows = store.db.execute("SELECT model, length(vector) FROM embedding_cache").fetchall()
    assert len(rows) == 2 and all(m == embedder.LocalEmbedder.identity and n == 384 * 4 for m, n in rows)
    store.close()


def test_concurrent_requests_are_coalesced_into_one_batch():
    service = embedder.EmbeddingService(embedder.local_embedder())
    texts = [f"coalesced sentence number {i}" for i in range(20)]
    calls = []
    original = embedder.LocalEmbedder.embed

    def spy(self, batch):
        calls.append(len(batch))
        return original(self, batch)

    embedder.LocalEmbedder.embed = spy
    try:
        async def go():
            return await asyncio.gather(*(service.vectors([t]) for t in texts))

        asyncio.run(go())
    finally:
        embedder.LocalEmbedder.embed = original
    assert calls == [20]


def test_endpoint_backend_uses_the_embeddings_route_and_its_cache(tmp_path):
    with FakeServer() as srv:
        args = {"field": "reference", "base_url": srv.base_url, "model": "fake-embed"}
        env = ScoringEnv(store_path=str(tmp_path / "e.db"))
        same_words = score(args, "alpha bravo charlie", {"reference": "charlie bravo alpha"}, env)
        assert same_words.value == pytest.approx(1.0, abs=1e-5)
        assert srv.stats()["requests"] == 1  # output and reference in one request
        srv.reset()
        embedder._LRU_CACHE.data.clear()
        again = score(args, "alpha bravo charlie", {"reference": "charlie bravo alpha"}, ScoringEnv(store_path=str(tmp_path / "e.db")))
        assert again.value == same_words.value and srv.stats()["requests"] == 0


def test_endpoint_by_configured_name_in_a_sweep(wb, tmp_path):
    def reply(body):
        return "paris is lovely" if "France" in body["messages"][-1]["content"] else "unrelated words here"

    with FakeServer(reply=reply) as srv:
        exp = fake_experiment(srv.base_url, space={}, scorers=[{"name": "embedding", "endpoint": "fake", "model": "emb"}])
        assert wb.validate(exp) == []
        with using(ScoringEnv(store_path=wb.db_path, pool=wb.pool(exp))):
            wb.run(exp)
        by_question = {r["sample_id"]: r for r in wb.runs(exp.key)}
        values = sorted(wb.run_detail(r["id"])["scores"][0]["value"] for r in by_question.values())
        assert values[-1] > 0.3 and values[0] == 0.0


def test_bad_arguments_are_reported_before_any_call(make_exp):
    wb = pl.Workbench(":memory:")
    problems = wb.validate(make_exp(scorers=[{"name": "embedding", "model": "x"}]))
    assert any("model applies to an embeddings endpoint only" in p.message for p in problems)
    problems = wb.validate(make_exp(scorers=[{"name": "embedding", "base_url": "http://127.0.0.1:1/v1"}]))
    assert any("needs model" in p.message for p in problems)
    problems = wb.validate(make_exp(scorers=[{"name": "embedding", "field": "missing_field"}]))
    assert any(p.path == "scorers[0].field" for p in problems)
