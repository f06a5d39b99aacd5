"""Scores mean what they say: people's ratings weighted in, embeddings endpoints checked, failed
scores loud in `rescore`, samples that cannot overwrite each other, CSV numbers, templates tried
with real samples, and the README's `judge` example."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import db_rows, fake_experiment, write_experiment
from sqlite_utils import Database, Migrations

import promptlooper as pl
from promptlooper.samples import read_samples
from promptlooper.scorers import check_args
from promptlooper.testing import FakeModel, FakeServer
from promptlooper.testing.fake_server import default_reply

pytestmark = pytest.mark.both_backends  # each test on a SQLite file and on PostgreSQL (tests/conftest.py)

CLI = [sys.executable, "-m", "promptlooper.cli"]


def cli(db: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "--db", db, *args], capture_output=True, text=True, timeout=120)


def grading(body):
    text = body["messages"][-1]["content"]
    return "Score: 4" if "Rate the RESPONSE" in text else "paris tokyo rome"


# --------------------------------------------------------------------------- judge `scale: 5`
def test_the_readmes_judge_example_with_scale_5_works(wb):
    assert check_args("judge", {"model": "openai/gpt-4o-mini", "scale": 5}) == []
    model = FakeModel(reply=grading)
    exp = fake_experiment(model.base_url, space={}, scorers=[{"name": "judge", "model": "fake/fake-small", "scale": 5}])
    assert wb.validate(exp) == []
    wb.run(exp)
    board = wb.leaderboard(exp.key)
    assert board.loc[0, "judge"] == pytest.approx(0.75)  # 4 on 1..5


# --------------------------------------------------------------------------- human ratings weighted
def test_human_ratings_are_weighted_into_the_score_like_any_scorer(wb):
    model = FakeModel(reply=grading)
    exp = fake_experiment(model.base_url, space={"answer.temperature": [0.0, 0.5]},
                          scorers=[{"name": "contains", "field": "reference"}, {"name": "human", "weight": 2}])
    assert wb.validate(exp) == []
    progress = wb.run(exp)
    assert progress.failed == 0
    before = wb.leaderboard(exp.key)
    assert list(before.score) == [1.0, 1.0]  # every output contains its reference; nobody has rated yet
    runs = [r for r in wb.runs(exp.key) if r["config_id"] == before.loc[1, "full_config_id"]]
    for run in runs:
        wb.rate(run["id"], stars=1)  # people find the second configuration's answers bad
    board = wb.leaderboard(exp.key)
    rated = board[board.full_config_id == before.loc[1, "full_config_id"]].iloc[0]
    # (1 * contains 1.0 + 2 * human 0.0) / 3 on every sample
    assert rated["human"] == 0.0 and rated["score"] == pytest.approx(1 / 3)
    assert board.loc[0, "full_config_id"] == before.loc[0, "full_config_id"] and board.loc[0, "score"] == 1.0
    assert wb.run_detail(runs[0]["id"])["score"] == pytest.approx(1 / 3)  # the run's own weighted score too
    problems = wb.validate(fake_experiment("http://127.0.0.1:9/v1", scorers=[{"name": "human", "rating": "stars", "label": "human_stars"}]))
    assert [p.path for p in problems] == ["scorers[0].label"]  # it would overwrite the ratings themselves
    # the ratings are data, not a computation: re-scoring keeps them and their weight
    summary = wb.rescore(exp.key)
    assert summary["failed"] == 0
    assert wb.leaderboard(exp.key).set_index("full_config_id").loc[rated["full_config_id"], "score"] == pytest.approx(1 / 3)


# --------------------------------------------------------------------------- embeddings endpoints
def embedding_board(wb, srv, name):
    exp = fake_experiment(srv.base_url, name=name, space={},
                          scorers=[{"name": "embedding", "field": "reference", "base_url": srv.base_url, "model": "fake-embed"}])
    progress = wb.run(exp)
    assert progress.failed == 0
    return wb.leaderboard(exp.key).iloc[0], exp


def test_token_level_embeddings_from_a_llama_cpp_like_server_are_pooled(wb):
    with FakeServer(reply=grading) as pooled:
        one, _ = embedding_board(wb, pooled, "pooled")
    with FakeServer(reply=grading, embeddings="tokens") as tokens:
        pooled_again, _ = embedding_board(wb, tokens, "tokens")
    assert one["embedding"] > 0.3 and one["missing"] == 0
    # one vector per token, mean-pooled: the same similarity as the server that pools itself
    assert pooled_again["embedding"] == pytest.approx(one["embedding"], abs=1e-6) and pooled_again["missing"] == 0


def test_an_embedding_scorer_error_is_a_missing_score_never_a_silent_zero(wb, db):
    with FakeServer(reply=grading) as srv:
        exp = fake_experiment(srv.base_url, space={}, scorers=[
            {"name": "length", "max_words": 50},
            {"name": "embedding", "field": "reference", "base_url": "http://127.0.0.1:9/v1", "model": "fake-embed"}])
        assert wb.run(exp).failed == 0
    row = wb.leaderboard(exp.key).iloc[0]
    assert row["missing"] == 3 and row["score"] == 1.0  # the length scorer alone, not dragged down by zeros
    rows = db_rows(db, "SELECT value, metadata FROM scores WHERE scorer = 'embedding'")
    assert len(rows) == 3 and all(value is None and "/embeddings failed" in meta for value, meta in rows)


def test_an_all_zero_vector_is_a_missing_score_for_that_run_alone(wb):
    # The fake server, like some real ones, embeds a text with no words as a zero vector.
    with FakeServer(reply=lambda body: "?!" if "France" in body["messages"][-1]["content"] else "paris tokyo rome") as srv:
        row, exp = embedding_board(wb, srv, "zero")
    assert row["missing"] == 1 and row["embedding"] > 0.3  # the two other runs are scored, the zero is not a 0
    details = [s for r in wb.runs(exp.key) for s in wb.run_detail(r["id"])["scores"] if s["value"] is None]
    assert len(details) == 1 and "all-zero vector for the output" in details[0]["metadata"]["error"]


@pytest.mark.parametrize(("body", "count", "needle"), [
    ({"data": [{"index": 0, "embedding": [1.0, 0.0]}]}, 2, "1 vector(s) for 2 input(s)"),
    ({"data": [{"index": 0, "embedding": [1.0, 0.0]}, {"index": 1, "embedding": [1.0, 0.0, 0.0]}]}, 2, "different sizes"),
    ({"data": [{"index": 0, "embedding": ["a", "b"]}]}, 1, "not numbers"),
    ({"data": [{"index": 0, "embedding": [[1.0, 0.0], [1.0]]}]}, 1, "token vectors of different sizes"),
    ({"vectors": []}, 1, "no 'data' list"),
])
def test_unusable_embeddings_replies_are_refused_with_the_reason(body, count, needle):
    from promptlooper.endpoint_vectors import VectorsError, read_vectors

    with pytest.raises(VectorsError, match=None) as err:
        read_vectors(body, count)
    assert needle in str(err.value)


# --------------------------------------------------------------------------- rescore exit code
def test_rescore_reports_failed_scores_and_exits_non_zero(tmp_path, wb, db):
    with FakeServer(reply=lambda body: "I cannot say." if "Rate the RESPONSE" in body["messages"][-1]["content"]
                    else default_reply(body)) as srv:
        wb.run(fake_experiment(srv.base_url, name="loud", space={}))
        assert cli(db, "rescore", "tests/loud").returncode == 0  # every score computed
        judged = write_experiment(tmp_path / "judged.yaml", fake_experiment(
            srv.base_url, name="loud", space={}, scorers=[{"name": "length", "max_words": 6}, {"name": "judge", "model": "fake/fake-small"}]))
        res = cli(db, "rescore", "--file", str(judged))
    assert res.returncode == 1, res.stderr
    assert "3 score(s) failed" in res.stderr and "3 x judge: no grade from 1 to 5" in res.stderr


# --------------------------------------------------------------------------- samples
def test_duplicate_sample_ids_are_a_validation_problem(wb, make_fake_exp):
    samples = [{"id": 1, "question": "a", "reference": "x"}, {"id": 2, "question": "b", "reference": "y"},
               {"id": 2, "question": "c", "reference": "z"}, {"question": "d", "reference": "w"},
               {"question": "d", "reference": "w"}]
    problems = [str(p) for p in wb.validate(make_fake_exp(samples=samples))]
    assert any(p.startswith("samples[2].id: sample id 2 is also the id of samples[1]") for p in problems), problems
    assert any(p.startswith("samples[4]: identical to samples[3]") for p in problems), problems
    with pytest.raises(pl.SpecError):
        wb.run(make_fake_exp(samples=samples))


def test_csv_columns_of_numbers_are_numbers(tmp_path, wb):
    (tmp_path / "s.csv").write_text("id,question,n,ratio,code\n1,first,2,0.5,007\n2,second,10,1,012\n")
    rows, problems = read_samples(tmp_path / "s.csv")
    assert problems == []
    assert rows[0] == {"id": 1, "question": "first", "n": 2, "ratio": 0.5, "code": "007"}
    assert rows[1]["n"] == 10 and rows[1]["ratio"] == 1.0
    bodies = []
    model = FakeModel(reply=lambda body: bodies.append(body) or "alpha")
    exp = fake_experiment(model.base_url, samples=str(tmp_path / "s.csv"), space={},
                          stages=[{"name": "answer", "model": "fake/fake-small", "user": "{{ question }} x{{ n + 1 }}"}],
                          scorers=[{"name": "length", "max_words": 5}])
    assert wb.validate(exp) == []
    assert wb.run(exp).failed == 0
    assert sorted(b["messages"][-1]["content"] for b in bodies) == ["first x3", "second x11"]


def test_validate_renders_every_template_against_the_first_samples(wb, make_fake_exp):
    exp = make_fake_exp(samples=[{"question": "q", "n": "two", "reference": "r"}], space={"answer.user": ["{{ question }}", "{{ n + 1 }}"]})
    problems = [str(p) for p in wb.validate(exp)]
    assert any(p.startswith("space.answer.user[1]: rendering with samples[0] fails") for p in problems), problems
    assert not any("space.answer.user[0]" in p for p in problems)
    fine = make_fake_exp(samples=[{"question": "q", "n": 2, "reference": "r"}], space={"answer.user": ["{{ question }}", "{{ n + 1 }}"]})
    assert wb.validate(fine) == []
    # a judge's prompt too: it would fail on every run, after the stage calls were paid for
    judged = make_fake_exp(samples=[{"question": "q", "n": "two", "reference": "r"}], space={},
                      scorers=[{"name": "judge", "model": "fake/fake-small", "prompt": "{{ output }} in {{ n + 1 }} words: {{ min }}-{{ max }}"}])
    assert [p.path for p in wb.validate(judged)] == ["scorers[0].prompt"]


# --------------------------------------------------------------------------- stores from before
def test_a_store_made_before_missing_scores_opens_and_keeps_its_scores(tmp_path):
    from promptlooper.store import Store
    from promptlooper.store.schema import migrations

    path = tmp_path / "old.db"
    old = Database(str(path))
    earlier = Migrations("promptlooper")  # sqlite-utils' runner, as those versions had it
    for name, fn in list(migrations)[:2]:  # the schema every version before m003_missing_scores made
        earlier(name=name)(fn)
    earlier.apply(old)
    old.execute("INSERT INTO projects (id, name, created_at, updated_at) VALUES ('p', 'p', 'now', 'now')")
    old.execute("INSERT INTO experiments (id, project_id, name, spec, created_at, updated_at) VALUES ('e', 'p', 'e', '{}', 'now', 'now')")
    old.execute("INSERT INTO runs (id, experiment_id, config_id, sample_id, sample_index, status) VALUES ('r1', 'e', 'c', 's', 0, 'completed')")
    old.execute("INSERT INTO scores (run_id, scorer, value, scorer_name, created_at) VALUES ('r1', 'judge', 0.5, 'judge', 'now')")
    old.conn.commit()
    old.conn.close()
    store = Store(path)
    with store.cx.read() as c:
        assert c.execute("SELECT run_id, scorer, value FROM scores").fetchall() == [("r1", "judge", 0.5)]
        assert c.execute("SELECT \"notnull\" FROM pragma_table_info('scores') WHERE name = 'value'").fetchone() == (0,)
    store.close()
