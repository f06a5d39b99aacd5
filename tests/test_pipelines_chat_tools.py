"""Chat stages (messages: templated turns, few-shot examples, conversations from a sample field) and
tool calls (tools offered, the reply's tool_calls stored, scored, re-scored and shown), end to end
on the in-process fake model (the CLI's validation on the loopback fake server, and a real llama.cpp
server)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

import promptlooper as pl
from promptlooper.errors import SpecError
from promptlooper.testing import FakeServer
from promptlooper.validation import parse_experiment, validate

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
HISTORY = [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello, ask away"}]


def _chat_exp(base_url: str, name: str = "chat", space: dict[str, Any] | None = None, **stage: Any) -> pl.Experiment:
    st = {"name": "answer", "model": "fake/fake-small", "system": "You are {{ persona }}.",
          "messages": [{"role": "user", "content": "Example: {{ example }}"},
                       {"role": "assistant", "content": "Example answer."},
                       {"from_field": "history"}],
          "user": "Q: {{ question }}", "params": {"max_tokens": 8}}
    st.update(stage)
    return pl.Experiment.model_validate({
        "project": "tests", "name": name,
        "samples": [{"question": "weather in paris", "history": HISTORY, "example": "2+2"},
                    {"question": "weather in rome", "history": HISTORY[:1], "example": "3+3"}],
        "stages": [st], "space": {"persona": ["terse", "kind"]} if space is None else space,
        "scorers": [{"name": "length", "max_words": 20}],
        "endpoints": {"fake": {"base_url": base_url}},
    })


def _sent(server: FakeServer) -> list[list[dict[str, Any]]]:
    return [b["messages"] for b in server.stats()["bodies"]]


# --------------------------------------------------------------------------- chat
def test_messages_are_rendered_per_run_in_order_with_the_sample_conversation(fake, wb):
    exp = _chat_exp(fake.base_url)
    progress = wb.run(exp)
    assert progress.completed == 4 and progress.failed == 0
    sent = _sent(fake)
    assert [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Example: 2+2"},
            {"role": "assistant", "content": "Example answer."}, *HISTORY,
            {"role": "user", "content": "Q: weather in paris"}] in sent
    # the second sample's conversation is its own (one turn), not the first's
    assert [{"role": "system", "content": "You are kind."}, {"role": "user", "content": "Example: 3+3"},
            {"role": "assistant", "content": "Example answer."}, HISTORY[0],
            {"role": "user", "content": "Q: weather in rome"}] in sent
    run = wb.runs(exp.key)[0]
    detail = wb.run_detail(run["id"])
    assert detail["stages"][0]["prompt_sent"] in sent  # stored as sent


def test_the_conversation_is_in_the_cache_key(fake, wb):
    wb.run(_chat_exp(fake.base_url))
    n = fake.stats()["completions"]
    again = wb.run(_chat_exp(fake.base_url, name="chat-again"))
    assert again.cached == 4 and fake.stats()["completions"] == n  # same messages: served from the cache
    # one assistant turn changed: every call is new (a different configuration, a different key)
    changed = _chat_exp(fake.base_url, name="chat-changed",
                        messages=[{"role": "user", "content": "Example: {{ example }}"},
                                  {"role": "assistant", "content": "Another answer."}, {"from_field": "history"}])
    progress = wb.run(changed)
    assert progress.cached == 0 and fake.stats()["completions"] == n + 4


def test_messages_only_stage_needs_no_user_template(fake, wb):
    exp = _chat_exp(fake.base_url, name="only-history", space={}, system=None, user=None, messages=[{"from_field": "history"}])
    assert wb.run(exp).completed == 2
    assert HISTORY in _sent(fake)


def test_chat_validation_names_the_field(fake, wb):
    pool = wb.pool(_chat_exp(fake.base_url))
    bad = _chat_exp(fake.base_url, messages=[{"role": "user", "content": "{{ nope }}"}, {"from_field": "transcript"}])
    problems = {p.path: p.message for p in validate(bad, pool)}
    assert "unknown template variable 'nope'" in problems["stages[0].messages[0].content"]
    assert "'transcript' is missing" in problems["stages[0].messages[1].from_field"]
    broken = pl.Experiment.model_validate({**bad.model_dump(exclude={"stages", "base_dir"}), "stages": [
        {"name": "answer", "model": "fake/fake-small", "messages": [{"from_field": "question"}]}], "space": {}})
    problems = {p.path: p.message for p in validate(broken, pool)}
    assert "expected a list of {role, content} messages, got str" in problems["stages[0].messages[0].from_field"]
    with pytest.raises(SpecError) as err:
        parse_experiment({"name": "x", "samples": [{"a": 1}], "stages": [{"name": "s", "model": "fake/m"}]})
    assert "needs user: (a template) or messages:" in str(err.value)
    with pytest.raises(SpecError) as err:
        parse_experiment({"name": "x", "samples": [{"a": 1}], "stages": [
            {"name": "s", "model": "fake/m", "messages": [{"role": "robot", "content": "hi"}]}]})
    assert "stages[0].messages[0]" in str(err.value)


def test_a_bad_conversation_is_refused_naming_the_sample(fake, wb):
    exp = pl.Experiment.model_validate({
        "project": "tests", "name": "bad-history",
        "samples": [{"history": HISTORY}, {"history": [{"role": "user"}]}],
        "stages": [{"name": "answer", "model": "fake/fake-small", "messages": [{"from_field": "history"}]}],
        "scorers": [{"name": "length", "max_words": 20}], "endpoints": {"fake": {"base_url": fake.base_url}}})
    problems = {p.path: p.message for p in validate(exp, wb.pool(exp))}
    assert "samples[1].history: message 0 has no text content" in problems["stages[0].messages[0].from_field"]
    with pytest.raises(SpecError):
        wb.run(exp)
    assert fake.stats()["completions"] == 0


# --------------------------------------------------------------------------- tools
def _tool_exp(base_url: str, name: str = "tools", scorers: list[dict[str, Any]] | None = None, **stage: Any) -> pl.Experiment:
    st = {"name": "answer", "model": "fake/fake-small", "user": "What is the {{ question }}?", "tools": [WEATHER],
          "tool_choice": "auto"}
    st.update(stage)
    return pl.Experiment.model_validate({
        "project": "tests", "name": name,
        "samples": [{"question": "weather in paris"}, {"question": "weather in rome"}],
        "stages": [st],
        "scorers": scorers or [{"name": "tool_call", "tool": "get_weather", "arguments": {"city": "Paris"}}],
        "endpoints": {"fake": {"base_url": base_url}},
    })


def test_tools_are_sent_and_tool_calls_stored_and_scored(fake, wb):
    exp = _tool_exp(fake.base_url)
    assert wb.run(exp).completed == 2
    bodies = fake.stats()["bodies"]
    assert all(b["tools"] == [WEATHER] and b["tool_choice"] == "auto" for b in bodies)
    runs = {r["sample_index"]: r for r in wb.runs(exp.key)}
    paris = wb.run_detail(runs[0]["id"])
    assert paris["stages"][0]["tool_calls"] == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    assert json.loads(paris["output"])["tool_calls"][0]["arguments"] == {"city": "Paris"}
    assert paris["score"] == 1.0
    rome = wb.run_detail(runs[1]["id"])
    assert rome["score"] == 0.5  # the right tool, other arguments
    assert rome["scores"][0]["metadata"]["reason"] == "'get_weather' called with other arguments"


def test_tools_are_in_the_cache_key_and_cached_replies_keep_their_tool_calls(fake, wb):
    wb.run(_tool_exp(fake.base_url))
    n = fake.stats()["completions"]
    again = wb.run(_tool_exp(fake.base_url, name="tools-again"))
    assert again.cached == 2 and fake.stats()["completions"] == n
    board = wb.leaderboard("tests/tools-again")
    assert float(board.iloc[0]["score"]) == 0.75  # (1 + 0.5) / 2, from the cached tool calls
    other_tool = json.loads(json.dumps(WEATHER))
    other_tool["function"]["description"] = "Weather now"
    assert wb.run(_tool_exp(fake.base_url, name="tools-changed", tools=[other_tool])).cached == 0
    assert fake.stats()["completions"] == n + 2
    assert wb.run(_tool_exp(fake.base_url, name="tools-none", tool_choice="none")).cached == 0


def test_a_text_reply_scores_zero_and_rescoring_reads_stored_tool_calls(fake, wb):
    exp = _tool_exp(fake.base_url, tool_choice="none")
    wb.run(exp)
    assert {r["score"] for r in wb.runs(exp.key)} == {0.0}
    exp2 = _tool_exp(fake.base_url, name="rescore")
    wb.run(exp2)
    summary = wb.rescore(exp2.key, [{"name": "tool_call", "tool": "get_weather", "arguments": {"city": "Rome"}, "label": "rome"}])
    assert summary["runs"] == 2 and summary["failed"] == 0
    scores = {r["sample_index"]: {s["scorer"]: s["value"] for s in wb.run_detail(r["id"])["scores"]} for r in wb.runs(exp2.key)}
    assert scores[0]["rome"] == 0.5 and scores[1]["rome"] == 1.0


def test_a_later_stage_reads_the_tool_call(fake, wb):
    exp = _tool_exp(fake.base_url, name="two-stage", scorers=[{"name": "length", "max_words": 50}])
    data = exp.model_dump(exclude={"base_dir"})
    data["stages"].append({"name": "report", "model": "fake/fake-small",
                           "user": "Tool {{ answer.tool_calls[0].name }} for {{ answer.tool_calls[0].arguments.city }}"})
    assert wb.run(pl.Experiment.model_validate(data)).completed == 2
    assert any(b["messages"][-1]["content"] == "Tool get_weather for Paris" for b in fake.stats()["bodies"])


def test_tool_validation_and_show_prints_tool_calls(fake, wb, tmp_path):
    with pytest.raises(SpecError) as err:
        parse_experiment({"name": "x", "samples": [{"a": 1}], "stages": [
            {"name": "s", "model": "fake/m", "user": "hi", "tools": [{"name": "get_weather"}]}]})
    assert "stages[0]" in str(err.value) and "type: function" in str(err.value)
    with pytest.raises(SpecError) as err:
        parse_experiment({"name": "x", "samples": [{"a": 1}], "stages": [
            {"name": "s", "model": "fake/m", "user": "hi", "tool_choice": "auto"}]})
    assert "tool_choice needs tools" in str(err.value)
    local = _tool_exp(fake.base_url, name="local-tools", model="local/smollm2-135m")
    assert "cannot call tools" in {p.path: p.message for p in validate(local, wb.pool(local))}["stages[0].tools"]
    exp = _tool_exp(fake.base_url, name="show")
    wb.run(exp)
    run_id = wb.runs(exp.key)[0]["id"]
    res = subprocess.run([sys.executable, "-m", "promptlooper.cli", "--db", wb.db_path, "show", run_id],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    shown = json.loads(res.stdout)
    assert shown["stages"][0]["tool_calls"][0]["name"] == "get_weather"


# --------------------------------------------------------------------------- a real llama.cpp server
def _llama_python() -> str | None:
    """An interpreter with llama-cpp-python's server: $PROMPTLOOPER_LLAMA_SERVER_PYTHON, or this one."""
    import os
    import shutil

    for candidate in (os.environ.get("PROMPTLOOPER_LLAMA_SERVER_PYTHON"), sys.executable):
        if candidate and shutil.which(candidate):
            probe = subprocess.run([candidate, "-c", "import llama_cpp.server.app, uvicorn"], capture_output=True, timeout=60)
            if probe.returncode == 0:
                return candidate
    return None


@pytest.fixture(scope="module")
def llama_server():
    from helpers import free_port, wait

    from promptlooper.providers.embedded import gguf_path

    python = _llama_python()
    if python is None:
        pytest.skip("llama-cpp-python[server] is not installed (set PROMPTLOOPER_LLAMA_SERVER_PYTHON to a venv's python)")
    try:
        gguf = gguf_path()
    except Exception as exc:  # noqa: BLE001 - the model file is part of the `local` extra
        pytest.skip(f"no SmolLM2 GGUF file: {exc}")
    port = free_port()
    proc = subprocess.Popen([python, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
                             "--n_ctx", "2048", "--model_alias", "smollm2", "--n_threads", "1",
                             "--chat_format", "chatml-function-calling"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}/v1"

    def up() -> bool:
        import urllib.request

        if proc.poll() is not None:
            pytest.fail(f"the llama.cpp server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as resp:  # noqa: S310 - loopback
                return resp.status == 200
        except OSError:
            return False

    try:
        wait(up, timeout=90, every=0.5)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_chat_and_a_forced_tool_call_on_a_real_llama_cpp_server(llama_server, wb):
    exp = pl.Experiment.model_validate({
        "project": "tests", "name": "llama-tools",
        "samples": [{"city": "Paris", "history": HISTORY}],
        "stages": [{"name": "answer", "model": "llama/smollm2", "system": "You call tools.",
                    "messages": [{"from_field": "history"}], "user": "What is the weather in {{ city }}?",
                    "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                    "params": {"max_tokens": 40, "temperature": 0, "seed": 1}}],
        "scorers": [{"name": "tool_call", "tool": "get_weather"}],
        "endpoints": {"llama": {"base_url": llama_server, "max_concurrency": 1, "timeout": 120}},
    })
    progress = wb.run(exp)
    assert progress.completed == 1, wb.runs(exp.key)[0]["error"]
    detail = wb.run_detail(wb.runs(exp.key)[0]["id"])
    stage = detail["stages"][0]
    assert [m["role"] for m in stage["prompt_sent"]] == ["system", "user", "assistant", "user"]
    assert stage["tool_calls"][0]["name"] == "get_weather" and isinstance(stage["tool_calls"][0]["arguments"], dict)
    assert detail["score"] == 1.0
    assert stage["tokens_in"] > 10  # the server's own usage block, history included


def test_cli_validate_and_mcp_take_chat_and_tool_stages(server, db, tmp_path):
    import anyio
    import yaml
    from mcp import Client

    from promptlooper.mcp_server import build_server

    exp = _tool_exp(server.base_url, name="cli-tools", messages=[{"role": "user", "content": "{{ question }}"}, {"from_field": "history"}])
    data = exp.model_dump(mode="json", exclude_none=True)
    data["samples"] = [{"question": "weather in paris", "history": HISTORY}]
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    cli = [sys.executable, "-m", "promptlooper.cli", "--db", db, "validate", str(path)]
    ok = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    data["stages"][0]["messages"][1] = {"from_field": "transcript"}
    path.write_text(yaml.safe_dump(data))
    bad = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "stages[0].messages[1].from_field" in bad.stdout + bad.stderr
    data["stages"][0]["messages"][1] = {"from_field": "history"}
    data["name"] = "mcp-tools"
    w = pl.Workbench(db)

    async def go() -> tuple[Any, Any]:
        async with Client(build_server(w)) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            return tools, await c.call_tool("create_experiment", {"experiment": data})

    try:
        tools, created = anyio.run(go)
    finally:
        w.close()
    schema = json.dumps(tools["create_experiment"].input_schema)
    assert "from_field" in schema and "tool_choice" in schema
    assert not created.is_error, created.content[0].text
