"""The in-process fake model: its replies, its faults as the engine sees them, its counters, and
the provider registry it is reached through (``fake://NAME``), the built-ins' path too."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from helpers import fake_experiment, wait

import promptlooper as pl
from promptlooper.errors import EndpointError, ProviderError
from promptlooper.providers.base import ChatRequest, ChatResponse, Provider
from promptlooper.providers.registry import EndpointPool, provider_kinds, register_provider
from promptlooper.spec import EndpointSpec
from promptlooper.testing import FakeModel, FakeServer, Faults, fake_endpoint
from promptlooper.testing.scripted import REFUSAL, default_reply

MESSAGES = [{"role": "user", "content": "Q: capital of France"}]


def ask(model: FakeModel, *, timeout: float = 60.0, **params: Any) -> ChatResponse:
    return asyncio.run(model.complete(ChatRequest("fake-small", MESSAGES, params), timeout))


def endpoints(fake: FakeModel, **over: Any) -> dict[str, Any]:
    return {"fake": fake_endpoint(fake, **{"max_retries": 8, "max_concurrency": 16, **over})}


# ---------------------------------------------------------------------- replies
def test_default_replies_are_the_fake_servers_and_depend_on_every_parameter(fake):
    reply = ask(fake, temperature=0.5, max_tokens=8)
    assert reply.text == default_reply({"model": "fake-small", "messages": MESSAGES, "temperature": 0.5, "max_tokens": 8})
    assert reply.text == ask(fake, temperature=0.5, max_tokens=8).text  # deterministic
    assert reply.text != ask(fake, temperature=0.6, max_tokens=8).text
    assert (reply.tokens_in, reply.tokens_out) == (4, len(reply.text.split()))


def test_scripted_replies_fixed_in_order_or_a_function_of_the_request():
    assert ask(FakeModel(reply="paris")).text == "paris"
    listed = FakeModel(reply=["one", "two"])
    assert [ask(listed).text, ask(listed).text] == ["one", "two"]
    with pytest.raises(ProviderError, match="scripted replies ran out") as ran_out:
        ask(listed)
    assert not ran_out.value.retryable
    shouting = FakeModel(reply=lambda body: body["messages"][-1]["content"].upper())
    assert ask(shouting).text == "Q: CAPITAL OF FRANCE"


def test_a_reply_function_that_raises_is_a_server_error():
    def down(body: dict[str, Any]) -> str:
        raise RuntimeError("endpoint down")

    broken = FakeModel(reply=down)
    with pytest.raises(ProviderError, match="HTTP 500: the fake's reply function raised RuntimeError: endpoint down") as error:
        ask(broken)
    assert error.value.retryable and error.value.status == 500 and broken.stats()["by_status"] == {500: 1}


def test_without_usage_tokens_are_estimated_as_the_client_does():
    reply = ask(FakeModel(reply="a b c", usage=False))
    assert (reply.tokens_in, reply.tokens_out) == (4, 3)


def test_counters_as_the_fake_servers(fake):
    ask(fake, max_tokens=3)
    stats = fake.stats()
    assert stats["requests"] == stats["completions"] == 1 and stats["by_status"] == {200: 1}
    assert stats["by_model"] == {"fake-small": 1} and stats["bodies"][0]["max_tokens"] == 3
    assert stats["tokens_served"] == 4 + len(ask(fake, max_tokens=3).text.split())
    fake.reset()
    assert fake.stats()["requests"] == 0


def test_embeddings_as_the_fake_servers(fake):
    vectors = asyncio.run(fake.embed("fake-embed", ["red apple", "red apple pie", "zebra"]))
    dot = sum(a * b for a, b in zip(vectors[0], vectors[1], strict=True))
    assert dot > 0.5 and fake.stats()["embedding_tokens_served"] == 6


# ---------------------------------------------------------------------- faults, one call
@pytest.mark.parametrize(("faults", "status", "retryable", "message"), [
    (Faults(rate_limit=1.0, retry_after=2.5), 429, True, "HTTP 429: Rate limit reached (fake)."),
    (Faults(server_error=1.0), 500, True, "HTTP 500: The server had an error while processing your request (fake)."),
    (Faults(fail_first=1), 500, True, "HTTP 500"),
    (Faults(malformed=1.0), 200, True, "malformed reply"),
    (Faults(drop=1.0), None, True, "connection failed"),
])
def test_faults_raise_what_the_openai_compatible_client_raises(faults, status, retryable, message):
    with pytest.raises(ProviderError) as fake_error:
        ask(FakeModel(faults=faults))
    assert fake_error.value.status == status and fake_error.value.retryable == retryable
    assert str(fake_error.value).startswith(message)
    # The same fault over the wire, through the real client: the same exception.
    pool = EndpointPool(inline={"srv": EndpointSpec(base_url="http://127.0.0.1:1")})
    with FakeServer(faults=faults) as srv:
        pool.configs["srv"]["base_url"] = srv.base_url

        async def over_http() -> None:
            try:
                await pool.provider("srv").chat(ChatRequest("fake-small", MESSAGES, {}))
            finally:
                await pool.aclose()

        with pytest.raises(ProviderError) as wire_error:
            asyncio.run(over_http())
    assert (wire_error.value.status, wire_error.value.retryable, wire_error.value.rate_limited, wire_error.value.retry_after) == (
        fake_error.value.status, fake_error.value.retryable, fake_error.value.rate_limited, fake_error.value.retry_after)
    if faults.drop == 0:  # a dropped connection's message names the client library's exception
        assert str(wire_error.value) == str(fake_error.value)


def test_a_slow_reply_past_the_endpoints_timeout_is_a_timeout():
    with pytest.raises(ProviderError, match="timed out after 0.05s") as timed_out:
        ask(FakeModel(faults=Faults(slow=1.0, slow_seconds=30)), timeout=0.05)
    assert timed_out.value.timed_out and timed_out.value.retryable
    assert ask(FakeModel(latency=0.01, faults=Faults(slow=1.0, slow_seconds=0.01)), timeout=1).text


def test_a_refusal_is_a_reply_with_no_text():
    reply = ask(FakeModel(faults=Faults(refusal=1.0)))
    assert reply.text == "" and reply.tokens_out > 0
    with FakeServer(faults=Faults(refusal=1.0)) as srv:  # the server sends OpenAI's refusal field
        pool = EndpointPool(inline={"srv": EndpointSpec(base_url=srv.base_url)})

        async def over_http() -> ChatResponse:
            try:
                return await pool.provider("srv").chat(ChatRequest("fake-small", MESSAGES, {}))
            finally:
                await pool.aclose()

        assert asyncio.run(over_http()).text == ""
        assert srv.stats()["bodies"] and REFUSAL


# ---------------------------------------------------------------------- through the engine
def test_a_sweep_on_the_fake_gives_what_it_gives_on_the_server(wb, fake):
    on_fake = wb.run(fake_experiment(fake.base_url, name="on-fake"))
    with FakeServer() as srv:
        on_server = wb.run(fake_experiment(srv.base_url, name="on-server"))
    assert on_fake.completed == on_server.completed == 12 and fake.stats()["completions"] == 12

    def outputs(key: str) -> list[tuple[Any, ...]]:
        return sorted((r["sample_index"], r["output"], r["tokens_in"], r["tokens_out"]) for r in wb.runs(key))

    assert outputs("tests/on-fake") == outputs("tests/on-server")
    assert list(wb.leaderboard("tests/on-fake").score) == list(wb.leaderboard("tests/on-server").score)
    again = wb.run(fake_experiment(fake.base_url, name="on-fake-again"))  # the same cache keys path
    assert again.cached == 12 and fake.stats()["completions"] == 12


def test_429s_are_retried_and_the_retry_after_honoured(wb, fake):
    fake.set_faults(Faults(fail_first=0, rate_limit=0.3, retry_after=0.01))
    progress = wb.run(fake_experiment(fake.base_url, name="limited", endpoints=endpoints(fake)))
    stats = fake.stats()
    assert progress.completed == 12 and progress.failed == 0
    assert stats["faults"]["rate_limit"] > 0 and stats["requests"] == 12 + stats["faults"]["rate_limit"]


def test_failures_are_recorded_as_data_with_their_reason(wb, fake):
    fake.set_faults(Faults(rate_limit=1.0, retry_after=0))
    progress = wb.run(fake_experiment(fake.base_url, name="refused", endpoints=endpoints(fake, max_retries=0)))
    assert progress.status == "completed" and progress.failed == 12
    assert progress.failure_reasons == {"HTTP 429: Rate limit reached (fake).": 12}
    assert {r["status"] for r in wb.runs("tests/refused")} == {"failed"}


def test_5xx_in_a_row_open_the_breaker_and_a_probe_closes_it(wb, fake):
    fake.set_faults(Faults(server_error=1.0))
    exp = fake_experiment(fake.base_url, name="flaky", endpoints=endpoints(fake, breaker_cooldown=0.2))
    handle = wb.start(exp)
    wait(lambda: handle.status == "paused", timeout=20)
    assert fake.stats()["requests"] <= 30
    wait(lambda: any(e["type"] == "endpoint.probe_failed" for e in wb.events(exp.key)))
    fake.set_faults(Faults())
    progress = handle.wait(30)
    assert progress.status == "completed" and progress.completed == 12 and progress.failed == 0
    types = [e["type"] for e in wb.events(exp.key)]
    assert types.index("endpoint.unhealthy") < types.index("endpoint.healthy") < types.index("experiment.completed")


def test_a_timeout_is_retried_then_recorded(wb, fake):
    fake.set_faults(Faults(slow=1.0, slow_seconds=30))
    exp = fake_experiment(fake.base_url, name="slow", space={"persona": ["terse"]},
                          endpoints=endpoints(fake, timeout=0.05, max_retries=1, breaker_failures=1000))
    progress = wb.run(exp)
    assert progress.failed == 3 and fake.stats()["requests"] == 6
    assert progress.failure_reasons == {"timed out after 0.05s": 3}


def test_concurrency_is_the_sweeps_and_observed_by_the_fake(wb):
    slow = FakeModel(latency=0.02)
    exp = fake_experiment(slow.base_url, name="limits", concurrency=3,
                          space={"answer.temperature": [round(i * 0.1, 1) for i in range(8)]})
    assert wb.run(exp).completed == 24
    assert 1 < slow.stats()["in_flight_max"] <= 3


def test_tool_calls_are_stored_as_from_a_server(wb, fake):
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    exp = pl.Experiment.model_validate({
        "project": "tests", "name": "tools", "samples": [{"question": "weather in paris"}],
        "stages": [{"name": "answer", "model": "fake/fake-small", "user": "{{ question }}", "tools": [weather]}],
        "scorers": [{"name": "tool_call", "tool": "get_weather", "arguments": {"city": "Paris"}}],
        "endpoints": {"fake": {"base_url": fake.base_url}}})
    assert wb.run(exp).completed == 1
    run = wb.run_detail(wb.runs(exp.key)[0]["id"])
    assert json.loads(run["output"])["tool_calls"] == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    assert run["score"] == 1.0


def test_a_stored_fake_endpoint_and_a_default_fake_by_name(wb):
    assert wb.add_endpoint("demo", "fake://demo-by-name")["kind"] == "fake"
    exp = fake_experiment("fake://unused", name="stored", endpoints={})
    exp = exp.model_copy(update={"stages": [exp.stages[0].model_copy(update={"model": "demo/fake-small"})]})
    assert wb.run(exp).completed == 12
    assert wb.test_endpoint("demo") == ["fake-large", "fake-small"]


def test_a_judge_given_by_base_url_reaches_the_fake_through_the_registry(wb, fake):
    judge = FakeModel(reply="Score: 4")
    exp = fake_experiment(fake.base_url, name="judged-by-url", space={},
                          scorers=[{"name": "judge", "model": "fake/fake-small", "base_url": judge.base_url}])
    assert wb.run(exp).completed == 3
    assert judge.stats()["completions"] == 3 and fake.stats()["completions"] == 3
    assert wb.leaderboard(exp.key).loc[0, "judge"] == pytest.approx(0.75)  # 4 on 1..5


# ---------------------------------------------------------------------- the registry
class Echo(Provider):
    def __init__(self, name: str, base_url: str):
        self.name, self.identity = name, base_url

    async def chat(self, request: ChatRequest) -> ChatResponse:
        return ChatResponse(request.messages[-1]["content"], 1, 1, 0.0)

    async def list_models(self) -> list[str]:
        return ["echo"]


def test_built_in_kinds_are_registered_like_any_other():
    kinds = provider_kinds()
    assert kinds["openai-compatible"] == ("http", "https") and kinds["fake"] == ("fake",)
    assert {"embedded", "group"} <= set(kinds)
    pool = EndpointPool(inline={"f": fake_endpoint(), "h": EndpointSpec(base_url="http://127.0.0.1:9/v1")})
    assert type(pool.provider("f")).__name__ == "FakeEndpoint" and type(pool.provider("h")).__name__ == "OpenAICompatible"
    assert pool.describe("local")["kind"] == "embedded"


def test_a_registered_kind_serves_its_scheme():
    made: list[str] = []

    @register_provider("echo-test", schemes=("fake",))
    def echo(name: str, config: dict[str, Any], pool: EndpointPool) -> Provider:
        made.append(name)
        return Echo(name, config["base_url"])

    try:
        pool = EndpointPool(inline={"e": EndpointSpec(base_url="fake://x")})
        assert pool.describe("e")["kind"] == "echo-test"
        reply = asyncio.run(pool.provider("e").chat(ChatRequest("m", MESSAGES, {})))
        assert reply.text == "Q: capital of France" and made == ["e"]
    finally:
        register_provider("fake", "promptlooper.testing.fake_provider:from_config", schemes=("fake",))
    assert provider_kinds()["fake"] == ("fake",)


def test_an_unserved_scheme_says_which_are():
    pool = EndpointPool(stored={"x": {"base_url": "gopher://h/v1"}})
    with pytest.raises(EndpointError, match="no provider serves gopher://.*known schemes: fake, http, https"):
        pool.provider("x")
