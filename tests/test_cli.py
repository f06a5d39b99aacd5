"""The command line: a thin layer over the Workbench, exercised as a user would, in subprocesses."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import fake_experiment, write_experiment

pytestmark = pytest.mark.both_backends  # each test on a SQLite file and on PostgreSQL (tests/conftest.py)

CLI = [sys.executable, "-m", "promptlooper.cli"]
README = Path(__file__).resolve().parent.parent / "README.md"


def cli(db: str, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    res = subprocess.run([*CLI, "--db", db, *args], capture_output=True, text=True, timeout=120, env=env)
    if check:
        assert res.returncode == 0, res.stderr
    return res


@pytest.fixture
def exp_file(tmp_path, server) -> Path:
    return write_experiment(tmp_path / "exp.yaml", fake_experiment(server.base_url, name="cli"))


def test_run_prints_progress_and_leaderboard(db, exp_file, server):
    res = cli(db, "run", str(exp_file))
    assert "12/12 runs" in res.stderr and "cache" in res.stderr and "ETA" in res.stderr
    assert res.stdout.startswith("completed: 12/12 runs, 0 failed")
    assert re.search(r"^rank\s+config_id\s+answer\.temperature\s+persona\s+score\s+ci_low\s+ci_high\s+n", res.stdout, re.M)
    board = json.loads(cli(db, "leaderboard", "tests/cli", "--json").stdout)
    assert len(board) == 4 and board[0]["rank"] == 1 and board[0]["n"] == 3
    assert {"score", "ci_low", "ci_high", "tokens", "cost", "latency_ms"} <= set(board[0])
    top1 = json.loads(cli(db, "leaderboard", "tests/cli", "--json", "--top", "1", "--sort", "length").stdout)
    assert len(top1) == 1 and top1[0]["length"] == max(r["length"] for r in board)
    assert cli(db, "leaderboard", "nope", check=False).returncode == 1


def test_random_strategy_from_the_command_line(db, exp_file):
    res = cli(db, "run", str(exp_file), "--strategy", "random", "--max-configs", "2", "--seed", "4", "--quiet")
    assert "completed: 6/6 runs" in res.stdout


def test_endpoints_add_list_test(db, server, monkeypatch):
    cli(db, "endpoints", "add", "fake", "--base-url", server.base_url, "--api-key-env", "SOME_KEY_VAR")
    listed = json.loads(cli(db, "endpoints", "list", "--json").stdout)
    names = {e["name"]: e for e in listed}
    assert names["local"]["kind"] == "embedded" and names["fake"]["api_key_env"] == "SOME_KEY_VAR"
    res = cli(db, "endpoints", "test", "fake", check=False)
    assert res.returncode == 1 and "$SOME_KEY_VAR, which is not set" in res.stderr
    cli(db, "endpoints", "add", "fake", "--base-url", server.base_url)
    res = cli(db, "endpoints", "test", "fake")
    assert "fake/fake-small" in res.stdout and "fake/fake-large" in res.stdout
    res = cli(db, "endpoints", "test", "local")
    assert "local/smollm2-135m" in res.stdout
    cli(db, "endpoints", "add", "down", "--base-url", "http://127.0.0.1:9/v1")
    res = cli(db, "endpoints", "test", "down", check=False)
    assert res.returncode == 1 and "cannot reach" in res.stderr


def test_cache_explain_and_invalidate_commands(db, exp_file, server):
    cli(db, "run", str(exp_file), "--quiet")
    run_id = json.loads(cli(db, "runs", "tests/cli", "--json").stdout)[0]["id"]
    res = cli(db, "cache", "explain", run_id[:10])
    assert "SHA-256 over the canonical JSON of" in res.stdout and '"endpoint": "' + server.base_url in res.stdout
    assert "matches" in res.stdout
    res = cli(db, "cache", "invalidate", "--experiment", "tests/cli")
    assert "invalidated 12" in res.stdout
    detail = json.loads(cli(db, "show", run_id).stdout)
    assert detail["stages"][0]["response_raw"]


def test_plan_export_approve_commands(db, exp_file):
    res = cli(db, "plan", str(exp_file))
    assert "12 needed, 0 already cached" in res.stdout
    cli(db, "run", str(exp_file), "--quiet")
    assert "0 to make" in cli(db, "plan", str(exp_file)).stdout
    top = json.loads(cli(db, "leaderboard", "tests/cli", "--json").stdout)[0]["config_id"]
    cli(db, "approve", "tests/cli", top, "--by", "me", "--reason", "fine")
    assert json.loads(cli(db, "export", "tests/cli", "--format", "json").stdout)["config_id"].startswith(top)
    assert cli(db, "export", "tests/cli", "--format", "env").stdout.startswith("LLM_MODEL=fake-small")


def test_every_command_is_documented_in_the_readme():
    from promptlooper.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    readme = README.read_text()
    missing = [name for name in commands if f"promptlooper {name}" not in readme]
    assert not missing, f"undocumented commands: {missing}"


def test_help_of_every_command_renders():
    from promptlooper.cli import build_parser

    parser = build_parser()
    parser.format_help()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in commands.items():
        assert sub.format_help(), name
