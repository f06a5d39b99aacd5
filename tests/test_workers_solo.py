"""A worker alone on the store claims nothing, though it runs two chunks of a sweep at once; a
second worker makes both claim; either way each distinct request reaches the server once
(issue 18: engine/sharing.py, engine/claims.py). On both backends.

The workers are the real CLI (tests/test_workers.py's ``workers``); the server is a loopback
FakeServer whose reply hook counts every distinct request. The experiment's first stage does
not depend on the varied parameter, so every chunk makes the same first-stage calls, and a chunk
starts while the previous one's are still out (its runs all start at once: it is "drained" at
once, and the worker claims the next). Claims are seen by triggers the test adds to the store's
tables: every claim row written, and every sharer that said it claims, whoever deleted them later.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from helpers import db_rows
from test_shared_calls import Recorder  # the FakeServer hook counting each distinct request
from test_workers import said, workers

import promptlooper as pl
from promptlooper.engine.sharing import CallSharing
from promptlooper.store import open_store
from promptlooper.testing import FakeServer

pytestmark = pytest.mark.both_backends

SQLITE_LOG = [
    "CREATE TABLE claim_log (what TEXT, owner TEXT, key TEXT)",
    "CREATE TRIGGER claim_logged AFTER INSERT ON call_claims BEGIN"
    " INSERT INTO claim_log VALUES ('claim', NEW.owner, NEW.key); END",
    "CREATE TRIGGER claim_taken AFTER UPDATE ON call_claims BEGIN"
    " INSERT INTO claim_log VALUES ('claim', NEW.owner, NEW.key); END",
    "CREATE TRIGGER sharer_claims AFTER UPDATE ON call_sharers WHEN NEW.claiming <> 0 BEGIN"
    " INSERT INTO claim_log VALUES ('sharer', NEW.owner, ''); END",
    "CREATE TRIGGER sharer_joins AFTER INSERT ON call_sharers WHEN NEW.claiming <> 0 BEGIN"
    " INSERT INTO claim_log VALUES ('sharer', NEW.owner, ''); END",
]
PG_LOG = [
    "CREATE TABLE claim_log (what TEXT, owner TEXT, key TEXT)",
    "CREATE FUNCTION log_claim() RETURNS trigger AS $$ BEGIN"
    " INSERT INTO claim_log VALUES ('claim', NEW.owner, NEW.key); RETURN NEW; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER claim_logged AFTER INSERT OR UPDATE ON call_claims FOR EACH ROW EXECUTE FUNCTION log_claim()",
    "CREATE FUNCTION log_sharer() RETURNS trigger AS $$ BEGIN"
    " IF NEW.claiming::int <> 0 THEN INSERT INTO claim_log VALUES ('sharer', NEW.owner, ''); END IF; RETURN NEW; END $$"
    " LANGUAGE plpgsql",
    "CREATE TRIGGER sharer_claims AFTER INSERT OR UPDATE ON call_sharers FOR EACH ROW EXECUTE FUNCTION log_sharer()",
]


def _experiment(base_url: str, n_temps: int) -> pl.Experiment:
    """A draft the same for every configuration (per sample), then an answer that varies."""
    return pl.Experiment.model_validate({
        "project": "tests", "name": "shared-draft",
        "samples": [{"question": "capital of France"}, {"question": "capital of Japan"}],
        "stages": [{"name": "draft", "model": "fake/fake-small", "user": "Q: {{ question }}", "params": {"max_tokens": 8}},
                   {"name": "answer", "model": "fake/fake-small", "user": "Improve: {{ draft }}", "params": {"max_tokens": 8}}],
        "space": {"answer.temperature": [round(0.1 + i * 0.01, 2) for i in range(n_temps)]},
        "scorers": [{"name": "length", "max_words": 6}],
        "endpoints": {"fake": {"base_url": base_url, "max_retries": 2, "max_concurrency": 64}},
        "concurrency": 16,
    })


def _logged(db: str) -> list[tuple[str, str]]:
    return [(what, owner) for what, owner, _key in db_rows(db, "SELECT what, owner, key FROM claim_log")]


def _run(db: str, n_workers: int, n_temps: int, chunk_runs: int) -> tuple[Recorder, list[tuple[str, str]], str, Any]:
    recorder = Recorder()
    with FakeServer(latency=0.4, reply=recorder) as srv:
        open_store(db).close()  # the schema, before the triggers
        wb = pl.Workbench(db)
        for sql in PG_LOG if db.startswith("postgresql") else SQLITE_LOG:
            db_rows(db, sql)
        exp = _experiment(srv.base_url, n_temps)
        with workers(db, n_workers) as procs:
            handle = wb.start(exp, workers=True, chunk_runs=chunk_runs)
            progress = handle.wait(60)
            told = said(procs)
        wb.close()
    assert progress.status == "completed" and progress.done == 2 * n_temps and progress.failed == 0, told
    return recorder, _logged(db), told, handle


def test_a_worker_alone_running_two_chunks_at_once_claims_nothing_and_calls_each_request_once(db: str) -> None:
    # 6 configurations x 2 samples in 3 chunks of 2 configurations: each chunk's 4 runs start at
    # once (concurrency 16), so the worker takes the next chunk while the drafts are still out.
    recorder, logged, told, _ = _run(db, 1, 6, 4)
    assert told.count(": started") == 3, told
    # 2 drafts (one per sample, the same for every configuration) + 12 answers, each sent once.
    assert len(recorder.seen) == 14
    assert max(recorder.seen.values()) == 1, [k for k, n in recorder.seen.items() if n > 1]
    assert logged == [], "a worker alone on the store claimed calls (a database round trip per call)"


def test_two_workers_both_claim_and_still_call_each_request_once(db: str) -> None:
    # 8 chunks of one configuration: the first worker takes two at once, the second the next
    # one within its idle poll, while the drafts are out.
    recorder, logged, told, _ = _run(db, 2, 8, 2)
    assert len(recorder.seen) == 2 + 16
    assert max(recorder.seen.values()) == 1, [k for k, n in recorder.seen.items() if n > 1]
    # An owner is "host:pid:tail": both worker processes said they claim, and both claimed calls.
    claiming = {owner.split(":")[1] for what, owner in logged if what == "sharer"}
    assert len(claiming) == 2, (logged, told)
    claimers = {owner.split(":")[1] for what, owner in logged if what == "claim"}
    assert len(claimers) == 2, (logged, told)


def test_the_claims_of_a_sharing_close_with_its_last_member_and_a_later_member_gets_a_new_owner(db: str) -> None:
    # A chunk that ends must not end the claims the worker's other chunk still uses; the last one
    # out closes them (its sharer row goes); one joining afterwards is a new sharer, under a new
    # owner, so that the old one's leaving deletes nothing of the new one's.
    open_store(db).close()

    def sharers() -> list[str]:
        return [owner for (owner,) in db_rows(db, "SELECT owner FROM call_sharers")]

    async def members() -> None:
        sharing = CallSharing(db)
        first, second = (lambda: True), (lambda: True)
        claims = await sharing.join(first)
        assert await sharing.join(second) is claims and sharers() == [claims.owner]
        await sharing.leave(first)
        assert not sharing.idle and sharers() == [claims.owner]
        result = await asyncio.to_thread(claims.store.claim_calls, claims.owner, ["k"], time.time(), 5.0)  # still open
        assert result.claimed == {"k"}
        await sharing.leave(second)
        assert sharing.idle and sharers() == [] and db_rows(db, "SELECT key FROM call_claims") == []
        again = await sharing.join(first)
        assert again is not claims and again.owner != claims.owner and sharers() == [again.owner]
        await sharing.leave(first)

    asyncio.run(members())
