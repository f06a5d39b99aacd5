"""A fake OpenAI-compatible chat-completions server on loopback.

It is a *real* HTTP server (aiohttp), so clients are exercised end to end:
connection pooling, timeouts, retries and error handling all behave as they
would against a hosted API, but replies are instant (or have a configurable
latency), deterministic and free. A latency of L means an answer L after the
request reached the handler, as from a remote API: the server's own work on the
reply happens meanwhile, not on top (it shares the cores with the client).
With ``slots=N`` it serves at most N completions at once and the rest wait inside
the server, as on llama.cpp's server (one slot unless told otherwise).

Three ways to run it:

* ``with FakeServer() as srv:`` -- background thread with its own event loop;
  ideal for synchronous tests.
* ``await srv.astart()`` / ``await srv.astop()`` -- on the caller's loop.
* ``python -m promptlooper.testing.fake_server`` (or :func:`spawn_fake_server`
  / :func:`fake_server_process`) -- a separate process, so benchmarks measure
  the client rather than a server competing for the same GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

from .scripted import (
    DEFAULT_MODELS,
    REFUSAL,
    Faults,
    Scripted,
    content_text,
    default_reply,
    default_tool_calls,
    embed,
    max_tokens,
    token_vectors,
    word_count,
)

__all__ = ["FakeServer", "Faults", "fake_server_process", "spawn_fake_server"]

_STREAM_PIECE_RE = re.compile(r"\s*\S+")


def _error(
    status: int,
    message: str,
    type_: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers)


class FakeServer(Scripted):
    """Fake OpenAI-compatible API server listening on 127.0.0.1.

    See the module docstring for the ways to run it; ``stats()`` / ``reset()``
    inspect what clients did, ``set_faults()`` changes failure injection.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        models: list[str] | None = None,
        faults: Faults | None = None,
        seed: int = 0,
        api_key: str | None = None,
        reply: Callable[[dict[str, Any]], str] | None = None,
        usage: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        embedding_latency: float = 0.0,
        embeddings: str = "pooled",
        slots: int | None = None,
        tool_calls: Callable[[dict[str, Any]], list[tuple[str, dict[str, Any]]] | None] | None = None,
    ) -> None:
        self.latency = latency
        self.embedding_latency = embedding_latency  # seconds before an embeddings reply
        # At most this many completions served at once, the rest waiting their turn inside the
        # server (llama.cpp's server has one slot unless told otherwise); None: no limit.
        self.slots = slots
        self._slots: asyncio.Semaphore | None = None
        self.models = list(models) if models is not None else list(DEFAULT_MODELS)
        self.seed = seed
        self.api_key = api_key
        self.reply = reply or default_reply
        # (tool name, arguments) pairs a request offering tools is answered with (None: a text
        # reply); default: the first tool offered, called with default_tool_arguments.
        self.tool_calls = tool_calls or default_tool_calls
        self.usage = usage
        if embeddings not in ("pooled", "tokens"):
            raise ValueError(f"embeddings must be 'pooled' or 'tokens', not {embeddings!r}")
        # "tokens": one vector per word of each input, as llama.cpp's server returns without pooling
        self.embeddings = embeddings
        self._host = host
        self._requested_port = port
        super().__init__(faults, seed)
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ API

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeServer is not running")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}/v1"

    # ------------------------------------------------------- async lifecycle

    async def astart(self) -> FakeServer:
        """Start serving on the currently running event loop."""
        if self._runner is not None:
            raise RuntimeError("FakeServer already started")
        self._loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(self.slots) if self.slots else None
        runner = web.AppRunner(
            self._make_app(),
            access_log=None,
            # Clients that time out (slow fault) should not leave sleeping
            # handlers around that delay shutdown.
            handler_cancellation=True,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._requested_port, backlog=1024)
        await site.start()
        self._runner = runner
        server = site._server  # aiohttp exposes no public accessor for the bound port
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def astop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._port = None

    async def __aenter__(self) -> FakeServer:
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    # ------------------------------------------------------ thread lifecycle

    def start(self, timeout: float = 10.0) -> FakeServer:
        """Serve from a daemon thread; returns once the socket is listening."""
        if self._thread is not None or self._runner is not None:
            raise RuntimeError("FakeServer already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.astart())
            except BaseException as exc:  # surfaced to the caller of start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="FakeServer", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("FakeServer did not start in time")
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already gone
            asyncio.run_coroutine_threadsafe(self.astop(), loop).result(timeout)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------- handlers

    def _make_app(self) -> web.Application:
        # Generous body limit: sweeps may send long prompts.
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat_completions if self._slots is None else self._slotted_completions)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/_stats", self._get_stats)
        app.router.add_post("/_reset", self._post_reset)
        app.router.add_post("/_faults", self._post_faults)
        return app

    def _check_auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization")
        if header is not None:
            with self._stats.lock:
                self._stats.auth_headers.add(header)
        if self.api_key is not None and header != f"Bearer {self.api_key}":
            return _error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        return None

    async def _read_body(self, request: web.Request) -> tuple[Any, web.Response | None]:
        """Parse and record the JSON body; returns (body, error_response)."""
        raw = await request.text()
        try:
            body: Any = json.loads(raw)
        except json.JSONDecodeError:
            body = raw
        with self._stats.lock:
            self._stats.bodies.append(body)
        if not isinstance(body, dict):
            return body, _error(400, "Request body must be a JSON object.", "invalid_request_error")
        return body, None

    def _count_status(self, response: web.StreamResponse) -> web.StreamResponse:
        with self._stats.lock:
            self._stats.by_status[response.status] += 1
        return response

    async def _slotted_completions(self, request: web.Request) -> web.StreamResponse:
        assert self._slots is not None
        async with self._slots:  # queued inside the server, as on a server with few slots
            return await self._chat_completions(request)

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        # The latency runs from here, the earliest point a handler sees, not from whenever this
        # request's own work is done: see _answer.
        deadline = asyncio.get_running_loop().time() + self.latency
        with self._stats.lock:
            self._stats.requests += 1
        denied = self._check_auth(request)
        if denied is not None:
            return self._count_status(denied)
        body, bad = await self._read_body(request)
        if bad is not None:
            return self._count_status(bad)
        model = body.get("model")
        messages = body.get("messages")
        if not isinstance(model, str) or not model:
            return self._count_status(
                _error(400, "you must provide a model parameter", "invalid_request_error")
            )
        if not isinstance(messages, list) or not messages:
            return self._count_status(
                _error(400, "'messages' must be a non-empty array", "invalid_request_error")
            )

        stats = self._stats
        with stats.lock:
            stats.by_model[model] += 1
            stats.in_flight += 1
            stats.in_flight_max = max(stats.in_flight_max, stats.in_flight)
            fault = self._dice.draw()
            faults = self._dice.faults
            if fault is not None:
                stats.faults[fault] += 1
        try:
            return await self._answer(request, body, model, messages, fault, faults, deadline)
        finally:
            with stats.lock:
                stats.in_flight -= 1

    async def _answer(
        self,
        request: web.Request,
        body: dict[str, Any],
        model: str,
        messages: list[Any],
        fault: str | None,
        faults: Faults,
        deadline: float,
    ) -> web.StreamResponse:
        # The reply is made before the latency runs out, so that "latency L" means an answer L
        # after the request came in, as from a remote API, and not L plus this server's own work
        # queued behind other requests' on the cores it shares with the client under test.
        reply = self._reply(body, messages) if fault in (None, "slow", "refusal") else None
        # Latency applies to every valid completion request, faulted or not,
        # so timing is predictable regardless of the fault mix.
        if self.latency > 0:
            await asyncio.sleep(max(0.0, deadline - asyncio.get_running_loop().time()))
        if fault == "rate_limit":
            return self._count_status(
                _error(
                    429,
                    "Rate limit reached (fake).",
                    "requests",
                    "rate_limit_exceeded",
                    headers={"Retry-After": f"{faults.retry_after:g}"},
                )
            )
        if fault in ("server_error", "fail_first"):
            return self._count_status(
                _error(
                    500,
                    "The server had an error while processing your request (fake).",
                    "server_error",
                )
            )
        if fault == "drop":
            # abort() sends RST and discards buffers: the client sees a
            # disconnect with no response at all.
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if fault == "malformed":
            return self._count_status(
                web.Response(status=200, text='{"choices": [', content_type="application/json")
            )
        if fault == "slow":
            await asyncio.sleep(faults.slow_seconds)

        assert reply is not None
        text, finish, usage = reply
        ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if body.get("stream") is True:
            response = await self._stream(request, ident, created, model, text, finish, usage, body)
        else:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if fault == "refusal":
                message = {"role": "assistant", "content": None, "refusal": REFUSAL}
            calls = None if fault == "refusal" else self.tool_calls(body) if body.get("tools") and body.get("tool_choice") != "none" else None
            if calls:
                message = {"role": "assistant", "content": None, "tool_calls": [
                    {"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                     "function": {"name": name, "arguments": json.dumps(args)}} for name, args in calls]}
                finish = "tool_calls"
            payload: dict[str, Any] = {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": finish,
                    }
                ],
            }
            if self.usage:
                payload["usage"] = usage
            response = web.json_response(payload)
        with self._stats.lock:
            self._stats.completions += 1
            self._stats.tokens_served += usage["total_tokens"]
        return self._count_status(response)

    def _reply(self, body: dict[str, Any], messages: list[Any]) -> tuple[str, str, dict[str, int]]:
        """(text, finish reason, usage) of a completion."""
        text = self.reply(body)
        cap = max_tokens(body)
        finish = "length" if cap is not None and word_count(text) >= cap else "stop"
        prompt_tokens = max(
            1,
            sum(
                word_count(content_text(m.get("content")))
                for m in messages
                if isinstance(m, dict)
            ),
        )
        completion_tokens = word_count(text)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        return text, finish, usage

    async def _stream(
        self,
        request: web.Request,
        ident: str,
        created: int,
        model: str,
        text: str,
        finish: str,
        usage: dict[str, int],
        body: dict[str, Any],
    ) -> web.StreamResponse:
        """Server-sent events in the OpenAI ``chat.completion.chunk`` format."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            data = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
                **extra,
            }
            return f"data: {json.dumps(data)}\n\n".encode()

        pieces = _STREAM_PIECE_RE.findall(text) or [""]
        for i, piece in enumerate(pieces):
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            await response.write(chunk([{"index": 0, "delta": delta, "finish_reason": None}]))
        await response.write(chunk([{"index": 0, "delta": {}, "finish_reason": finish}]))
        options = body.get("stream_options")
        if self.usage and isinstance(options, dict) and options.get("include_usage"):
            await response.write(chunk([], usage=usage))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _list_models(self, request: web.Request) -> web.Response:
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "owned_by": "fake"} for name in self.models
                ],
            }
        )

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        with self._stats.lock:
            self._stats.requests += 1
        denied = self._check_auth(request)
        if denied is not None:
            return self._count_status(denied)
        body, bad = await self._read_body(request)
        if bad is not None:
            return self._count_status(bad)
        model = body.get("model")
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(model, str) or not model:
            return self._count_status(
                _error(400, "you must provide a model parameter", "invalid_request_error")
            )
        if (
            not isinstance(inputs, list)
            or not inputs
            or not all(isinstance(s, str) for s in inputs)
        ):
            return self._count_status(
                _error(
                    400,
                    "'input' must be a string or a non-empty array of strings",
                    "invalid_request_error",
                )
            )
        tokens = sum(word_count(s) for s in inputs)
        if self.embedding_latency > 0:
            await asyncio.sleep(self.embedding_latency)
        with self._stats.lock:
            self._stats.tokens_served += tokens
            self._stats.embedding_tokens_served += tokens
        return self._count_status(
            web.json_response(
                {
                    "object": "list",
                    "data": [
                        {
                            "object": "embedding",
                            "index": i,
                            "embedding": token_vectors(s) if self.embeddings == "tokens" else embed(s),
                        }
                        for i, s in enumerate(inputs)
                    ],
                    "model": model,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            )
        )

    async def _get_stats(self, request: web.Request) -> web.Response:
        snap = self.stats()
        snap["auth_headers"] = sorted(snap["auth_headers"])
        return web.json_response(snap)

    async def _post_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _post_faults(self, request: web.Request) -> web.Response:
        try:
            data = await request.json() if await request.read() else {}
            if not isinstance(data, dict):
                raise ValueError("fault config must be a JSON object")
            faults = Faults.from_dict(data)
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc), "invalid_request_error")
        self.set_faults(faults)
        return web.json_response(dataclasses.asdict(faults))


# --------------------------------------------------------------- subprocess


def _package_root() -> str:
    """Directory containing the ``promptlooper`` package, for the child's path."""
    return str(Path(__file__).resolve().parents[2])


def spawn_fake_server(
    latency: float = 0.0,
    faults: Faults | dict[str, Any] | None = None,
    *,
    port: int = 0,
    api_key: str | None = None,
    seed: int = 0,
    models: list[str] | None = None,
    usage: bool = True,
    slots: int | None = None,
    startup_timeout: float = 20.0,
) -> tuple[subprocess.Popen[str], str]:
    """Start the CLI server in a child process; returns ``(process, base_url)``.

    The caller owns the process (``terminate()`` it); prefer
    :func:`fake_server_process` which does that for you.
    """
    cmd = [
        sys.executable,
        "-m",
        "promptlooper.testing.fake_server",
        "--port",
        str(port),
        "--latency",
        str(latency),
        "--seed",
        str(seed),
    ]
    if faults is not None:
        data = dataclasses.asdict(faults) if isinstance(faults, Faults) else faults
        cmd += ["--faults", json.dumps(data)]
    if api_key is not None:
        cmd += ["--api-key", api_key]
    if models is not None:
        cmd += ["--models", ",".join(models)]
    if not usage:
        cmd.append("--no-usage")
    if slots:
        cmd += ["--slots", str(slots)]
    env = dict(os.environ)
    # The package may be importable only via sys.path tweaks in the parent
    # (e.g. pytest rootdir); make sure the child finds the same code.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None

    # Read the announcement line in a helper thread so a hung child cannot
    # block us forever (portable alternative to select() on pipes).
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=startup_timeout)
        if not line:
            raise RuntimeError(f"fake server exited early (code {proc.wait(5)})")
        return proc, json.loads(line)["base_url"]
    except BaseException:
        _terminate(proc)
        raise


def _terminate(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@contextlib.contextmanager
def fake_server_process(
    latency: float = 0.0,
    faults: Faults | dict[str, Any] | None = None,
    **kw: Any,
) -> Iterator[str]:
    """Context manager around :func:`spawn_fake_server`; yields the base URL."""
    proc, base_url = spawn_fake_server(latency, faults, **kw)
    try:
        yield base_url
    finally:
        _terminate(proc)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m promptlooper.testing.fake_server",
        description="Fake OpenAI-compatible chat-completions server.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument(
        "--faults",
        type=json.loads,
        default=None,
        help="JSON object of Faults fields, e.g. '{\"rate_limit\": 0.1}'",
    )
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default=None, help="comma-separated model names")
    parser.add_argument("--no-usage", action="store_true")
    parser.add_argument("--slots", type=int, default=None, help="completions served at once (default: no limit)")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    server = FakeServer(
        latency=args.latency,
        models=args.models.split(",") if args.models else None,
        faults=Faults.from_dict(args.faults) if args.faults else None,
        seed=args.seed,
        api_key=args.api_key,
        usage=not args.no_usage,
        host=args.host,
        port=args.port,
        slots=args.slots,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.astart()
    try:
        # The single stdout line is the startup handshake for spawn_fake_server.
        print(json.dumps({"base_url": server.base_url, "port": server.port}), flush=True)
        await stop.wait()
    finally:
        await server.astop()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
