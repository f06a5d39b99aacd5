"""Scorer registry: decorated factories whose name and arguments are stored with every score.

A scorer is registered as a factory::

    @scorer("keyword", description="Share of required words present in the output.")
    def keyword(words: list[str], mode: str = "all", case_sensitive: bool = False) -> ScoreFn:
        ...
        return score                     # score(ctx: ScoreContext) -> float | ScoreResult

The factory's signature *is* its argument schema: arguments are validated by pydantic against it
before any model is called, so ``{name: keyword, word: [...]}`` fails with a message naming
``word``. Because each score row records the scorer's name and arguments, any stored run can be
re-scored later without a model call.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, ValidationError, create_model

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


def registered() -> dict[str, ScorerInfo]:
    """Every scorer known now (plugins once used; their names are in the installed packages' metadata)."""
    _load_builtins()
    return dict(_REGISTRY)


def get(name: str) -> ScorerInfo:
    _load_builtins()
    if name not in _REGISTRY:
        _load_plugin(name)
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ScorerError(f"unknown scorer {name!r}; known scorers: {known}") from None


PLUGIN_GROUP = "promptlooper.scorers"


def _load_plugin(name: str) -> None:
    """A scorer of an installed package: an entry point ``name`` in the group ``promptlooper.scorers``
    naming a factory (decorated with :func:`scorer` or not), as simonw/llm finds its plugins.
    Installing the package is the operator's choice, so MCP clients may use it too."""
    from importlib import metadata

    found = {ep.name: ep for ep in metadata.entry_points(group=PLUGIN_GROUP)}.get(name)
    if found is None:
        return
    try:
        factory = found.load()
    except Exception as exc:  # noqa: BLE001 - a broken plugin is reported by name
        raise ScorerError(f"scorer plugin {name!r} ({found.value}) failed to load: {type(exc).__name__}: {exc}") from exc
    if name not in _REGISTRY:  # a factory decorated with @scorer(name) registered itself on import
        if not callable(factory):
            raise ScorerError(f"scorer plugin {name!r} ({found.value}) is a {type(factory).__name__}, not a scorer factory")
        scorer(name)(factory)


def check_args(name: str, args: dict[str, Any]) -> list[tuple[str, str]]:
    """Validate ``args`` against the factory signature: [(argument path, message)]."""
    info = get(name)
    sig = inspect.signature(info.factory)
    fields: dict[str, Any] = {}
    for pname, param in sig.parameters.items():
        if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            return []  # the factory takes anything; it validates itself
        annotation = param.annotation if param.annotation is not inspect.Parameter.empty else Any
        if isinstance(annotation, str):
            annotation = eval(annotation, vars(inspect.getmodule(info.factory)))  # noqa: S307 - our own annotations
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (annotation, default)
    model = create_model(f"{name}_args", __config__=ConfigDict(extra="forbid"), **fields)
    try:
        model(**args)
    except ValidationError as exc:
        return [(".".join(str(p) for p in err["loc"]) or "args", err["msg"]) for err in exc.errors()]
    return []


def computed(specs: Any) -> list[Any]:
    """The scorer specs a sweep or a re-scoring runs: every one but people's ratings (``human``)."""
    return [s for s in specs if not get(s.name).human]


def build(name: str, args: dict[str, Any]) -> ScoreFn:
    info = get(name)
    try:
        return info.factory(**args)
    except (TypeError, ValueError) as exc:
        raise ScorerError(f"scorer {name!r}: {exc}") from exc


_loaded = False


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        from . import custom, formats, human, judge, semantic, text, tools  # noqa: F401 - registering is the import's effect
