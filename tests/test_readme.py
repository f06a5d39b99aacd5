"""The README is tested: every command in its ```bash blocks and every YAML example runs here.

Commands run in README order on one fresh database (``./promptlooper.db`` in a scratch directory),
through the same ``main()`` as the ``promptlooper`` executable; a README edit that breaks a command
fails here. Where a command would call a model, the loopback fake server stands in for it (the
README's experiment with its model swapped for the fake's); its YAML is also validated as written.
Commands that serve (``dashboard``, ``mcp``) start as real processes and are stopped once they
answer. The few lines this test does not run say why in ``NOT_RUN_HERE``.
"""

from __future__ import annotations

import http.server
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from helpers import free_port, sweep_status, wait

import promptlooper as pl
from promptlooper.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PROMPTLOOPER = Path(sys.executable).with_name("promptlooper")  # the installed console script

# Lines of ```bash blocks that are not promptlooper commands, by first word, and why they do not run here.
NOT_RUN_HERE = {
    "scripts/install.sh": "creates .venv from the package index (the Dockerfile runs it; tests/dashboards cover the image's entrypoint)",
    ".venv/bin/python": "runs this test suite",
    "docker": "needs a Docker daemon; tests/dashboards/test_entrypoint.py runs the image's entrypoint outside Docker",
}
# promptlooper commands that run elsewhere, and where.
RUN_ELSEWHERE = {
    "quickstart": "runs the embedded model (minutes here); tests/test_packaging.py runs it from a fresh install",
    "migrate": "needs a PostgreSQL server: tests/test_migrate.py copies a store into a real one",
    "db": "needs a PostgreSQL server: tests/test_reader_role.py makes the role on a real one",
    "worker": "waits for queued sweeps on a shared database: tests/test_workers.py and tests/test_netns.py run real workers",
}
# `code spans` in the prose that name a command without being one.
PROSE_ONLY = {"promptlooper endpoints add", "promptlooper rerun", "promptlooper pause EXPERIMENT", "promptlooper prices set",
              "promptlooper resume", "promptlooper worker"}


# --------------------------------------------------------------------------- reading the README
def fenced(lang: str) -> list[str]:
    return [m.group(1) for m in re.finditer(rf"^```{lang}\n(.*?)^```", README, re.S | re.M)]


def shell_commands(block: str) -> list[list[str]]:
    """The commands of a bash block: continuations joined, comments dropped, split at ; and &&."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        for is_sep, group in itertools.groupby(words, lambda w: w in (";", "&&")):
            if not is_sep:
                out.append(list(group))
    return out


def variants(words: list[str]) -> list[list[str]]:
    """A documented command line as the commands it stands for: ``a|b`` is either, ``X | Y`` is
    either option group, ``[--opt value]`` is run with every optional part and with none."""
    if "|" in words:
        i = words.index("|")
        start = max(j for j in range(i) if words[j].startswith("--"))
        return variants(words[:i]) + variants(words[:start] + words[i + 1:])
    for i, w in enumerate(words):
        if "|" in w and not w.startswith("'"):
            return [v for alt in w.split("|") for v in variants([*words[:i], alt, *words[i + 1:]])]
    if any(w.startswith("[") for w in words):
        full = [w.strip("[]") for w in words]
        bare, skipping = [], False
        for w in words:
            skipping = skipping or w.startswith("[")
            if not skipping:
                bare.append(w)
            if w.endswith("]"):
                skipping = False
        return [full, bare]
    return [words]


def readme_commands() -> list[list[str]]:
    """Every promptlooper command of the bash blocks, in README order (argv after `promptlooper`)."""
    commands = []
    for block in fenced("bash"):
        for words in shell_commands(block):
            if Path(words[0]).name == "promptlooper":
                commands += [v[1:] for v in variants(words)]
            else:
                assert words[0] in NOT_RUN_HERE, f"README command {' '.join(words)!r}: neither promptlooper nor in NOT_RUN_HERE"
    return commands


def prose_commands() -> list[list[str]]:
    spans = {" ".join(m.group(1).split()) for m in re.finditer(r"(?<!`)`(promptlooper [^`]+)`(?!`)", README)}
    return [v[1:] for s in sorted(spans - PROSE_ONLY) for v in variants(shlex.split(s))]


def readme_experiment() -> dict[str, Any]:
    # The README's first full experiment ("An experiment"); later ones are tested where their features are.
    exp = next(yaml.safe_load(b) for b in fenced("yaml") if "stages:" in b)
    return exp  # type: ignore[no-any-return]


def on_fake(exp: dict[str, Any], base_url: str) -> dict[str, Any]:
    """The experiment with the embedded model swapped for the fake server's (the same calls, instantly)."""
    exp = json.loads(json.dumps(exp))
    for stage in exp["stages"]:
        if stage.get("model", "").startswith("local/"):
            stage["model"] = "fake/fake-small"
    exp.setdefault("endpoints", {})["fake"] = {"base_url": base_url}
    return exp


# --------------------------------------------------------------------------- helpers
@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory like a user's: ./promptlooper.db is the database."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROMPTLOOPER_DB", raising=False)
    return tmp_path


class _Sink(http.server.BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        self.received.append(self.rfile.read(int(self.headers.get("content-length", 0))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook_sink() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/pl"
    srv.shutdown()


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str], expect: int = 0) -> str:
    try:
        code = main(argv)
    except SystemExit as exc:  # --version, --help: argparse exits after printing
        code = exc.code
    out, err = capsys.readouterr()
    assert code == expect, f"`promptlooper {shlex.join(argv)}` exited {code}:\n{err}"
    assert "Traceback" not in err
    return out


def _stop(proc: subprocess.Popen[Any]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- the tests
@pytest.mark.slow  # three servers start, and two sweeps run beside the commands
def test_every_readme_command_runs(scratch, server, webhook_sink, capsys, monkeypatch):
    (scratch / "exp.yaml").write_text(yaml.safe_dump(on_fake(readme_experiment(), server.base_url)))
    monkeypatch.setenv("HOOK_AUTH", "Bearer hook-secret")
    ran: list[str] = []
    background: threading.Thread | None = None  # a sweep running beside the commands, to steer
    errors: list[BaseException] = []
    db = str(scratch / "promptlooper.db")

    def substitute(argv: list[str]) -> list[str]:
        """Stand-ins for what only exists once things ran: run and configuration ids, loopback URLs."""
        wb = pl.Workbench(db)
        try:
            out = []
            for w in argv:
                if w in ("RUN_ID", "RUN"):
                    w = wb.runs("quickstart/capitals")[0]["id"]
                elif re.fullmatch(r"[0-9a-f]{8}", w) and argv[0] in ("approve", "reject"):
                    rank = 0 if argv[0] == "approve" else 1
                    w = str(wb.leaderboard("quickstart/capitals").iloc[rank]["config_id"])
                elif w == "http://127.0.0.1:11434/v1":  # ollama's default address: the fake server stands in
                    w = server.base_url
                elif w.startswith("https://hooks.example/"):
                    w = webhook_sink
                out.append(w)
            return out
        finally:
            wb.close()

    def sweep_in_background(**over: Any) -> threading.Thread:
        """A sweep of quickstart/capitals on its own Workbench and event loop (as in a notebook kernel),
        on a slowed server: the README's commands steer it through the store."""
        server.latency = 0.3
        slow = on_fake(readme_experiment(), server.base_url)
        slow["space"]["answer.temperature"] = [round(0.025 * i, 3) for i in range(40)]
        exp = pl.Experiment.model_validate({**slow, **over})

        def sweep() -> None:
            wb = pl.Workbench(db)
            try:
                wb.run(exp)
            except BaseException as exc:  # noqa: BLE001 - reported by finished()
                errors.append(exc)
            finally:
                wb.close()

        thread = threading.Thread(target=sweep, daemon=True)
        thread.start()
        return thread

    def finished(thread: threading.Thread) -> None:
        thread.join(timeout=60)
        assert not thread.is_alive(), "the steered sweep did not end"
        assert not errors, errors
        server.latency = 0.0

    for argv in [*readme_commands(), *prose_commands()]:
        command = argv[0]
        if command in RUN_ELSEWHERE:
            build_parser().parse_args(argv)  # still a valid command line (a bad one exits 2 here)
            continue
        if command == "pause":  # "pauses a sweep running in a notebook kernel"
            background = sweep_in_background()
            wait(lambda: sweep_status(db) == "running", timeout=60)
        if command == "budget":  # "raise a budget, then resume": a sweep paused on its budget
            background = sweep_in_background(budget={"max_tokens": 1})
            wait(lambda: sweep_status(db) == "paused", timeout=60)
        if command in ("dashboard", "mcp"):
            if any(r.startswith(shlex.join(argv) + " ") for r in ran):
                continue  # `[--host …] [--port …]` left out: the same server, already started with them
            with capsys.disabled():  # the stdio client hands its child sys.stderr, which needs a file descriptor
                serve_and_stop(argv, scratch)
            ran.append(shlex.join(argv))
            continue
        if argv[1:2] == ["delete"]:
            # Deleting is run on a copy made for it, so that the README's later commands still find
            # quickstart/capitals; the copy must then be gone.
            target = "quickstart/capitals" if argv[0] == "experiments" else "quickstart"
            copy = {**yaml.safe_load((scratch / "exp.yaml").read_text()), "project": "throwaway", "name": "copy"}
            (scratch / "copy.yaml").write_text(yaml.safe_dump(copy))
            run_cli(["run", "copy.yaml", "--quiet"], capsys)
            argv = [("throwaway/copy" if argv[0] == "experiments" else "throwaway") if w == target else w for w in argv]
            run_cli(argv, capsys)
            assert "throwaway/copy" not in run_cli(["experiments", "--all"], capsys)
            ran.append(shlex.join(argv))
            continue
        # The fake model does not reach the README's --fail-under 0.8: the command must say so and exit 1.
        fails_under = "--fail-under" in argv
        out = run_cli(substitute(argv), capsys, expect=1 if fails_under else 0)
        if fails_under:
            assert "--junit" not in argv or (scratch / argv[argv.index("--junit") + 1]).read_text().startswith("<?xml")
        ran.append(shlex.join(argv))
        if command == "pause":
            wait(lambda: sweep_status(db) == "paused", timeout=30)
        if command == "stop":
            assert background is not None
            finished(background)
        if command == "budget":
            assert background is not None
            run_cli(["stop", "quickstart/capitals"], capsys)
            finished(background)
        if command == "leaderboard" and "--json" in argv:
            assert json.loads(out)[0]["n"] == 2
        if command == "status":
            assert json.loads(out)["experiment"] == "quickstart/capitals"

    # What the README walks through happened.
    wb = pl.Workbench(db)
    try:
        events = {e["type"] for e in wb.events("quickstart/capitals")}
        assert {"experiment.paused", "experiment.resumed", "experiment.stopped", "experiment.redirected",
                "configuration.approved", "configuration.rejected", "human_needed"} <= events, events
        assert {r["name"] for r in wb.experiments("quickstart", include_archived=True)} == {"capitals", "capitals-fork1"}
        assert {r["name"] for r in wb.experiments("quickstart")} == {"capitals-fork1"}  # `experiments archive` hid it
        assert {e["name"] for e in wb.endpoints()} >= {"local", "ollama", "openai"}
    finally:
        wb.close()
    for path in scratch.glob("promptlooper.db*"):  # the webhook header's value is read from $HOOK_AUTH when sent
        assert b"hook-secret" not in path.read_bytes(), path
    for needed in ("validate exp.yaml", "run exp.yaml", "rescore quickstart/capitals", "dashboard --db promptlooper.db", "mcp"):
        assert needed in ran, f"{needed!r} is no longer in the README, or no longer ran"
    assert len(ran) >= 40


def serve_and_stop(argv: list[str], cwd: Path) -> None:
    """A serving command, started as the executable and stopped once it answers: the dashboard with an
    HTTP 200 on its page, the MCP server with an MCP initialize (over stdio, or HTTP with the key)."""
    port = str(free_port())
    if argv[0] == "dashboard":
        proc = subprocess.Popen([str(PROMPTLOOPER), *argv, "--port", port, "--no-preheat"], cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        said: list[str] = []  # what it prints: a shared address prints its token URL once
        threading.Thread(target=lambda: said.extend(proc.stderr or []), daemon=True).start()
        try:
            def page() -> bool:
                assert proc.poll() is None, "".join(said)
                token = next((m.group(1) for line in said for m in [re.search(r"\?token=(\S+)", line)] if m), None)
                try:
                    plain = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code
                    if token is None:
                        return plain == 200 and ("--host" not in argv or "--guest" in argv)
                    assert plain != 200, "a shared dashboard answered without its token"
                    return httpx.get(f"http://127.0.0.1:{port}/?token={token}", timeout=5).status_code == 200
                except httpx.HTTPError:
                    return False

            wait(page, timeout=120, every=0.5)
        finally:
            _stop(proc)
        return
    assert argv[0] == "mcp"
    if "http" not in argv:
        _mcp_stdio(argv, cwd)
        return
    key = "readme-" + os.urandom(8).hex()
    argv = [port if w == "8401" else w for w in argv]
    if "--port" not in argv:
        argv += ["--port", port]  # never the default 8401 another process may hold
    proc = subprocess.Popen([str(PROMPTLOOPER), *argv], cwd=cwd, env={**os.environ, "PROMPTLOOPER_MCP_KEY": key},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        [entry] = [e for e in _mcp_config()["mcpServers"].values() if e.get("type") == "http"]
        url = entry["url"].replace(":8401/", f":{port}/")
        headers = {k: v.replace("${PROMPTLOOPER_MCP_KEY}", key) for k, v in entry["headers"].items()}

        def up() -> bool:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                return httpx.get(url, headers=headers, timeout=2).status_code != 401
            except httpx.HTTPError:
                return False

        wait(up, timeout=60, every=0.2)

        async def go() -> Any:
            import httpx2
            from mcp import Client
            from mcp.client.streamable_http import streamable_http_client

            async with httpx2.AsyncClient(headers=headers, timeout=30) as http, \
                    Client(streamable_http_client(url, http_client=http)) as c:
                return c.server_info, (await c.call_tool("list_experiments", {})).structured_content

        info, listed = anyio.run(go)
        assert info.version == pl.__version__
        assert "quickstart/capitals" in json.dumps(listed)
    finally:
        _stop(proc)


def _mcp_config() -> dict[str, Any]:
    [block] = [b for b in fenced("json") if "mcpServers" in b]
    return json.loads(block)  # type: ignore[no-any-return]


def _mcp_stdio(argv: list[str], cwd: Path) -> None:
    """`promptlooper mcp`, launched the way the README's client configuration launches it."""
    from mcp import Client, StdioServerParameters

    [entry] = [e for e in _mcp_config()["mcpServers"].values() if "command" in e]
    assert Path(entry["command"]).name == "promptlooper" and entry["args"][-len(argv):] == argv
    args = [a.replace("/path/to/", f"{cwd}/") for a in entry["args"]]
    params = StdioServerParameters(command=str(PROMPTLOOPER), args=args, env=dict(os.environ), cwd=str(cwd))

    async def go() -> Any:
        async with Client(params) as c:
            return c.server_info, (await c.call_tool("list_experiments", {})).structured_content

    info, listed = anyio.run(go)
    assert info.version == pl.__version__
    assert "quickstart/capitals" in json.dumps(listed)


def test_the_readme_experiment_validates_as_written(scratch, capsys):
    (scratch / "exp.yaml").write_text(fenced("yaml")[0])
    out = run_cli(["validate", "exp.yaml"], capsys)
    assert "quickstart/capitals is valid: 4 configuration(s)" in out
    assert not (scratch / "promptlooper.db").exists()


def test_the_guided_example_validates_and_runs(scratch, server, capsys):
    [fragment] = [yaml.safe_load(b) for b in fenced("yaml") if "guided:" in b]
    exp = {**readme_experiment(), **fragment}
    (scratch / "guided.yaml").write_text(yaml.safe_dump(exp))
    run_cli(["validate", "guided.yaml"], capsys)
    (scratch / "guided.yaml").write_text(yaml.safe_dump(on_fake(exp, server.base_url)))
    out = run_cli(["run", "guided.yaml", "--quiet"], capsys)
    assert "search stopped:" in out


def test_the_chat_tools_linked_groups_example_runs(scratch, server, capsys, monkeypatch):
    """The README's chat / tools / linked / endpoint-group fragment, as written, on samples that
    have the fields it reads: every member endpoint is the fake server (the README's addresses are
    examples), so the whole fragment runs: the group, the linked axis, the tool call and its scorer."""
    [fragment] = [yaml.safe_load(b) for b in fenced("yaml") if "linked:" in b]
    monkeypatch.setenv("C_KEY", "sk-example")
    for name in ("a", "b", "c"):
        fragment["endpoints"][name]["base_url"] = server.base_url
    exp = {"project": "readme", "name": "chat", **fragment,
           "samples": [{"city": "Paris", "history": [{"role": "user", "content": "Hello"}]},
                       {"city": "Oslo", "history": [{"role": "user", "content": "Hi"}]}]}
    (scratch / "chat.yaml").write_text(yaml.safe_dump(exp))
    run_cli(["validate", "chat.yaml"], capsys)
    run_cli(["run", "chat.yaml", "--quiet"], capsys)
    board = pl.Workbench(str(scratch / "promptlooper.db")).leaderboard("readme/chat")
    assert len(board) == 2 and set(board["n"]) == {2}  # both bundles, both samples


def _scorer_examples() -> list[tuple[str, str]]:
    rows = re.findall(r"^\| `([a-z_]+)` \|.*\| `(\{name: .*\})` \|$", README, re.M)
    assert len(rows) >= 12, rows
    return rows


@pytest.mark.parametrize("name,example", _scorer_examples())
def test_every_scorer_example_validates(name, example, scratch, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-a-real-key")  # validation checks the key variable is set
    exp = readme_experiment()
    exp["scorers"] = [yaml.safe_load(example)]
    field = exp["scorers"][0].get("field")
    for sample in exp["samples"]:  # an example may name a field of its own data (`exact`'s label)
        sample.setdefault(field or "reference", sample["reference"])
    # The python example names a module next to the experiment (checks.py, function exact).
    (scratch / "checks.py").write_text("def exact(output, sample):\n    return float(output.strip() == sample['reference'])\n")
    wb = pl.Workbench(str(scratch / "promptlooper.db"))
    try:
        wb.add_endpoint("openai", "https://api.openai.com/v1", api_key_env="OPENAI_API_KEY")  # as the README adds it
        pl.register_function("my_check", lambda output: 1.0)
        (scratch / "example.yaml").write_text(yaml.safe_dump(exp))  # as a file: its folder is searched for modules
        problems = wb.validate(str(scratch / "example.yaml"))
    finally:
        wb.close()
    assert problems == [], f"the README's {name} example: {problems}"


def test_the_command_list_is_read_from_the_readme():
    commands = readme_commands()
    assert ["export", "quickstart/capitals", "--format", "report"] in commands
    assert ["cache", "invalidate", "--experiment", "quickstart/capitals"] in commands
    assert ["leaderboard", "quickstart/capitals", "--json", "--sort", "contains", "--top", "5", "--all"] in commands
    assert ["leaderboard", "quickstart/capitals"] in commands
    assert ["mcp", "--transport", "http", "--host", "127.0.0.1", "--port", "8401"] in prose_commands()
    # Every documented command line parses (a renamed option fails here even where a run is skipped).
    parser = build_parser()
    for argv in commands + prose_commands():
        try:
            parser.parse_args(argv)
        except SystemExit as exc:  # --version prints and exits 0; a bad command line exits 2
            assert exc.code == 0, argv
