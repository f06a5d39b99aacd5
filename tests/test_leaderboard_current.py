"""The leaderboard ranks what the experiment is now.

An experiment edited and run again (space, samples, stages or scorers changed) is ranked on its
current definition only; earlier runs stay in the store, reachable with ``all_definitions`` /
``--all`` and the history of definitions. Failures are on the board (count, reason, last place),
every column has one type (the frame round-trips through parquet), and rejected configurations
are off every board, the read-only dashboard's included.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pandas as pd
import pytest
from helpers import fake_experiment

import promptlooper as pl
from promptlooper.functions import register_function

pytestmark = pytest.mark.both_backends  # each test on a SQLite file and on PostgreSQL (tests/conftest.py)

CLI = [sys.executable, "-m", "promptlooper.cli"]
SAMPLES = [{"question": "capital of France", "reference": "paris"}, {"question": "capital of Japan", "reference": "tokyo"},
           {"question": "capital of Italy", "reference": "rome"}]


def cli(db: str, *args: str) -> subprocess.CompletedProcess:
    res = subprocess.run([*CLI, "--db", db, *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res


def test_an_edited_space_ranks_only_its_own_configurations(wb, fake):
    wb.run(fake_experiment(fake.base_url))  # persona: terse, verbose
    wb.run(fake_experiment(fake.base_url, concurrency=2))  # a sweep setting: the same definition
    assert len(wb.definitions("tests/fake-exp")) == 1
    edited = fake_experiment(fake.base_url, space={"answer.temperature": [0.0, 0.5], "persona": ["curt", "chatty"]})
    wb.run(edited)
    board = wb.leaderboard(edited.key)
    assert len(board) == 4 and set(board["persona"]) == {"curt", "chatty"}
    assert list(board["rank"]) == [1, 2, 3, 4]
    best = json.loads(wb.export(edited.key, "json"))
    assert best["system_prompt"] in ("curt", "chatty") and best["variables"]["persona"] in ("curt", "chatty")
    # Earlier runs stay in the store and reachable.
    everything = wb.leaderboard(edited.key, all_definitions=True)
    assert len(everything) == 8 and set(everything["persona"]) == {"terse", "verbose", "curt", "chatty"}
    history = wb.definitions(edited.key)
    assert [d["number"] for d in history] == [1, 2] and history[-1]["current"] and not history[0]["current"]
    assert history[0]["space"]["persona"] == ["terse", "verbose"] and history[0]["configurations"] == 4
    old = wb.leaderboard(edited.key, definition=1)
    assert set(old["persona"]) == {"terse", "verbose"}
    with pytest.raises(pl.NotFoundError, match="no definition 7.*promptlooper definitions"):
        wb.leaderboard(edited.key, definition=7)


def test_fewer_samples_count_only_the_current_ones(wb, fake):
    wb.run(fake_experiment(fake.base_url))
    fewer = fake_experiment(fake.base_url, samples=SAMPLES[:2])
    progress = wb.run(fewer)
    assert progress.total == 8  # nothing new to run: every call is done
    board = wb.leaderboard(fewer.key)
    assert len(board) == 4 and set(board["n"]) == {2}
    per_config = {r["config_id"]: r for r in wb.runs(fewer.key, limit=100)}
    assert len(per_config) == 4  # the third sample's runs are still stored


def test_changed_stages_and_scorers(wb, fake):
    wb.run(fake_experiment(fake.base_url))
    stages = [{"name": "answer", "model": "fake/fake-small", "system": "{{ persona }}", "user": "Question: {{ question }}",
               "params": {"max_tokens": 8}}]
    changed = fake_experiment(fake.base_url, stages=stages, scorers=[{"name": "length", "max_words": 6}])
    wb.run(changed)
    board = wb.leaderboard(changed.key)
    assert len(board) == 4 and "keyword" not in board.columns and "length" in board.columns
    ids = set(board["full_config_id"])
    for cid in ids:
        assert wb.store.configuration(wb.experiment(changed.key)["id"], cid)["config"]["stages"][0]["user"] == "Question: {{ question }}"


def test_cli_leaderboard_all_and_definitions(db, fake, tmp_path):
    wb = pl.Workbench(db)
    wb.run(fake_experiment(fake.base_url))
    wb.run(fake_experiment(fake.base_url, space={"answer.temperature": [0.0], "persona": ["curt"]}))
    wb.close()
    current = json.loads(cli(db, "leaderboard", "tests/fake-exp", "--json").stdout)
    assert [r["persona"] for r in current] == ["curt"]
    assert len(json.loads(cli(db, "leaderboard", "tests/fake-exp", "--json", "--all").stdout)) == 5
    listing = cli(db, "definitions", "tests/fake-exp").stdout
    assert listing.startswith("#1  ") and "#2 (current)" in listing and '"persona": ["curt"]' in listing


# ---------------------------------------------------------------------------------- failures
def gate(previous: str, mode: str, question: str) -> str:
    if mode == "broken" or (mode == "flaky" and "Japan" in question):
        raise ValueError(f"gate refused {mode}")
    return previous


register_function("board_gate", gate)


def failing_experiment(base_url: str) -> pl.Experiment:
    return fake_experiment(
        base_url, name="failing",
        stages=[{"name": "answer", "model": "fake/fake-small", "user": "Q: {{ question }} ({{ mode }})",
                 "params": {"max_tokens": 8}},
                {"name": "gate", "function": "board_gate"}],
        space={"mode": ["ok", "broken", "flaky"]}, scorers=[{"name": "length", "max_words": 6}])


def test_failures_are_on_the_board(wb, fake, db):
    exp = failing_experiment(fake.base_url)
    wb.run(exp)
    for sort in (None, "cost", "tokens"):
        board = wb.leaderboard(exp.key, sort=sort).set_index("mode")
        assert list(board.index)[-1] == "broken"  # every run failed: on the board, last
        assert board.loc["broken", "n"] == 0 and math.isnan(board.loc["broken", "score"])
        assert board.loc["broken", "failed"] == 3 and board.loc["broken", "failure"].endswith("ValueError: gate refused broken")
        assert board.loc["flaky", "failed"] == 1 and board.loc["flaky", "n"] == 2
        assert board.loc["flaky", "failure"].endswith("ValueError: gate refused flaky")
        assert board.loc["ok", "failed"] == 0 and board.loc["ok", "failure"] == ""
    from promptlooper.ui.leaderboard import build_rows  # the notebook / dashboard board

    cols, rows = build_rows(wb.leaderboard(exp.key))
    assert "failed" in [c["key"] for c in cols]
    marked = {r["values"]["mode"]: r["cells"]["failed"] for r in rows}
    assert marked["broken"].startswith("3 · ") and marked["broken"].endswith("gate refused broken") and marked["ok"] == ""
    table = cli(db, "leaderboard", exp.key).stdout
    broken_line = next(line for line in table.splitlines() if "broken" in line)
    assert "gate refused broken" in broken_line and "!" in broken_line  # marked
    assert "!" not in next(line for line in table.splitlines() if " ok " in line)


# ---------------------------------------------------------------------------------- column types
def test_one_type_per_column_and_parquet_round_trip(wb, fake, tmp_path):
    exp = fake_experiment(fake.base_url, space={"answer.temperature": [0.0, 0.5], "answer.stop": ["\n", ["END", "STOP"]]})
    wb.run(exp)
    board = wb.leaderboard(exp.key)
    for column in board.columns:
        kinds = {type(v).__name__ for v in board[column] if v is not None and not (isinstance(v, float) and math.isnan(v))}
        assert len(kinds - {"int", "float"}) <= 1 and not ({"str"} < kinds), (column, kinds)
    assert set(board["distinguishable"]) <= {"best", "yes", "no"} and board.iloc[0]["distinguishable"] == "best"
    path = tmp_path / "board.parquet"
    board.to_parquet(path)
    back = pd.read_parquet(path)
    assert list(back.columns) == list(board.columns) and len(back) == len(board)
    assert list(back["distinguishable"]) == list(board["distinguishable"])


# ---------------------------------------------------------------------------------- rejected
def test_rejected_is_off_every_board(wb, fake):
    pytest.importorskip("anywidget")
    from promptlooper.ui.leaderboard import Leaderboard

    exp = fake_experiment(fake.base_url)
    wb.run(exp)
    top = str(wb.leaderboard(exp.key).iloc[0]["full_config_id"])
    wb.reject(exp.key, top, by="ana")
    assert top not in set(wb.leaderboard(exp.key)["full_config_id"])
    assert top not in set(wb.leaderboard(exp.key, all_definitions=True)["full_config_id"])
    listed = wb.leaderboard(exp.key, include_rejected=True)  # on request only: after the ranking, never the best
    assert listed.iloc[-1]["full_config_id"] == top and listed.iloc[-1]["distinguishable"] != "best"
    assert listed.iloc[0]["distinguishable"] == "best"
    dashboard_board = Leaderboard(wb, exp.key, live=False, readonly=True)
    assert top not in {r["id"] for r in dashboard_board.rows} and len(dashboard_board.rows) == 3
    dashboard_board.close()


# ---------------------------------------------------------------------------------- over MCP
def test_mcp_board_and_export_follow_the_current_definition(wb, fake):
    anyio = pytest.importorskip("anyio")
    pytest.importorskip("mcp")
    from mcp import Client

    from promptlooper.mcp_server import build_server

    wb.run(fake_experiment(fake.base_url))
    wb.run(fake_experiment(fake.base_url, space={"answer.temperature": [0.0, 0.5], "persona": ["curt"]}))
    wb.run(failing_experiment(fake.base_url))

    async def go() -> tuple[dict, ...]:
        async with Client(build_server(wb)) as c:
            replies = []
            for tool, args in (("get_leaderboard", {"experiment": "tests/fake-exp", "top": 10}),
                               ("get_leaderboard", {"experiment": "tests/fake-exp", "top": 10, "all_definitions": True}),
                               ("export_best_config", {"experiment": "tests/fake-exp"}),
                               ("get_leaderboard", {"experiment": "tests/failing", "top": 10})):
                res = await c.call_tool(tool, args)
                assert not res.is_error, res.content[0].text
                replies.append(res.structured_content)
            return tuple(replies)

    current, everything, exported, failing = anyio.run(go)
    assert current["configurations"] == 2 and {r["params"]["persona"] for r in current["top"]} == {"curt"}
    assert everything["configurations"] == 6
    assert json.loads(exported["text"])["system_prompt"] == "curt"
    last = failing["top"][-1]
    assert last["params"] == {"mode": "broken"} and last["n"] == 0 and last["failed"] == 3
    assert last["failure"].endswith("gate refused broken") and current["top"][0]["distinguishable"] == "best"
