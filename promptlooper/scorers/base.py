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
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, create_model

from .core import (
    _REGISTRY,
    PlannedCall,
    ScoreContext,
    ScoreFn,
    ScorerError,
    ScoreResult,
    ScorerInfo,
    ScorerUsage,
    missing,
    scorer,
)


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
        # Each field under a name of our own, read from the argument's name: an argument named like
        # a BaseModel attribute (json_schema's ``schema``) would otherwise warn the user.
        fields[f"arg_{pname}"] = (annotation, Field(default, alias=pname))
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


# The registry's surface: its look-ups, and the types of what it registers (defined in .core).
__all__ = ["PlannedCall", "ScoreContext", "ScoreFn", "ScoreResult", "ScorerError", "ScorerInfo", "ScorerUsage", "build",
           "check_args", "computed", "get", "missing", "registered", "scorer"]
