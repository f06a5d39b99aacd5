"""Pipelines as users write them: functions, scorers, samples, prompts and keys from files; housekeeping.

Everything end to end: the CLI as a subprocess, MCP through the SDK's real client, the loopback
fake server for every model call, plugins as real installed distributions (a .dist-info on the path).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from mcp import Client

import promptlooper as pl
from promptlooper.mcp_server import build_server

ROOT = Path(pl.__file__).resolve().parents[1]  # the subprocesses run the package these tests import
CLI = [sys.executable, "-m", "promptlooper.cli"]


def cli(*args: str, cwd: Path, db: str, env: dict[str, str] | None = None, pythonpath: list[Path] = ()) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTLOOPER_ALLOW")}
    full["PYTHONPATH"] = os.pathsep.join([str(ROOT), *map(str, pythonpath)])
    full.update(env or {})
    return subprocess.run([*CLI, "--db", db, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=full)


def experiment_yaml(base_url: str, name: str, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "project": "files", "name": name,
        "samples": [{"question": "capital of France", "reference": "paris"},
                    {"question": "capital of Japan", "reference": "tokyo"}],
        "stages": [{"name": "answer", "model": "fake/fake-small", "user": "Q: {{ question }}", "params": {"max_tokens": 6}}],
        "space": {"answer.temperature": [0.0, 0.5]},
        "scorers": [{"name": "length", "max_words": 20}],
        "endpoints": {"fake": {"base_url": base_url, "max_retries": 2}},
    }
    data.update(over)
    return data


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


async def call(client: Client, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    res = await client.call_tool(tool, args or {})
    assert not res.is_error, f"{tool}: {res.content[0].text}"
    return res.structured_content  # type: ignore[return-value]


async def fails(client: Client, tool: str, args: dict[str, Any]) -> str:
    res = await client.call_tool(tool, args)
    assert res.is_error, f"{tool} did not fail: {res.structured_content}"
    assert "Traceback" not in res.content[0].text
    return res.content[0].text


# --------------------------------------------------------------------------- functions and scorers from files
STAGE_MODULE = """
def shout(answer):
    return answer.upper()
"""
SCORER_MODULE = """
from helpers_nearby import LIMIT   # a neighbour module: imports next to the experiment work too

def is_loud(output, limit=LIMIT):
    return output == output.upper() and len(output) <= limit
"""


def test_function_stage_and_python_scorer_from_modules_next_to_the_file(server, tmp_path):
    folder = tmp_path / "project"
    write(folder / "textops.py", STAGE_MODULE)
    write(folder / "loudness.py", SCORER_MODULE)
    write(folder / "helpers_nearby.py", "LIMIT = 500\n")
    data = experiment_yaml(server.base_url, "fn-from-file")
    data["stages"].append({"name": "loud", "function": "textops:shout"})
    data["scorers"] = [{"name": "python", "function": "loudness:is_loud", "label": "loud"}]
    write(folder / "fn.yaml", data)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    db = str(tmp_path / "pl.db")

    res = cli("validate", str(folder / "fn.yaml"), cwd=elsewhere, db=db)
    assert res.returncode == 0, res.stderr
    res = cli("run", str(folder / "fn.yaml"), "--quiet", cwd=elsewhere, db=db)
    assert res.returncode == 0, res.stderr
    board = pl.Workbench(db).leaderboard("files/fn-from-file")
    assert list(board["loud"]) == [1.0, 1.0] and list(board["n"]) == [2, 2]

    # A wrong name says what was tried and what to write.
    data["scorers"] = [{"name": "python", "function": "loudness:is_quiet"}]
    write(folder / "bad.yaml", data)
    res = cli("validate", str(folder / "bad.yaml"), cwd=elsewhere, db=db)
    assert res.returncode == 2 and "scorers[0]" in res.stderr and "has no 'is_quiet'" in res.stderr and "is_loud" in res.stderr
    data["scorers"] = [{"name": "length", "max_words": 20}]
    data["stages"][1]["function"] = "nosuchmodule:shout"
    write(folder / "bad.yaml", data)
    res = cli("validate", str(folder / "bad.yaml"), cwd=elsewhere, db=db)
    assert res.returncode == 2 and "stages[1].function" in res.stderr and "cannot import 'nosuchmodule'" in res.stderr


def _install_plugin(site: Path) -> None:
    """A tiny real distribution: a package and its .dist-info with entry points, as pip leaves them."""
    write(site / "plshout" / "__init__.py", textwrap.dedent("""
        def shout(answer):
            return answer.upper() + "!"

        def ends_with_bang(max_chars: int = 200):
            def score(ctx):
                return ctx.output.endswith("!") and len(ctx.output) <= max_chars
            return score
    """))
    dist = site / "plshout-0.1.dist-info"
    write(dist / "METADATA", "Metadata-Version: 2.1\nName: plshout\nVersion: 0.1\n")
    write(dist / "entry_points.txt", "[promptlooper.functions]\nshout = plshout:shout\n\n"
                                     "[promptlooper.scorers]\nbang = plshout:ends_with_bang\n")
    write(dist / "RECORD", "")


def test_plugins_registered_through_entry_points(server, tmp_path):
    site = tmp_path / "site"
    _install_plugin(site)
    data = experiment_yaml(server.base_url, "plugins")
    data["stages"].append({"name": "loud", "function": "shout"})
    data["scorers"] = [{"name": "bang", "max_chars": 400}]
    exp = write(tmp_path / "plugins.yaml", data)
    db = str(tmp_path / "pl.db")
    res = cli("run", str(exp), "--quiet", cwd=tmp_path, db=db, pythonpath=[site])
    assert res.returncode == 0, res.stderr
    board = pl.Workbench(db).leaderboard("files/plugins")
    assert list(board["bang"]) == [1.0, 1.0]
    # Without the package installed, the same file names what is missing.
    res = cli("validate", str(exp), cwd=tmp_path, db=db)
    assert res.returncode == 2 and "no function 'shout'" in res.stderr and "unknown scorer 'bang'" in res.stderr


def test_mcp_imports_only_what_the_operator_allows(server, tmp_path, monkeypatch):
    mods = tmp_path / "mods"
    marker = tmp_path / "imported.txt"
    write(mods / "mcp_textops.py", f"open({str(marker)!r}, 'a').write('imported')\n" + STAGE_MODULE)
    monkeypatch.syspath_prepend(str(mods))
    monkeypatch.delenv("PROMPTLOOPER_ALLOW_IMPORTS", raising=False)
    data = experiment_yaml(server.base_url, "mcp-fn")
    data["stages"].append({"name": "loud", "function": "mcp_textops:shout"})
    data["scorers"] = [{"name": "python", "function": "os:getcwd"}]
    wb = pl.Workbench(str(tmp_path / "pl.db"))

    async def refused() -> str:
        async with Client(build_server(wb)) as c:
            return await fails(c, "create_experiment", {"experiment": data})

    text = anyio.run(refused)
    assert "stages[1].function" in text and "scorers[0].function" in text and "PROMPTLOOPER_ALLOW_IMPORTS" in text
    assert not marker.exists() and "mcp_textops" not in sys.modules  # refused before any import

    monkeypatch.setenv("PROMPTLOOPER_ALLOW_IMPORTS", "mcp_*")
    data["scorers"] = [{"name": "length", "max_words": 20}]

    async def allowed() -> dict[str, Any]:
        async with Client(build_server(wb)) as c:
            await call(c, "create_experiment", {"experiment": data})
            return await call(c, "run_single", {"experiment": "files/mcp-fn", "point": {"answer.temperature": 0.0}, "full": True})

    out = anyio.run(allowed)
    wb.close()
    assert out["n"] == 2 and all(r["output"] == r["output"].upper() and r["status"] == "completed" for r in out["runs"])
