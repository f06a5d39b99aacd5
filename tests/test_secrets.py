"""No secret survives an echo; params carry no keys; an MCP client reads no file of the server."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from recorder import Recorder

import promptlooper as pl
from promptlooper.errors import SpecError
from promptlooper.mcp_server import build_server
from promptlooper.scorers import ScorerError, build
from promptlooper.validation import parse_experiment
from promptlooper.webhooks import Courier

KEY = "sk-echoed-4c1f7e2a99"
HOOK = "hook-echoed-8d2b61f0"
ROOT = Path(__file__).resolve().parents[1]


def _exp(name: str, model: str, scorers: list[dict[str, Any]], **over: Any) -> pl.Experiment:
    return pl.Experiment.model_validate({
        "project": "echo", "name": name,
        "samples": [{"question": "2+2", "reference": "4"}, {"question": "3+1", "reference": "4"}],
        "stages": [{"name": "answer", "model": model, "user": "Q: {{ question }}", "params": {"max_tokens": 8}}],
        "scorers": scorers, **over,
    })


async def _mcp_texts(wb: pl.Workbench, calls: list[tuple[str, dict[str, Any]]]) -> str:
    out = []
    async with Client(build_server(wb)) as client:
        for tool, args in calls:
            res = await client.call_tool(tool, args)
            out.append(" ".join(getattr(c, "text", "") for c in res.content) + json.dumps(res.structured_content or {}))
    return "\n".join(out)


# --------------------------------------------------------------------------- 2. no secret survives an echo
def test_a_key_echoed_by_the_endpoint_is_redacted_everywhere(db, monkeypatch):
    monkeypatch.setenv("PROXY_KEY", KEY)
    monkeypatch.setenv("HOOK_TOKEN", HOOK)
    with Recorder(echo=True) as proxy, Recorder() as good, Recorder() as receiver:
        wb = pl.Workbench(db)
        wb.add_endpoint("proxy", proxy.base_url, api_key_env="PROXY_KEY", max_retries=0)
        wb.add_endpoint("good", good.base_url)
        wb.add_webhook("*", receiver.base_url + "/events")
        # Runs fail with the echo in their error; scorers' calls (judge, embeddings, webhook) get echoes too.
        wb.run(_exp("stage", "proxy/m1", [{"name": "contains", "field": "reference"}]))
        wb.run(_exp("scorers", "good/m1", [
            {"name": "judge", "model": "proxy/m1"},
            {"name": "embedding", "endpoint": "proxy", "model": "e"},
            {"name": "webhook", "url": proxy.base_url + "/score", "headers_env": {"X-Hook": "HOOK_TOKEN"}, "retries": 0},
        ]))
        runs = wb.runs("echo/stage")
        scored = wb.runs("echo/scorers")
        run_id = runs[0]["id"]
        detail = wb.run_detail(scored[0]["id"])
        texts = anyio.run(_mcp_texts, wb, [("get_run_detail", {"run_id": run_id, "full": True}),
                                          ("get_run_detail", {"run_id": scored[0]["id"], "full": True}),
                                          ("get_events", {"experiment": "echo/stage", "limit": 1000}),
                                          ("run_single", {"experiment": "echo/stage", "point": {}, "full": True}),
                                          ("list_models", {})])
        wb.close()
        assert proxy.found([KEY]) and proxy.found([HOOK]), "the keys were sent where they were granted, and echoed"
        hooks_got = json.dumps(receiver.requests)

    assert all(r["status"] == "failed" for r in runs)
    assert "[redacted $PROXY_KEY]" in runs[0]["error"] and KEY not in runs[0]["error"]
    errors = json.dumps([s["metadata"] for s in detail["scores"]])
    assert "[redacted $PROXY_KEY]" in errors and "[redacted $HOOK_TOKEN]" in errors
    assert "run.failed" in hooks_got
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = "".join(subprocess.run([sys.executable, "-m", "promptlooper.cli", "--db", db, *args], capture_output=True, text=True,
                                 env=env).stdout for args in (["show", run_id], ["events", "--json"]))
    assert "redacted $PROXY_KEY" in cli
    with sqlite3.connect(db) as cx:
        dump = "\n".join(cx.iterdump())
    for where, text in {"database": dump, "webhook POSTs": hooks_got, "MCP replies": texts, "CLI show/events": cli}.items():
        assert KEY not in text and HOOK not in text, where


def test_free_text_events_are_redacted_when_stored(db, monkeypatch):
    monkeypatch.setenv("PROXY_KEY", KEY)
    wb = pl.Workbench(db)
    wb.add_endpoint("proxy", "http://127.0.0.1:9/v1", api_key_env="PROXY_KEY")
    exp = _exp("human", "proxy/m1", [{"name": "contains", "field": "reference"}])
    wb.register(exp)
    wb.request_human(exp.key, f"the proxy said: bad key {KEY}", {"raw": f"Bearer {KEY}"})
    [event] = wb.events(exp.key, ["human_needed"])
    wb.close()
    assert KEY not in json.dumps(event) and "[redacted $PROXY_KEY]" in event["payload"]["reason"]


def test_webhook_bodies_are_redacted_when_sent(db, monkeypatch):
    """An event written with a key in it (by an older version, or by hand) is redacted when sent."""
    monkeypatch.setenv("PROXY_KEY", KEY)
    with Recorder() as receiver:
        wb = pl.Workbench(db)
        wb.add_endpoint("proxy", "http://127.0.0.1:9/v1", api_key_env="PROXY_KEY")
        wb.add_webhook("*", receiver.base_url + "/events")
        exp_id = wb.register(_exp("hooked", "proxy/m1", []))

        with sqlite3.connect(db) as cx:  # written around the store, so not redacted on the way in
            cx.execute("INSERT INTO events (ts, experiment_id, type, payload) VALUES ('t', ?, 'run.failed', ?)",
                       (exp_id, json.dumps({"error": f"HTTP 401: bad key {KEY}"})))

        async def deliver() -> None:
            courier = Courier(wb.store)
            await courier.deliver_until(time.monotonic() + 10)
            await courier.aclose()

        asyncio.run(deliver())
        wb.close()
        got = json.dumps(receiver.requests)
    assert "run.failed" in got and "[redacted $PROXY_KEY]" in got and KEY not in got


# --------------------------------------------------------------------------- params
@pytest.mark.parametrize("key", ["model", "messages", "stream", "api_key", "apiKey", "Authorization", "extra_headers",
                                 "access_token", "client_secret"])
def test_params_cannot_override_the_call_or_carry_keys(key):
    data = _exp("p", "local/smollm2-135m", []).model_dump(mode="json", exclude_none=True)
    data["stages"][0]["params"][key] = "sk-in-params-123456"
    with pytest.raises(SpecError) as err:
        parse_experiment(data)
    [problem] = err.value.problems
    assert problem.path.startswith("stages[0].params") and key in problem.message
    assert "sk-in-params" not in str(problem)


def test_ordinary_and_server_specific_params_still_pass():
    data = _exp("p", "local/smollm2-135m", []).model_dump(mode="json", exclude_none=True)
    data["stages"][0]["params"].update(max_tokens=8, top_k=40, repetition_penalty=1.1, max_completion_tokens=9, logprobs=True)
    assert parse_experiment(data).stages[0].params.as_dict()["top_k"] == 40


def test_judge_params_cannot_carry_keys():
    with pytest.raises(ScorerError, match="api_key"):
        build("judge", {"model": "fake/m", "params": {"api_key": "sk-judge-params-1"}})


def test_params_with_a_key_are_refused_over_mcp_and_nothing_is_stored(db):
    data = _exp("p", "local/smollm2-135m", []).model_dump(mode="json", exclude_none=True)
    data["stages"][0]["params"]["api_key"] = "sk-in-params-123456"
    wb = pl.Workbench(db)
    text = anyio.run(_mcp_texts, wb, [("create_experiment", {"experiment": data})])
    assert "stages[0].params" in text and "api_key" in text and "sk-in-params" not in text
    assert wb.experiments() == []
    wb.close()


# --------------------------------------------------------------------------- samples over MCP
@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "ok.jsonl").write_text('{"question": "2+2", "reference": "4"}\n{"question": "1+1", "reference": "2"}\n')
    secret = tmp_path / "private.jsonl"
    secret.write_text('{"private_field_name": "private-row-value"}\n')
    (data / "link.jsonl").symlink_to(secret)
    return {"data": data, "secret": secret}


def _samples_exp(samples: Any, name: str) -> dict[str, Any]:
    data = _exp(name, "local/smollm2-135m", [{"name": "contains", "field": "reference"}]).model_dump(mode="json", exclude_none=True)
    data["samples"] = samples
    return data


def test_mcp_reads_no_file_of_the_server(db, files, monkeypatch):
    monkeypatch.delenv("PROMPTLOOPER_MCP_DATA_DIR", raising=False)
    wb = pl.Workbench(db)
    text = anyio.run(_mcp_texts, wb, [("create_experiment", {"experiment": _samples_exp(str(files["secret"]), "abs")}),
                                      ("create_experiment", {"experiment": {**_samples_exp("private.jsonl", "rel"),
                                                                            "base_dir": str(files["secret"].parent)}})])
    assert "private_field_name" not in text and "private-row-value" not in text
    assert text.count("samples: an MCP client cannot read files of the server") == 2 and "PROMPTLOOPER_MCP_DATA_DIR" in text
    assert wb.experiments() == []
    wb.close()


def test_mcp_samples_from_the_operators_data_folder_only(db, files, monkeypatch):
    monkeypatch.setenv("PROMPTLOOPER_MCP_DATA_DIR", str(files["data"]))
    wb = pl.Workbench(db)
    text = anyio.run(_mcp_texts, wb, [
        ("create_experiment", {"experiment": _samples_exp("ok.jsonl", "inside")}),
        ("create_experiment", {"experiment": _samples_exp(str(files["data"] / "ok.jsonl"), "inside-abs")}),
        ("create_experiment", {"experiment": _samples_exp("../private.jsonl", "dotdot")}),
        ("create_experiment", {"experiment": _samples_exp(str(files["secret"]), "outside")}),
        ("create_experiment", {"experiment": _samples_exp("link.jsonl", "symlink")}),
    ])
    assert "private_field_name" not in text and "private-row-value" not in text
    assert text.count("is outside the data folder") == 3
    assert sorted(e["name"] for e in wb.experiments()) == ["inside", "inside-abs"]
    assert len(wb.configurations(wb.load("echo/inside"))) == 1
    wb.close()
