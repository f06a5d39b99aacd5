"""The CLI's own shape: ``--help`` starts without the heavy parts of the package, an experiment file
is read once per command, and which commands may create a database is stated per command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import fake_experiment, write_experiment

from promptlooper import bounds
from promptlooper.cli import build_parser, main

# What a user waits for on `promptlooper --help` if the parser pulls in the facade: none of it is
# needed to print help, so none of it may be imported.
HEAVY = ("pandas", "numpy", "scipy", "aiohttp", "pydantic", "yaml", "sqlite3", "promptlooper.workbench",
         "promptlooper.spec", "promptlooper.store", "promptlooper.engine")


def imported_by(*argv: str) -> set[str]:
    """The modules a `promptlooper ARGV` process imports, as `python -X importtime` reports them."""
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "promptlooper.cli", *argv],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("argv", [("--help",), ("run", "--help"), ("endpoints", "add", "--help")])
def test_help_imports_nothing_heavy(argv):
    modules = imported_by(*argv)
    assert "promptlooper.errors" in modules  # the probe sees the package's own imports
    heavy = sorted({h for h in HEAVY for m in modules if m == h or m.startswith(h + ".")})
    assert not heavy, f"`promptlooper {' '.join(argv)}` imports {heavy}"


def test_no_command_help_imports_anything_heavy():
    # Every command's and action's --help, in one process: the parser is all argparse.
    code = ("import sys; from promptlooper.cli import build_parser\n"
            "def walk(p):\n"
            "    p.format_help()\n"
            "    for a in p._actions:\n"
            "        if isinstance(a.choices, dict): [walk(s) for s in a.choices.values()]\n"
            "walk(build_parser()); print(' '.join(sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    modules = res.stdout.split()
    assert "promptlooper.cli.parser" in modules
    assert not sorted({h for h in HEAVY for m in modules if m == h or m.startswith(h + ".")})


def test_an_experiment_file_is_read_once(tmp_path, server, monkeypatch, capsys):
    # validate, plan and run used to parse the file, validate it, and parse it again for the run.
    path = write_experiment(tmp_path / "exp.yaml", fake_experiment(server.base_url, name="once"))
    reads: list[Path] = []
    real = bounds.read_text

    def counting(p, *args, **kwargs):
        reads.append(Path(p))
        return real(p, *args, **kwargs)

    monkeypatch.setattr(bounds, "read_text", counting)
    db = str(tmp_path / "once.db")
    for command in (["validate"], ["plan"], ["run", "--quiet"]):
        reads.clear()
        assert main(["--db", db, command[0], str(path), *command[1:]]) == 0, capsys.readouterr().err
        assert reads.count(path) == 1, f"{command[0]} read the file {reads.count(path)} times"


def test_a_file_that_does_not_parse_lists_every_problem_once(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nsamples: [{text: hi}]\nstages: [{name: a, user: '{{text}}', model: nowhere/m}]\n"
                    "space: {a.temperature: [0.1]}\nscorers: [{name: no_such_scorer}]\nrepeat: zero\n")
    assert main(["--db", str(tmp_path / "x.db"), "run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "repeat" in err and "nothing was run" in err
    lines = [line for line in err.splitlines() if line.startswith("  ") and ":" in line]
    assert len(lines) == len(set(lines)), err


# Which commands may create the database file, and which need none (an empty store in memory).
CREATES = {"run", "quickstart", "mcp", "endpoints add", "endpoints remove", "webhooks add", "webhooks remove", "prices set",
           "db", "db reader-role",
           "worker"}  # workers may start before the first experiment (a fresh team database)
NONE_NEEDED = {"validate", "plan", "endpoints", "endpoints list", "endpoints test", "webhooks", "webhooks list"}


def _commands(parser, path=()):
    for action in parser._actions:
        if action.choices and isinstance(action.choices, dict):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _commands(sub, (*path, name))


def test_every_command_states_what_it_needs_of_the_database():
    seen = {}
    for path, sub in _commands(build_parser()):
        need = sub.get_default("database")
        assert need in ("creates", "none", "existing"), f"`promptlooper {' '.join(path)}` does not say ({need!r})"
        seen[" ".join(path)] = need
    assert {c for c, n in seen.items() if n == "creates"} == CREATES
    assert {c for c, n in seen.items() if n == "none"} == NONE_NEEDED


def test_the_package_names_resolve_on_first_use():
    # promptlooper/__init__ imports its names lazily (so that --help needs none of them); each still
    # resolves, and so do submodules as attributes, as when the package imported everything.
    code = ("import sys, promptlooper as pl; assert 'pandas' not in sys.modules; "
            "[getattr(pl, n) for n in pl.__all__]; assert pl.errors.NotFoundError is pl.NotFoundError; "
            "assert not hasattr(pl, 'no_such_thing'); print('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "ok", res.stderr


def _commands_of(parser):
    return next(a for a in parser._actions if a.dest == "command").choices


def test_each_group_declares_the_commands_it_adds():
    from promptlooper.cli.parser import GROUPS, Parser

    for group in GROUPS:
        sub = Parser(prog="promptlooper").add_subparsers(dest="command")
        group.add_parser(sub)
        assert tuple(sub.choices) == group.COMMANDS, group.__name__


@pytest.mark.parametrize(("argv", "command"), [
    (["run", "exp.yaml", "--quiet"], "run"),
    (["--db", "x.db", "leaderboard", "a/b"], "leaderboard"),
    (["--db=x.db", "--as", "me", "approve", "a/b", "c1"], "approve"),
    (["endpoints", "add", "local", "--base-url", "http://127.0.0.1:1/v1"], "endpoints"),
])
def test_a_command_line_naming_a_command_builds_only_its_group_and_parses_the_same(argv, command):
    from promptlooper.cli.parser import GROUPS

    full, named = build_parser(), build_parser(argv)
    group = next(g for g in GROUPS if command in g.COMMANDS)
    assert tuple(_commands_of(named)) == group.COMMANDS  # the other groups' dozens of parsers are not built
    assert named.parse_args(argv) == full.parse_args(argv)
    assert named.format_usage() == full.format_usage()  # the usage an error prints names every command still


@pytest.mark.parametrize("argv", [[], ["--help"], ["--version"], ["nope"], ["--db"], ["--d", "x", "run"], ["-x", "run"]])
def test_a_command_line_naming_no_known_command_gets_every_command(argv):
    assert list(_commands_of(build_parser(argv))) == list(_commands_of(build_parser()))
