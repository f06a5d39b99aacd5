"""The machine's floor for ``startup.py``'s 1,000 calls: the same calls from a bare aiohttp client.

    .venv/bin/python benchmarks/bare_client.py URL [CALLS] [CONCURRENCY] [SPACING_S]

A whole process, as the ``calls`` scenario times ``promptlooper run``: the interpreter starts,
imports aiohttp (nothing else), and ``CONCURRENCY`` lanes send ``CALLS`` chat requests to the fake
server at ``URL``, the k-th lane's first one ``k × SPACING_S`` after the first (the engine's ramp,
``promptlooper/engine/ramp.py``). No experiment, no validation, no store, no scoring: what is left
of the wall time is Python, aiohttp and the server on this machine, which no change of ours can
beat. It prints its phases as one JSON line (``startup.py`` sets them beside the run's): the
epoch times its first request left and its last reply came, and the mean latency it saw, from
``session.post`` to the reply read. (``scenarios.bare_client`` is the same idea inside a
benchmark's process, where the engine is imported already; this one is a process of its own,
start-up included.) ``startup.py`` reports PromptLooper's fraction of C/L next to this one's, so a
figure read on a slower machine (or a busier one) can be told apart from a slower PromptLooper.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp


async def sweep(url: str, calls: int, concurrency: int, spacing: float) -> dict[str, float]:
    left = calls
    sent: list[float] = []  # epoch times each request left
    answered: list[float] = []  # and each reply was read
    latencies: list[float] = []

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def lane(k: int) -> None:
            nonlocal left
            await asyncio.sleep(k * spacing)
            while left > 0:
                left -= 1
                body = {"model": "fake-small", "max_tokens": 16,
                        "messages": [{"role": "system", "content": f"You are assistant {left % 20}."},
                                     {"role": "user", "content": f"Q: Fact {left} about the floor?"}]}
                t = time.time()
                async with session.post(f"{url}/chat/completions", json=body) as reply:
                    reply.raise_for_status()
                    await reply.json()
                sent.append(t)
                answered.append(time.time())
                latencies.append(answered[-1] - t)

        await asyncio.gather(*(lane(k) for k in range(concurrency)))
    return {"first_sent": min(sent), "last_answered": max(answered),
            "latency_ms": 1000 * sum(latencies) / len(latencies)}


if __name__ == "__main__":
    url, *rest = sys.argv[1:]
    n, c, s = (int(rest[0]) if rest else 1000), (int(rest[1]) if len(rest) > 1 else 64), (float(rest[2]) if len(rest) > 2 else 0.0015)
    print(json.dumps(asyncio.run(sweep(url.rstrip("/"), n, c, s))))
