"""Request bodies written as the request is sent (providers/eager_body.py), against real loopback servers."""

from __future__ import annotations

import asyncio
import socket
import threading

import aiohttp
import pytest

from promptlooper.providers.eager_body import EagerBodyRequest
from promptlooper.testing import FakeServer


def _listener() -> socket.socket:
    """A loopback socket that accepts connections and does nothing else unless told."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(request_class=EagerBodyRequest, timeout=aiohttp.ClientTimeout(total=30))


def test_the_body_is_with_the_server_before_the_loop_turns():
    """The point of the class: once aiohttp's send() returns, in the same step of the loop, the
    request (headers and body) is in the server's socket. (aiohttp's own class on Python 3.11 has
    sent nothing yet at that point: it writes from a task that runs on the loop's next turn.)"""
    listener = _listener()
    seen: list[bytes] = []

    class Probe(EagerBodyRequest):
        async def send(self, conn):  # type: ignore[no-untyped-def]
            resp = await super().send(conn)
            peer, _ = listener.accept()  # connected already: returns at once
            try:
                seen.append(peer.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT))
            except BlockingIOError:
                seen.append(b"")
            peer.close()
            return resp

    async def main() -> None:
        async with aiohttp.ClientSession(request_class=Probe, timeout=aiohttp.ClientTimeout(total=5)) as session:
            with pytest.raises(aiohttp.ClientError):  # the probe closed the connection unanswered
                await session.post(f"http://127.0.0.1:{listener.getsockname()[1]}/v1/x", data=b"hello body")

    try:
        asyncio.run(main())
    finally:
        listener.close()
    assert seen[0].startswith(b"POST /v1/x HTTP/1.1") and seen[0].endswith(b"hello body")


@pytest.mark.parametrize("words", [3, 2_000_000])  # the whole write at once; a body that waits for the socket
def test_bodies_small_and_large_arrive_whole(words):
    content = " ".join(["word"] * words)

    async def main(url: str) -> dict:
        async with _session() as session:
            async with session.post(f"{url}/chat/completions",
                                    json={"model": "fake-small", "messages": [{"role": "user", "content": content}]}) as resp:
                assert resp.status == 200
                return await resp.json()

    with FakeServer() as srv:
        reply = asyncio.run(main(srv.base_url))
    assert reply["usage"]["prompt_tokens"] == words  # the server counted every word it was sent


def test_a_request_whose_body_is_stuck_can_be_cancelled():
    """A server that never reads: the body's write waits for the socket (the task's part), and
    cancelling the request ends it at once instead of hanging."""
    listener = _listener()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    port = listener.getsockname()[1]

    async def main() -> None:
        async with _session() as session:
            task = asyncio.ensure_future(session.post(f"http://127.0.0.1:{port}/", data=b"x" * 64_000_000))
            await asyncio.sleep(0.5)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 5)

    try:
        asyncio.run(main())
    finally:
        for s in accepted:
            s.close()
        listener.close()


def test_a_connection_closed_mid_body_is_a_client_error():
    listener = _listener()

    def accept_and_drop() -> None:
        conn, _ = listener.accept()
        conn.recv(1024)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
        conn.close()

    threading.Thread(target=accept_and_drop, daemon=True).start()
    port = listener.getsockname()[1]

    async def main() -> None:
        async with _session() as session:
            with pytest.raises(aiohttp.ClientError):
                await session.post(f"http://127.0.0.1:{port}/", data=b"x" * 64_000_000)

    try:
        asyncio.run(main())
    finally:
        listener.close()
