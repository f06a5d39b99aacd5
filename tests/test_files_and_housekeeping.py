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


def _start(*args: str, cwd: Path, db: str, env: dict[str, str] | None = None, pythonpath: list[Path] = ()) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTLOOPER_ALLOW")}
    full["PYTHONPATH"] = os.pathsep.join([str(ROOT), *map(str, pythonpath)])
    full.update(env or {})
    return subprocess.Popen([*CLI, "--db", db, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full)


def _finish(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def cli(*args: str, **options: Any) -> subprocess.CompletedProcess[str]:
    """The ``promptlooper`` command in a subprocess, running the package these tests import."""
    return _finish(_start(*args, **options))


def cli_together(*calls: tuple[tuple[str, ...], dict[str, Any]]) -> list[subprocess.CompletedProcess[str]]:
    """Independent commands at once (each CLI start-up costs seconds on a loaded machine)."""
    return [_finish(p) for p in [_start(*args, **options) for args, options in calls]]


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

    res = cli("run", str(folder / "fn.yaml"), "--quiet", cwd=elsewhere, db=db)
    assert res.returncode == 0, res.stderr
    for again in (("rerun", "files/fn-from-file", "--quiet"), ("rescore", "files/fn-from-file")):  # new processes, from the store
        res = cli(*again, cwd=elsewhere, db=db)
        assert res.returncode == 0, res.stderr
    wb = pl.Workbench(db)
    board = wb.leaderboard("files/fn-from-file")
    assert list(board["loud"]) == [1.0, 1.0] and list(board["n"]) == [2, 2]
    assert server.stats()["completions"] == 4  # the rerun's calls all came from the cache

    # A wrong name says what was tried and what to write.
    data["scorers"] = [{"name": "python", "function": "loudness:is_quiet"}]
    data["stages"][1]["function"] = "nosuchmodule:shout"
    problems = {p.path: f"{p.message} {p.hint}" for p in wb.validate(write(folder / "bad.yaml", data))}
    wb.close()
    assert "has no 'is_quiet'" in problems["scorers[0]"] and "is_loud" in problems["scorers[0]"]
    assert "cannot import 'nosuchmodule'" in problems["stages[1].function"]


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


def test_plugins_registered_through_entry_points(server, tmp_path, wb, monkeypatch):
    site = tmp_path / "site"
    _install_plugin(site)
    data = experiment_yaml(server.base_url, "plugins")
    data["stages"].append({"name": "loud", "function": "shout"})
    data["scorers"] = [{"name": "bang", "max_chars": 400}]
    exp = write(tmp_path / "plugins.yaml", data)
    # Without the package installed, the file names what is missing.
    problems = "\n".join(str(p) for p in wb.validate(exp))
    assert "no function 'shout'" in problems and "unknown scorer 'bang'" in problems
    db = str(tmp_path / "pl.db")
    res = cli("run", str(exp), "--quiet", cwd=tmp_path, db=db, pythonpath=[site])
    assert res.returncode == 0, res.stderr
    assert list(pl.Workbench(db).leaderboard("files/plugins")["bang"]) == [1.0, 1.0]
    monkeypatch.syspath_prepend(str(site))  # installed here too: an MCP server may use plugins (the operator installed them)

    async def over_mcp() -> dict[str, Any]:
        async with Client(build_server(wb)) as c:
            await call(c, "create_experiment", {"experiment": {**data, "name": "plugins-mcp"}})
            return await call(c, "run_single", {"experiment": "files/plugins-mcp", "point": {"answer.temperature": 0.0}})

    assert anyio.run(over_mcp)["score"] == 1.0


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


# --------------------------------------------------------------------------- samples and prompts from files
ROWS = [{"id": 1, "question": "capital of France", "reference": "paris", "tags": ["eu"]},
        {"id": 2, "question": "capital of Japan", "reference": "tokyo", "tags": ["asia"]},
        {"id": 3, "question": "capital of Italy", "reference": "rome", "tags": []}]


def _save_to_disk(folder: Path, rows: list[dict[str, Any]], split: str = "test") -> Path:
    """The files ``datasets.Dataset.save_to_disk`` writes: Arrow IPC streams listed in state.json."""
    import pyarrow as pa

    folder.mkdir(parents=True)
    table = pa.Table.from_pylist(rows)
    names = ["data-00000-of-00002.arrow", "data-00001-of-00002.arrow"]
    for name, part in zip(names, (table.slice(0, 2), table.slice(2)), strict=True):
        with pa.OSFile(str(folder / name), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(part)
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": n} for n in names], "_fingerprint": "f00d",
                                                   "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
                                                   "_output_all_columns": False, "_split": split}))
    (folder / "dataset_info.json").write_text(json.dumps({"features": {k: {"dtype": "string", "_type": "Value"} for k in rows[0]}}))
    return folder


def test_samples_from_json_yaml_parquet_and_a_saved_dataset(server, tmp_path, wb):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "s.json").write_text(json.dumps(ROWS))
    (tmp_path / "s.txt").write_text("capital of France")
    write(tmp_path / "s.yaml", {"samples": ROWS})
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "s.parquet")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "dataset_dict.json").write_text(json.dumps({"splits": ["test"]}))
    _save_to_disk(tmp_path / "hf" / "test", ROWS)
    for source in ("s.json", "s.yaml", "s.parquet", "hf/test"):
        data = experiment_yaml(server.base_url, "formats", samples=source, space={"answer.temperature": [0.0]})
        exp = pl.load_experiment(write(tmp_path / "formats.yaml", data))
        assert wb.validate(exp) == [], source
        wb.run(exp)
        runs = wb.runs(exp.key)
        assert sorted(r["sample_index"] for r in runs) == [0, 1, 2] and all(r["status"] in ("completed", "cached") for r in runs), source
    assert server.stats()["completions"] == 3  # the same samples (ids and content) whatever the file: all cached after the first

    # Problems name the file and say what to do.
    pq.write_table(pa.Table.from_pylist([ROWS[0], ROWS[0]]), tmp_path / "dup.parquet")
    (tmp_path / "bad.json").write_text(json.dumps([ROWS[0], "not an object"]))
    db = str(tmp_path / "cli.db")
    for source, expected in (("dup.parquet", "samples[1].id"), ("bad.json", "bad.json) [1]"), ("hf", "name the split's folder, e.g. samples: hf/test"),
                             ("s.txt", ".parquet or a saved dataset folder")):
        write(tmp_path / "bad.yaml", experiment_yaml(server.base_url, "bad", samples=source))
        problems = wb.validate(tmp_path / "bad.yaml")
        assert any(expected in f"{p.path}: {p.message} {p.hint}" for p in problems), (source, problems)
    write(tmp_path / "hf.yaml", experiment_yaml(server.base_url, "hf", samples="hf/test"))
    res = cli("run", str(tmp_path / "hf.yaml"), "--quiet", cwd=tmp_path / "hf", db=db)
    assert res.returncode == 0, res.stderr
    assert pl.Workbench(db).leaderboard("files/hf")["n"].tolist() == [3, 3]


def test_prompt_templates_from_files_and_their_content_in_the_cache_key(server, tmp_path):
    folder = tmp_path / "exp"
    write(folder / "prompts" / "answer.j2", "Answer briefly.\nQ: {{ question }}\n")
    write(folder / "prompts" / "terse.j2", "You are terse.")
    data = experiment_yaml(server.base_url, "prompt-files", space={"answer.system": [{"file": "prompts/terse.j2"}, "Be kind."]})
    data["stages"][0]["user"] = {"file": "prompts/answer.j2"}
    write(folder / "exp.yaml", data)
    db = str(tmp_path / "pl.db")
    res = cli("run", str(folder / "exp.yaml"), "--quiet", cwd=tmp_path, db=db)
    assert res.returncode == 0, res.stderr
    assert server.stats()["completions"] == 4
    sent = [m for body in server.stats()["bodies"] for m in body["messages"]]
    assert any(m["content"] == "Answer briefly.\nQ: capital of France" for m in sent)
    assert any(m["content"] == "You are terse." for m in sent)

    wb = pl.Workbench(db)
    wb.run(pl.load_experiment(folder / "exp.yaml"))
    assert server.stats()["completions"] == 4  # unchanged files: every call from the cache
    write(folder / "prompts" / "answer.j2", "Answer in one word.\nQ: {{ question }}\n")
    wb.run(pl.load_experiment(folder / "exp.yaml"))
    assert server.stats()["completions"] == 8  # the file's content is in the key: every call made again
    assert wb.leaderboard("files/prompt-files")["n"].tolist() == [2, 2]  # the edited template's runs only
    assert len(wb.definitions("files/prompt-files")) == 2

    data["stages"][0]["user"] = {"file": "prompts/missing.j2"}
    problems = [str(p) for p in wb.validate(write(folder / "bad.yaml", data))]
    wb.close()
    assert any("stages[0].user: template file" in p and "missing.j2" in p for p in problems), problems


# --------------------------------------------------------------------------- keys from a .env file
SECRET = "sk-dotenv-0123456789-secret"


def _store_bytes(db: str) -> bytes:
    return b"".join(p.read_bytes() for p in Path(db).parent.glob(Path(db).name + "*"))


def test_keys_from_a_dotenv_file_are_used_and_never_stored(tmp_path):
    from promptlooper.testing import FakeServer

    with FakeServer(api_key=SECRET) as keyed:
        folder = tmp_path / "exp"
        data = experiment_yaml(keyed.base_url, "dotenv")
        data["endpoints"]["fake"]["api_key_env"] = "PL_TEST_DOTENV_KEY"
        write(folder / "exp.yaml", data)
        write(folder / ".env", f"# the key, kept out of the shell\nPL_TEST_DOTENV_KEY={SECRET}\nPROMPTLOOPER_ALLOW_IMPORTS=*\n")
        elsewhere = tmp_path / "work"
        elsewhere.mkdir()
        db = str(tmp_path / "pl.db")
        env = {"PL_TEST_DOTENV_KEY": ""}  # unset in the shell: the file next to the experiment gives it
        res = cli("run", str(folder / "exp.yaml"), "--quiet", cwd=elsewhere, db=db, env=env)
        assert res.returncode == 0, res.stderr
        assert keyed.stats()["completions"] == 4 and SECRET not in res.stdout + res.stderr

        # In the working folder instead, for an experiment file elsewhere; with no .env anywhere, said so.
        (folder / ".env").rename(elsewhere / ".env")
        write(folder / "exp.yaml", {**data, "name": "dotenv-cwd", "space": {"answer.temperature": [0.9]}})
        ran, checked = cli_together((("run", str(folder / "exp.yaml"), "--quiet"), {"cwd": elsewhere, "db": db, "env": env}),
                                    (("validate", str(folder / "exp.yaml")), {"cwd": tmp_path, "db": str(tmp_path / "v.db"), "env": env}))
        assert ran.returncode == 0, ran.stderr
        assert keyed.stats()["completions"] == 6
        assert checked.returncode == 2 and "$PL_TEST_DOTENV_KEY, which is not set" in checked.stderr
    assert SECRET.encode() not in _store_bytes(db)
    assert b"PL_TEST_DOTENV_KEY" in _store_bytes(db)  # the name is stored, the value never


# --------------------------------------------------------------------------- housekeeping
def _sweep_running(db: str, name: str) -> bool:
    from helpers import db_value

    return db_value(db, "SELECT s.status FROM sweeps s JOIN experiments e ON e.id = s.experiment_id WHERE e.name = ?",
                    name) == "running"


@pytest.mark.both_backends  # deletes, archives and notes in a SQLite file and in PostgreSQL
def test_delete_archive_notes_and_prices_refused_while_a_sweep_runs(tmp_path, db):
    from helpers import db_value, wait

    from promptlooper.testing import FakeServer

    with FakeServer(latency=0.4) as slow:
        wb = pl.Workbench(db)
        for name in ("keep", "old", "gone"):
            wb.run(pl.Experiment.model_validate(experiment_yaml(slow.base_url, name, concurrency=4)))
        busy = experiment_yaml(slow.base_url, "busy", concurrency=1, space={"answer.temperature": [i / 100 for i in range(40)]})
        proc = subprocess.Popen([*CLI, "--db", db, "run", str(write(tmp_path / "busy.yaml", busy)), "--quiet", "--yes"],
                                env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait(lambda: _sweep_running(db, "busy") or proc.poll() is not None, timeout=60)
            assert proc.poll() is None, proc.communicate()[1]
            # Refused everywhere while another process sweeps it: the CLI, Python and MCP.
            res = cli("experiments", "delete", "files/busy", "--yes", cwd=tmp_path, db=db)
            assert res.returncode == 1 and "running sweep" in res.stderr and "promptlooper stop files/busy" in res.stderr
            with pytest.raises(pl.SweepConflictError):
                wb.archive_experiment("files/busy")
            with pytest.raises(pl.SweepConflictError):
                wb.delete_project("files")

            async def refused() -> str:
                async with Client(build_server(wb)) as c:
                    return await fails(c, "delete_experiment", {"experiment": "files/busy", "confirm": True})

            assert "stop it first" in anyio.run(refused)
            wb.stop("files/busy")
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert wb.delete_experiment("files/busy")["deleted"] == "files/busy"  # stopped: now it goes

    # Archive hides, --all shows; notes are listed with the project's experiments; prices list.
    wb.archive_experiment("files/old")
    wb.set_price("fake-small", 0.5, 1.5)
    noted, priced, unsure = cli_together(
        (("notes", "add", "files", "temperature 0 wins on capitals", "--by", "ana"), {"cwd": tmp_path, "db": db}),
        (("prices", "list", "--json"), {"cwd": tmp_path, "db": db}),
        (("experiments", "delete", "files/keep"), {"cwd": tmp_path, "db": db}))  # not at a terminal: needs --yes
    assert noted.returncode == 0, noted.stderr
    assert unsure.returncode == 2 and "add --yes" in unsure.stderr
    prices = {r["model"]: r for r in json.loads(priced.stdout)}
    assert prices["fake-small"] == {"model": "fake-small", "input": 0.5, "output": 1.5, "source": "user"}
    assert prices["gpt-4o-mini*"]["source"] == "default"
    res = cli("experiments", "--project", "files", cwd=tmp_path, db=db)
    assert res.returncode == 0 and "keep" in res.stdout and "old" not in res.stdout.split("notes on")[0]
    assert "temperature 0 wins on capitals  (ana)" in res.stdout
    assert [r["name"] for r in wb.experiments("files", include_archived=True)] == ["keep", "old", "gone"]
    assert wb.status("files/keep")["notes"][0].endswith("temperature 0 wins on capitals")

    async def over_mcp() -> dict[str, Any]:
        async with Client(build_server(wb)) as c:
            assert "confirm=true" in await fails(c, "delete_experiment", {"experiment": "files/gone"})
            await call(c, "delete_experiment", {"experiment": "files/gone", "confirm": True})
            await call(c, "archive_experiment", {"experiment": "files/old", "archived": False})
            await call(c, "add_project_note", {"project": "files", "text": "the agent agrees"})
            listed = await call(c, "list_experiments", {"project": "files"})
            await call(c, "archive_project", {"project": "files"})
            hidden = await call(c, "list_experiments", {})
            await call(c, "create_project", {"name": "scratch"})
            await call(c, "delete_project", {"project": "scratch", "confirm": True})
            assert "no project 'scratch'" in await fails(c, "archive_project", {"project": "scratch"})
            return {"listed": listed, "hidden": hidden}

    out = anyio.run(over_mcp)
    assert [e["experiment"] for e in out["listed"]["experiments"]] == ["files/keep", "files/old"]
    assert [n["text"] for n in out["listed"]["notes"]] == ["temperature 0 wins on capitals", "the agent agrees"]
    assert out["hidden"]["experiments"] == []
    with pytest.raises(pl.NotFoundError):
        wb.experiment("files/gone")
    assert wb.runs("files/keep")  # the others' runs are untouched
    wb.archive_project("files", archived=False)
    assert wb.delete_project("files") == {"deleted": "files", "experiments": 2, "runs": 8, "notes": 2}
    assert db_value(db, "SELECT COUNT(*) FROM runs") == 0
    assert db_value(db, "SELECT COUNT(*) FROM response_cache") > 0  # the cache is shared by content
    wb.close()


# --------------------------------------------------------------------------- the README's example
def test_the_readmes_pipelines_from_files_example_runs(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from promptlooper.testing import FakeServer

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Pipelines from files", 1)[1]
    example = yaml.safe_load(section.split("```yaml", 1)[1].split("```", 1)[0])
    with FakeServer(api_key=SECRET) as api:
        example["endpoints"]["myapi"]["base_url"] = api.base_url
        write(tmp_path / "exp.yaml", example)
        (tmp_path / "data").mkdir()
        pq.write_table(pa.Table.from_pylist(ROWS[:2]), tmp_path / "data" / "questions.parquet")
        write(tmp_path / "prompts" / "system.j2", "You are terse.\n")
        write(tmp_path / "prompts" / "answer.j2", "Q: {{ question }}\n")
        write(tmp_path / "textops.py", "def tidy(answer):\n    return answer.strip().lower()\n")
        write(tmp_path / "checks.py", "def mentions_reference(output, sample):\n    return sample['reference'] in output or 0.5\n")
        write(tmp_path / ".env", f"MYAPI_KEY={SECRET}\n")
        db = str(tmp_path / "pl.db")
        res = cli("run", str(tmp_path / "exp.yaml"), "--quiet", cwd=tmp_path, db=db, env={"MYAPI_KEY": ""})
        assert res.returncode == 0, res.stderr
        assert api.stats()["completions"] == 4
    board = pl.Workbench(db).leaderboard("files/readme-example")
    assert board["n"].tolist() == [2, 2] and board["score"].tolist() == [0.5, 0.5]
    assert SECRET.encode() not in _store_bytes(db)


def test_mcp_template_and_sample_files_come_only_from_the_data_folder(server, tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    write(data_dir / "answer.j2", "From the data folder: {{ question }}")
    (data_dir / "qa.json").write_text(json.dumps(ROWS[:2]))
    write(tmp_path / "secret.j2", "the server's own file")
    data = experiment_yaml(server.base_url, "mcp-files", samples="qa.json")
    wb = pl.Workbench(str(tmp_path / "pl.db"))

    async def create(user: Any) -> Any:
        async with Client(build_server(wb)) as c:
            exp = {**data, "stages": [{**data["stages"][0], "user": user}]}
            res = await c.call_tool("create_experiment", {"experiment": exp})
            if res.is_error:
                return res.content[0].text
            return await call(c, "run_single", {"experiment": "files/mcp-files", "point": {"answer.temperature": 0.0}, "full": True})

    monkeypatch.delenv("PROMPTLOOPER_MCP_DATA_DIR", raising=False)
    text = anyio.run(create, {"file": str(tmp_path / "secret.j2")})
    assert "stages[0].user" in text and "cannot read files of the server" in text
    monkeypatch.setenv("PROMPTLOOPER_MCP_DATA_DIR", str(data_dir))
    assert "outside the data folder" in anyio.run(create, {"file": "../secret.j2"})
    out = anyio.run(create, {"file": "answer.j2"})
    wb.close()
    assert out["n"] == 2
    sent = [m["content"] for body in server.stats()["bodies"] for m in body["messages"]]
    assert "From the data folder: capital of France" in sent and not any("server's own" in s for s in sent)
