"""What both fakes answer, and how they fail: shared by the loopback server and the in-process model.

:class:`~promptlooper.testing.FakeServer` (over HTTP) and :class:`~promptlooper.testing.FakeModel`
(in-process) give the same replies to the same request, draw faults the same way from the same
:class:`Faults`, and count what they served in the same :class:`Stats`, so a test can move from
one to the other without changing what it asserts about replies, scores or counters.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import random
import re
import threading
from typing import Any

DEFAULT_MODELS: tuple[str, ...] = ("fake-small", "fake-large")
EMBEDDING_DIM = 32
MAX_BODIES = 200

# Fixed vocabulary for the default reply. Changing it changes every default
# reply, so treat it as frozen.
# fmt: off
_WORDS: tuple[str, ...] = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa",
    "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey",
    "xray", "yankee", "zulu", "amber", "basalt", "cobalt", "dune", "ember",
    "fjord", "granite", "harbor", "island", "jade", "kelp", "lagoon", "meadow",
    "nebula", "orchid", "prairie", "quartz", "river", "summit", "tundra",
    "umber", "valley", "willow", "zenith",
)
# fmt: on

_TOKEN_RE = re.compile(r"\w+")
_STREAM_PIECE_RE = re.compile(r"\s*\S+")


@dataclasses.dataclass
class Faults:
    """Probabilistic (and one deterministic) failure modes for completions.

    The probabilities are mutually exclusive slices of a single uniform draw
    per request, so e.g. ``rate_limit=0.1, server_error=0.1`` yields ~10% of
    each and ~80% normal answers.
    """

    rate_limit: float = 0.0
    """Probability of 429 with a ``Retry-After`` header."""
    server_error: float = 0.0
    """Probability of 500 with an OpenAI-style error body."""
    slow: float = 0.0
    """Probability of sleeping ``slow_seconds`` before answering normally."""
    malformed: float = 0.0
    """Probability of a 200 whose body is not valid JSON."""
    drop: float = 0.0
    """Probability of closing the TCP connection without any response."""
    retry_after: float = 0.05
    """Value (seconds, may be fractional) of the ``Retry-After`` header."""
    slow_seconds: float = 2.0
    fail_first: int = 0
    """The first N completion requests all get 500 (deterministic)."""
    refusal: float = 0.0
    """Probability of a refusal: a 200 whose message has no content, only a ``refusal`` text."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Faults:
        """Build from a JSON-like dict, rejecting unknown keys (typos)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**data)


# Drawn in this order from one uniform number, so adding a kind at the end changes no earlier draw.
FAULT_KINDS: tuple[str, ...] = ("rate_limit", "server_error", "slow", "malformed", "drop", "refusal")
REFUSAL = "I can't help with that request (fake refusal)."


class FaultDice:
    """Draws each request's fault (or None) from a :class:`Faults`, reproducibly from ``seed``.
    Not locked: its owner draws under its own lock."""

    def __init__(self, faults: Faults, seed: int = 0) -> None:
        self.faults = faults
        self.seed = seed
        self._rng = random.Random(seed)
        self._fail_first_seen = 0

    def reset(self, faults: Faults | None = None) -> None:
        """Start over (with new ``faults`` if given): reseeded, ``fail_first`` counted again."""
        self.faults = faults or self.faults
        self._rng = random.Random(self.seed)
        self._fail_first_seen = 0

    def draw(self) -> str | None:
        f = self.faults
        if self._fail_first_seen < f.fail_first:
            self._fail_first_seen += 1
            return "fail_first"
        r = self._rng.random()
        for kind in FAULT_KINDS:
            p = getattr(f, kind)
            if r < p:
                return kind
            r -= p
        return None


class Stats:
    """Counters shared between the server loop and the reading (test) thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.zero()

    def zero(self) -> None:
        self.requests = 0
        self.completions = 0
        self.by_status: collections.Counter[int] = collections.Counter()
        self.by_model: collections.Counter[str] = collections.Counter()
        self.faults: collections.Counter[str] = collections.Counter()
        self.in_flight = 0
        self.in_flight_max = 0
        # Tokens this server served (what a provider would bill): chat prompt + completion tokens
        # of every completion answered, and the input tokens of every embeddings reply.
        self.tokens_served = 0
        self.embedding_tokens_served = 0
        self.auth_headers: set[str] = set()
        self.bodies: collections.deque[Any] = collections.deque(maxlen=MAX_BODIES)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": self.requests,
                "completions": self.completions,
                "by_status": dict(self.by_status),
                "by_model": dict(self.by_model),
                "faults": dict(self.faults),
                "in_flight_max": self.in_flight_max,
                "tokens_served": self.tokens_served,
                "embedding_tokens_served": self.embedding_tokens_served,
                "auth_headers": set(self.auth_headers),
                "bodies": list(self.bodies),
            }


class Scripted:
    """What both fakes (the loopback :class:`FakeServer` and the in-process :class:`FakeModel`)
    share: their fault draws and their counters, read and reset the same way."""

    def __init__(self, faults: Faults | None, seed: int) -> None:
        self._dice = FaultDice(faults or Faults(), seed)
        self._stats = Stats()

    @property
    def faults(self) -> Faults:
        return self._dice.faults

    def set_faults(self, faults: Faults) -> None:
        """Replace the fault config; the draws start over (reseeded), so runs stay reproducible."""
        with self._stats.lock:
            self._dice.reset(faults)

    def stats(self) -> dict[str, Any]:
        """Snapshot (copies) of the counters; safe to call from any thread."""
        return self._stats.snapshot()

    def reset(self) -> None:
        """Zero the counters (including the ``fail_first`` progress)."""
        with self._stats.lock:
            self._stats.zero()
            self._dice.reset()


def content_text(content: Any) -> str:
    """Text of a message's content, which may be a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def default_reply(body: dict[str, Any]) -> str:
    """Deterministic reply text depending on *every* request parameter.

    Seeding from the whole body (minus ``stream``, which changes only the wire
    format) means a sweep over temperature/top_p/seed/... gets a distinct
    answer per point, while an identical request (e.g. a cache hit or a retry)
    gets the identical answer.
    """
    key = {k: v for k, v in body.items() if k != "stream" and k != "stream_options"}
    canonical = json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    seed = int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    n_words = rng.randint(3, 12)
    cap = max_tokens(body)
    if cap is not None:
        n_words = min(n_words, cap)
    return " ".join(rng.choice(_WORDS) for _ in range(n_words))


def default_tool_calls(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]] | None:
    """The tool a request asks for (``tool_choice``) or else its first tool, called with one
    argument per required parameter: the last word of the last user message, title-cased
    ("weather in paris" -> ``{"city": "Paris"}``). Deterministic, so cache tests hold."""
    tools = [t.get("function") or {} for t in body.get("tools") or [] if isinstance(t, dict)]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        tools = [t for t in tools if t.get("name") == wanted] or tools
    if not tools:
        return None
    users = [content_text(m.get("content")) for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    words = _TOKEN_RE.findall(users[-1]) if users else []
    value = words[-1].title() if words else ""
    required = (tools[0].get("parameters") or {}).get("required") or []
    return [(str(tools[0].get("name")), {str(name): value for name in required})]


def max_tokens(body: dict[str, Any]) -> int | None:
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return max(1, value)
    return None


def embed(text: str) -> list[float]:
    """Bag of signed hashed words, L2-normalised.

    Each word lands on a single dimension, so texts sharing words have high
    cosine similarity and disjoint texts ~0 (exactly 0 barring hash collisions).
    """
    vec = [0.0] * EMBEDDING_DIM
    for word in _TOKEN_RE.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vec[digest[0] % EMBEDDING_DIM] += 1.0 if digest[1] & 1 else -1.0
    norm = sum(v * v for v in vec) ** 0.5
    return [v / norm for v in vec] if norm else vec


def token_vectors(text: str) -> list[list[float]]:
    """One :func:`_embed` vector per word (their mean, normalised, is ``embed(text)``)."""
    return [embed(word) for word in _TOKEN_RE.findall(text)] or [[0.0] * EMBEDDING_DIM]


def word_count(text: str) -> int:
    return len(text.split())
