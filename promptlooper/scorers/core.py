"""What a scorer is: the context it sees, the result it gives, the call it plans, and the
``@scorer`` decorator that registers its factory (see :mod:`promptlooper.scorers.base` for the
look-ups: built-ins and plugins are loaded there, on first use).

The scorer families (text, formats, judge, ...) import only this module, and the registry's
look-ups import the families: registering never goes round in a circle.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import PromptLooperError

if TYPE_CHECKING:
    from ..engine.calls import CallResult


class ScorerUsage:
    """The model calls a run's scorers made: ``(endpoint, model, tokens in, tokens out)`` each.

    The run adds them to its own tokens and cost, as it does a stage's (served from the cache or
    not); what the sweep spends is counted where the calls go out (see ``CallExecutor.on_spent``).
    """

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int, int]] = []

    def add(self, endpoint: str, model: str, tokens_in: int, tokens_out: int = 0) -> None:
        self.calls.append((endpoint, model, tokens_in, tokens_out))


@dataclass(frozen=True)
class ScoreContext:
    """What a scorer sees of one run."""

    output: str
    sample: dict[str, Any]
    input: str = ""  # the last rendered prompt (user message) of the scored stage
    outputs: dict[str, Any] = field(default_factory=dict)  # every stage's output by name
    run: dict[str, Any] = field(default_factory=dict)  # run id, configuration id, varied values
    # Model calls made while scoring, counted in the run's tokens and cost.
    usage: ScorerUsage = field(default_factory=ScorerUsage, repr=False, compare=False)

    async def chat(self, model: str, messages: list[dict[str, str]], params: dict[str, Any] | None = None) -> CallResult:
        """One chat call (``model`` as ``endpoint/model``) for a custom scorer, through the engine:
        the response cache, single-flight, the sweep's limits and budget, and counted in the run's
        and the sweep's tokens and cost. Returns a ``CallResult`` (``.response.text``)."""
        from ..providers.registry import split_model
        from .env import current

        env = current()
        endpoint, name = split_model(model)
        return await env.call(env.provider(endpoint), name, messages, dict(params or {}), usage=self.usage)


@dataclass
class PlannedCall:
    """A call a scorer would make for one run, as ``plan`` counts it.

    A scorer that calls models gives its score function a ``planned_call(ctx) -> PlannedCall |
    None`` attribute. A chat call has ``messages`` and ``params`` (keyed as the call the scorer
    makes, so ``plan`` finds it in the cache); an embeddings request has ``texts`` instead
    (cached when every one is in the store's embedding cache). ``endpoint`` is a configured
    endpoint's name, or the label the scorer counts a ``base_url`` call under.
    """

    endpoint: str
    model: str
    words: int  # of the prompt, or of the texts to embed
    messages: list[dict[str, str]] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    base_url: str | None = None
    api_key_env: str | None = None
    texts: list[str] | None = None


@dataclass(frozen=True)
class ScoreResult:
    """A score and what explains it. ``value=None`` is a missing score (see :func:`missing`)."""

    value: float | None
    detail: dict[str, Any] | None = None


def missing(reason: str, **detail: Any) -> ScoreResult:
    """A missing score: the scorer could not say (a reply with no grade, a failed call, a bad vector).

    It is stored as NULL with ``reason`` as the metadata's ``error``, left out of every mean and
    counted in the leaderboard's ``missing`` column: a 0 would rank the configuration as if its
    output had been judged worthless.
    """
    return ScoreResult(None, {**detail, "error": reason})


ScoreFn = Callable[[ScoreContext], "float | ScoreResult | None | Awaitable[float | ScoreResult | None]"]


@dataclass(frozen=True)
class ScorerInfo:
    name: str
    factory: Callable[..., ScoreFn]
    description: str
    model_calls: bool  # judges call models: they are skipped when re-scoring is asked to be free
    needs_fields: Callable[[dict[str, Any]], list[str]] | None = None  # sample fields it reads
    human: bool = False  # people give its values (ratings): sweeps and re-scoring never run it


class ScorerError(PromptLooperError):
    """A scorer could not be built or failed while scoring."""


_REGISTRY: dict[str, ScorerInfo] = {}


def scorer(
    name: str,
    *,
    description: str = "",
    model_calls: bool = False,
    needs_fields: Callable[[dict[str, Any]], list[str]] | None = None,
    human: bool = False,
) -> Callable[[Callable[..., ScoreFn]], Callable[..., ScoreFn]]:
    """Register a scorer factory under ``name`` (replacing any earlier one of that name)."""

    def register(factory: Callable[..., ScoreFn]) -> Callable[..., ScoreFn]:
        doc = description or (inspect.getdoc(factory) or "").split("\n")[0]
        _REGISTRY[name] = ScorerInfo(name, factory, doc, model_calls, needs_fields, human)
        return factory

    return register
