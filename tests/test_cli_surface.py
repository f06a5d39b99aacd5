"""The command line's surface, in subprocesses as a user meets it: --version, --db wherever it is put,
output piped into a reader that stops early, and read-only commands on a database that does not exist."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import fake_experiment, write_experiment

import promptlooper as pl
from promptlooper.cli import build_parser, main
from promptlooper.testing import FakeServer

CLI = [sys.executable, "-m", "promptlooper.cli"]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.fixture(scope="module")
def swept_db(tmp_path_factory) -> str:
    """A database with one finished experiment (tests/fake-exp, 12 runs on the fake server); read only."""
    db = str(tmp_path_factory.mktemp("swept") / "swept.db")
    with FakeServer() as srv:
        wb = pl.Workbench(db)
        wb.run(fake_experiment(srv.base_url))
        wb.close()
    return db


def _parsers(parser, path=()):
    """Every (sub)command parser with the words that reach it."""
    yield path, parser
    for action in parser._actions:
        if action.choices and isinstance(action.choices, dict):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_version_is_the_package_version():
    res = cli("--version")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"promptlooper {pl.__version__}"


def test_db_is_accepted_after_every_command():
    for path, parser in _parsers(build_parser()):
        assert "--db" in parser._option_string_actions, f"`promptlooper {' '.join(path)}` does not take --db"


def test_db_after_the_command_is_the_one_used(swept_db, tmp_path, capsys):
    # The README's `promptlooper dashboard --db promptlooper.db`: the dashboard names a missing file
    # instead of rejecting the option (exit 2, "unrecognized arguments").
    missing = tmp_path / "missing.db"
    res = cli("dashboard", "--db", str(missing), "--port", "1")
    assert res.returncode == 1 and "no database at" in res.stderr, res.stderr
    assert not missing.exists()
    # In-process from here (the same main()): after the command, before it, and after a nested one.
    for argv in (["experiments", "--json", "--db", swept_db], ["--db", swept_db, "experiments", "--json"],
                 ["--db", str(missing), "experiments", "--json", "--db", swept_db]):
        assert main(argv) == 0, argv
        assert [r["name"] for r in json.loads(capsys.readouterr().out)] == ["fake-exp"], argv
    assert main(["webhooks", "list", "--db", swept_db]) == 0
    assert main(["endpoints", "add", "x", "--base-url", "http://127.0.0.1:9/v1", "--db", str(missing)]) == 0
    assert missing.exists()  # `endpoints add` may create the database it was pointed at


@pytest.mark.parametrize("args", [("--help",), ("runs", "tests/fake-exp", "--json"), ("export", "tests/fake-exp", "--format", "report")])
def test_output_into_a_closed_pipe_prints_no_traceback(swept_db, args):
    # What `promptlooper … | head -1` does once head has its line: the reading end is gone. Closing it
    # before the command writes makes the first write fail, every time.
    proc = subprocess.Popen([*CLI, "--db", swept_db, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert "Traceback" not in err and "Exception ignored" not in err and "BrokenPipe" not in err, err
    # 141, as a shell reports SIGPIPE; argparse's --help swallows the error itself and exits 0.
    assert code == (0 if args == ("--help",) else 141), (code, err)


def test_output_piped_into_head(swept_db):
    res = subprocess.run(f"{sys.executable} -m promptlooper.cli --db {swept_db} runs tests/fake-exp --json | head -n 1",
                         shell=True, capture_output=True, text=True, timeout=120)
    assert res.stdout == "[\n" and res.stderr == ""


READ_ONLY = [
    ("leaderboard", "q/c"), ("experiments",), ("status", "q/c"), ("runs", "q/c"), ("show", "abc"), ("events", "q/c"),
    ("export", "q/c"), ("compare", "q/c", "best", "2"), ("calibration", "q/c"), ("cache", "explain", "abc"),
    ("pause", "q/c"), ("approve", "q/c", "abcd"), ("rate", "abc", "--stars", "3"),
]


def test_read_only_commands_do_not_create_a_database(tmp_path):
    missing = tmp_path / "nothing-here.db"
    res = cli("--db", str(missing), "leaderboard", "quickstart/capitals")
    assert res.returncode == 1
    assert f"no PromptLooper database at {missing}" in res.stderr and "promptlooper run" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    for args in READ_ONLY:  # in-process: the same main(), without a second of start-up each
        assert main(["--db", str(missing), *args]) == 1, args
        assert not missing.exists(), f"`promptlooper {' '.join(args)}` created {missing}"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_validate_and_plan_need_no_database(tmp_path, server, make_exp, monkeypatch, capsys):
    exp_file = write_experiment(tmp_path / "exp.yaml", make_exp())
    res = cli("validate", "exp.yaml", cwd=tmp_path)
    assert res.returncode == 0 and "is valid" in res.stdout, res.stderr
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["plan", "exp.yaml", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["calls_to_make"] == 12
    assert main(["endpoints", "list"]) == 0 and "local" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == [exp_file.name]
    # With a database, plan reads its cache.
    wb = pl.Workbench("pl.db")
    wb.run(make_exp())
    wb.close()
    assert main(["plan", "exp.yaml", "--json", "--db", "pl.db"]) == 0
    assert json.loads(capsys.readouterr().out)["calls_to_make"] == 0
