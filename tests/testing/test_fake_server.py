"""Tests for the fake OpenAI-compatible server, driven by a real HTTP client."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from promptlooper.testing import FakeServer, Faults, fake_server_process

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name three colours please"},
]


def chat_body(**params: Any) -> dict[str, Any]:
    return {"model": "fake-small", "messages": MESSAGES, **params}


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


@pytest.fixture
def client(server: FakeServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=5) as c:
        yield c


def complete(client: httpx.Client, **params: Any) -> httpx.Response:
    return client.post("/chat/completions", json=chat_body(**params))


def text_of(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


# ------------------------------------------------------------------ replies


def test_response_shape(client: httpx.Client, server: FakeServer) -> None:
    r = complete(client)
    data = r.json()
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert data["object"] == "chat.completion"
    assert data["model"] == "fake-small"
    assert data["id"] and isinstance(data["created"], int)
    (choice,) = data["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "stop"


def test_deterministic_replies(client: httpx.Client) -> None:
    base = text_of(complete(client, temperature=0.7, top_p=0.9))
    assert text_of(complete(client, temperature=0.7, top_p=0.9)) == base
    assert 3 <= len(base.split()) <= 12
    assert text_of(complete(client, temperature=0.8, top_p=0.9)) != base
    assert text_of(complete(client, temperature=0.7, top_p=0.5)) != base
    assert text_of(complete(client, temperature=0.7, top_p=0.9, seed=1)) != base
    assert (
        text_of(
            client.post(
                "/chat/completions",
                json={**chat_body(temperature=0.7, top_p=0.9), "model": "fake-large"},
            )
        )
        != base
    )


def test_replies_vary_across_a_sweep(client: httpx.Client) -> None:
    texts = {text_of(complete(client, temperature=t / 10)) for t in range(20)}
    assert len(texts) >= 18  # collisions possible but rare


def test_max_tokens_caps_words(client: httpx.Client) -> None:
    for cap in (1, 2, 3):
        r = complete(client, max_tokens=cap, temperature=0.3)
        assert len(text_of(r).split()) <= cap
        assert r.json()["usage"]["completion_tokens"] <= cap


def test_usage_counts(client: httpx.Client) -> None:
    data = complete(client).json()
    text = data["choices"][0]["message"]["content"]
    assert data["usage"] == {
        "prompt_tokens": 3 + 4,
        "completion_tokens": len(text.split()),
        "total_tokens": 7 + len(text.split()),
    }
    empty = client.post(
        "/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": ""}]}
    ).json()
    assert empty["usage"]["prompt_tokens"] == 1


def test_usage_can_be_disabled() -> None:
    with FakeServer(usage=False) as srv, httpx.Client(base_url=srv.base_url) as c:
        assert "usage" not in complete(c).json()


def test_reply_hook_receives_body() -> None:
    def reply(body: dict[str, Any]) -> str:
        return f"echo {body['messages'][-1]['content']} t={body.get('temperature')}"

    with FakeServer(reply=reply) as srv, httpx.Client(base_url=srv.base_url) as c:
        r = complete(c, temperature=0.5)
        assert text_of(r) == "echo Name three colours please t=0.5"
        assert r.json()["usage"]["completion_tokens"] == 6


def test_streaming(client: httpx.Client) -> None:
    plain = text_of(complete(client))
    r = complete(client, stream=True, stream_options={"include_usage": True})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [line[len("data: ") :] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert content == plain
    assert chunks[-1]["usage"]["completion_tokens"] == len(plain.split())


def test_models(client: httpx.Client) -> None:
    data = client.get("/models").json()
    assert data["object"] == "list"
    assert data["data"] == [
        {"id": "fake-small", "object": "model", "owned_by": "fake"},
        {"id": "fake-large", "object": "model", "owned_by": "fake"},
    ]


def test_embeddings_similarity(client: httpx.Client) -> None:
    inputs = [
        "the quick brown fox jumps",
        "the quick brown fox sleeps",
        "quantum chromodynamics lecture notes",
        "the quick brown fox jumps",
    ]
    r = client.post("/embeddings", json={"model": "fake-embed", "input": inputs})
    assert r.status_code == 200
    data = r.json()
    assert data["object"] == "list" and data["model"] == "fake-embed"
    assert data["usage"] == {"prompt_tokens": 19, "total_tokens": 19}
    vecs = [d["embedding"] for d in sorted(data["data"], key=lambda d: d["index"])]
    assert all(len(v) == 32 for v in vecs)
    assert all(math.isclose(sum(x * x for x in v), 1.0) for v in vecs)

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert math.isclose(cos(vecs[0], vecs[3]), 1.0)
    assert cos(vecs[0], vecs[1]) > 0.6
    assert abs(cos(vecs[0], vecs[2])) < 0.3
    single = client.post("/embeddings", json={"model": "e", "input": inputs[0]}).json()
    assert single["data"][0]["embedding"] == vecs[0]


# --------------------------------------------------------- validation, auth


@pytest.mark.parametrize(
    "body",
    [
        {"messages": MESSAGES},
        {"model": "fake-small"},
        {"model": "fake-small", "messages": "hi"},
        [1, 2],
    ],
)
def test_bad_body_is_400(client: httpx.Client, body: Any) -> None:
    r = client.post("/chat/completions", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert r.json()["error"]["message"]


def test_invalid_json_is_400(client: httpx.Client, server: FakeServer) -> None:
    r = client.post(
        "/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert server.stats()["bodies"][-1] == "{nope"


def test_bad_embeddings_body_is_400(client: httpx.Client) -> None:
    r = client.post("/embeddings", json={"model": "e", "input": [1, 2]})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_api_key() -> None:
    with FakeServer(api_key="sk-good") as srv, httpx.Client(base_url=srv.base_url) as c:
        assert complete(c).status_code == 401
        bad = c.post(
            "/chat/completions", json=chat_body(), headers={"Authorization": "Bearer sk-bad"}
        )
        assert bad.status_code == 401
        assert "error" in bad.json()
        assert c.get("/models").status_code == 401
        good = c.post(
            "/chat/completions", json=chat_body(), headers={"Authorization": "Bearer sk-good"}
        )
        assert good.status_code == 200
        stats = srv.stats()
        assert stats["auth_headers"] == {"Bearer sk-bad", "Bearer sk-good"}
        assert stats["by_status"] == {401: 2, 200: 1}


# ------------------------------------------------------------------- faults


def faulty(**kw: Any) -> FakeServer:
    return FakeServer(faults=Faults(**kw))


def test_rate_limit_fault() -> None:
    with faulty(rate_limit=1.0, retry_after=0.25) as srv, httpx.Client(base_url=srv.base_url) as c:
        r = complete(c)
        assert r.status_code == 429
        assert float(r.headers["Retry-After"]) == 0.25
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
        assert srv.stats()["faults"] == {"rate_limit": 1}


def test_server_error_fault() -> None:
    with faulty(server_error=1.0) as srv, httpx.Client(base_url=srv.base_url) as c:
        r = complete(c)
        assert r.status_code == 500
        assert r.json()["error"]["type"] == "server_error"


def test_malformed_fault() -> None:
    with faulty(malformed=1.0) as srv, httpx.Client(base_url=srv.base_url) as c:
        r = complete(c)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json")
        with pytest.raises(json.JSONDecodeError):
            r.json()
        assert srv.stats()["completions"] == 0


def test_drop_fault() -> None:
    with faulty(drop=1.0) as srv, httpx.Client(base_url=srv.base_url) as c:
        with pytest.raises(httpx.TransportError):
            complete(c)
        # The server keeps working for the next connection.
        srv.set_faults(Faults())
        assert complete(c).status_code == 200
        assert srv.stats()["faults"] == {"drop": 1}


def test_slow_fault_triggers_client_timeout() -> None:
    with (
        faulty(slow=1.0, slow_seconds=1.0) as srv,
        httpx.Client(base_url=srv.base_url, timeout=0.2) as c,
    ):
        with pytest.raises(httpx.TimeoutException):
            complete(c)
        assert srv.stats()["faults"] == {"slow": 1}


def test_slow_fault_eventually_answers() -> None:
    with faulty(slow=1.0, slow_seconds=0.1) as srv, httpx.Client(base_url=srv.base_url) as c:
        assert complete(c).status_code == 200


def test_fault_rates_are_roughly_respected() -> None:
    with faulty(rate_limit=0.2, server_error=0.2) as srv, httpx.Client(base_url=srv.base_url) as c:
        codes = [complete(c).status_code for _ in range(300)]
    assert 35 <= codes.count(429) <= 85
    assert 35 <= codes.count(500) <= 85
    assert codes.count(200) == 300 - codes.count(429) - codes.count(500)


def test_fault_sequence_is_seeded() -> None:
    def run(seed: int) -> list[int]:
        with (
            FakeServer(faults=Faults(rate_limit=0.5), seed=seed) as srv,
            httpx.Client(base_url=srv.base_url) as c,
        ):
            return [complete(c).status_code for _ in range(30)]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_fail_first() -> None:
    with faulty(fail_first=3) as srv, httpx.Client(base_url=srv.base_url) as c:
        assert [complete(c).status_code for _ in range(5)] == [500, 500, 500, 200, 200]
        assert srv.stats()["faults"] == {"fail_first": 3}
        srv.reset()  # reset also restarts the fail_first countdown
        assert complete(c).status_code == 500


def test_faults_endpoint(client: httpx.Client, server: FakeServer) -> None:
    r = httpx.post(
        server.base_url.removesuffix("/v1") + "/_faults", json={"rate_limit": 1.0, "retry_after": 2}
    )
    assert r.status_code == 200
    assert server.faults == Faults(rate_limit=1.0, retry_after=2)
    resp = complete(client)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "2"
    bad = httpx.post(server.base_url.removesuffix("/v1") + "/_faults", json={"nope": 1})
    assert bad.status_code == 400
    httpx.post(server.base_url.removesuffix("/v1") + "/_faults", json={})
    assert complete(client).status_code == 200


# ----------------------------------------------------------------- counters


def test_counters_and_reset(client: httpx.Client, server: FakeServer) -> None:
    root = server.base_url.removesuffix("/v1")
    complete(client)
    complete(client, temperature=1.0)
    client.post(
        "/chat/completions",
        json={**chat_body(), "model": "fake-large"},
        headers={"Authorization": "Bearer abc"},
    )
    client.post("/chat/completions", json={"model": "fake-small"})
    client.post("/embeddings", json={"model": "e", "input": "hello"})
    client.get("/models")  # not counted as a request

    stats = server.stats()
    assert stats["requests"] == 5
    assert stats["completions"] == 3
    assert stats["by_status"] == {200: 4, 400: 1}
    assert stats["by_model"] == {"fake-small": 2, "fake-large": 1}
    assert stats["faults"] == {}
    assert stats["in_flight_max"] == 1
    assert stats["auth_headers"] == {"Bearer abc"}
    assert len(stats["bodies"]) == 5
    assert stats["bodies"][1]["temperature"] == 1.0

    over_http = httpx.get(root + "/_stats").json()
    assert over_http["requests"] == 5
    assert over_http["by_status"] == {"200": 4, "400": 1}
    assert over_http["auth_headers"] == ["Bearer abc"]

    assert httpx.post(root + "/_reset").status_code == 200
    stats = server.stats()
    assert stats["requests"] == 0 and stats["by_status"] == {} and stats["bodies"] == []
    complete(client)
    server.reset()
    assert server.stats()["completions"] == 0


def test_bodies_keep_last_200(client: httpx.Client, server: FakeServer) -> None:
    for i in range(205):
        complete(client, seed=i)
    bodies = server.stats()["bodies"]
    assert len(bodies) == 200
    assert bodies[0]["seed"] == 5 and bodies[-1]["seed"] == 204


def test_in_flight_max_threads() -> None:
    with (
        FakeServer(latency=0.2) as srv,
        httpx.Client(base_url=srv.base_url, limits=httpx.Limits(max_connections=20)) as c,
    ):
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda i: complete(c, seed=i).status_code, range(8)))
        assert codes == [200] * 8
        assert srv.stats()["in_flight_max"] == 8


def test_async_usage_and_in_flight_max() -> None:
    async def main() -> dict[str, Any]:
        async with FakeServer(latency=0.2) as srv:
            async with httpx.AsyncClient(base_url=srv.base_url) as c:
                rs = await asyncio.gather(
                    *(c.post("/chat/completions", json=chat_body(seed=i)) for i in range(10))
                )
            assert all(r.status_code == 200 for r in rs)
            return srv.stats()

    stats = asyncio.run(main())
    assert stats["in_flight_max"] == 10
    assert stats["completions"] == 10


def test_latency_is_applied() -> None:
    with FakeServer(latency=0.15) as srv, httpx.Client(base_url=srv.base_url) as c:
        r = complete(c)
        assert r.elapsed.total_seconds() >= 0.15


def test_start_stop_restart_releases_port() -> None:
    srv = FakeServer().start()
    port = srv.port
    srv.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1)
    with pytest.raises(RuntimeError):
        _ = srv.port


# --------------------------------------------------------------- subprocess


def test_subprocess_cli() -> None:
    with fake_server_process(
        latency=0.0, faults={"fail_first": 1}, api_key="k", models=["x"]
    ) as base_url:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        headers = {"Authorization": "Bearer k"}
        with httpx.Client(base_url=base_url, headers=headers) as c:
            assert c.get("/models").json()["data"][0]["id"] == "x"
            assert complete(c).status_code == 500
            assert complete(c).status_code == 200
            assert httpx.get(base_url, timeout=1).status_code == 404
            stats = httpx.get(base_url.removesuffix("/v1") + "/_stats").json()
            assert stats["faults"] == {"fail_first": 1}
            assert stats["completions"] == 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(base_url + "/models", timeout=1)


def test_subprocess_replies_match_in_process(client: httpx.Client) -> None:
    """The default reply is a pure function of the request, in any process."""
    expected = text_of(complete(client, temperature=0.3))
    with fake_server_process() as base_url, httpx.Client(base_url=base_url) as c:
        assert text_of(complete(c, temperature=0.3)) == expected


def test_latency_runs_from_the_request_not_from_the_servers_own_work() -> None:
    """A remote API's latency does not grow with the fake server's own work (here a slow reply)."""
    def slow_reply(body: dict[str, Any]) -> str:
        time.sleep(0.5)
        return "alpha bravo"

    with FakeServer(latency=0.6, reply=slow_reply) as srv, httpx.Client(base_url=srv.base_url, timeout=5) as c:
        r = complete(c)
    assert text_of(r) == "alpha bravo"
    # Time is the behaviour here: 0.6 s when the work overlaps the latency, 1.1 s if it came on top;
    # the bound sits between them, far from both, for a loaded machine.
    assert 0.6 <= r.elapsed.total_seconds() < 0.95
