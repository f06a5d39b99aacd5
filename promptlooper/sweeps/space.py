"""The parameter space and the configurations it contains.

A space key is either ``stage.field`` (a field of one stage: ``answer.temperature``,
``answer.model``, ``answer.system``), a bare stage field (``temperature``: every prompt stage),
or a bare name that templates read as a variable (``persona``). A *point* maps keys to values;
a *configuration* is the point applied to the experiment's stages, fully resolved, and its
content hash is its identity (so the same prompt text, model and parameters reached from two
experiments is the same configuration, and shares cached calls).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..hashing import content_hash
from ..spec import (
    STAGE_TEXT_FIELDS,
    Experiment,
    FunctionStage,
    Linked,
    ModelParams,
    PromptStage,
    Range,
    function_name,
)

PARAM_FIELDS = frozenset(ModelParams.model_fields)


@dataclass(frozen=True)
class Target:
    """What a space key changes: a stage field, or a template variable."""

    kind: str  # "stage" or "var"
    stages: tuple[str, ...]  # stage names it applies to ("stage" kind)
    field: str


def resolve_key(exp: Experiment, key: str) -> Target:
    names = [s.name for s in exp.stages]
    if "." in key:
        stage, _, field = key.partition(".")
        return Target("stage", (stage,), field)
    if key in STAGE_TEXT_FIELDS or key in PARAM_FIELDS:
        prompt_stages = tuple(s.name for s in exp.stages if isinstance(s, PromptStage))
        return Target("stage", prompt_stages, key)
    if key in names:
        return Target("stage", (key,), "")  # reported as an error by validation
    return Target("var", (), key)


def values_of(value: list[Any] | Range | Linked) -> list[Any]:
    return list(value) if isinstance(value, list) else value.grid()


def flat_axes(exp: Experiment) -> list[tuple[str, str, Any]]:
    """``(path, space key, its values)`` per key a point can set, linked bundles' keys included.

    A linked axis ``combo`` contributes each key its bundles set, with the values in bundle order,
    at the path ``space.combo.linked.KEY``: what validation checks key by key.
    """
    out: list[tuple[str, str, Any]] = []
    for key, value in exp.space.items():
        if isinstance(value, Linked):
            for inner in value.linked[0]:
                out.append((f"space.{key}.linked.{inner}", inner, [b.get(inner) for b in value.linked]))
        else:
            out.append((f"space.{key}", key, value))
    return out


@dataclass(frozen=True)
class Configuration:
    """One point of the space applied to the experiment: identity, resolved stages, varied values."""

    id: str
    stages: tuple[dict[str, Any], ...]
    vars: dict[str, Any]
    varied: dict[str, Any]

    def as_record(self) -> dict[str, Any]:
        return {"stages": list(self.stages), "vars": self.vars}


def _assignments(exp: Experiment, point: dict[str, Any]) -> list[tuple[str, Any]]:
    """The point's (space key, value) pairs, a linked axis's bundle spread into its keys."""
    out: list[tuple[str, Any]] = []
    for key, value in point.items():
        if isinstance(exp.space.get(key), Linked) and isinstance(value, dict):
            out.extend(value.items())
        else:
            out.append((key, value))
    return out


def _prompt_record(stage: PromptStage) -> dict[str, Any]:
    record: dict[str, Any] = {
        "name": stage.name,
        "kind": "prompt",
        "model": stage.model,
        "system": stage.system,
        "user": stage.user,
        "params": stage.params.as_dict(),
    }
    # Only when set: a stage without them keeps the configuration id it always had.
    if stage.messages:
        record["messages"] = [m.model_dump() for m in stage.messages]
    if stage.tools:
        record["tools"] = stage.tools
    if stage.tool_choice is not None:
        record["tool_choice"] = stage.tool_choice
    return record


def build_configuration(exp: Experiment, point: dict[str, Any]) -> Configuration:
    stages: list[dict[str, Any]] = []
    for stage in exp.stages:
        if isinstance(stage, PromptStage):
            stages.append(_prompt_record(stage))
        else:
            assert isinstance(stage, FunctionStage)
            stages.append(
                {
                    "name": stage.name,
                    "kind": "function",
                    "function": function_name(stage.function),
                    "params": dict(stage.params),
                }
            )
    by_name = {s["name"]: s for s in stages}
    variables: dict[str, Any] = {}
    for key, value in _assignments(exp, point):
        target = resolve_key(exp, key)
        if target.kind == "var":
            variables[target.field] = value
            continue
        for name in target.stages:
            stage_rec = by_name[name]
            if target.field in STAGE_TEXT_FIELDS and stage_rec["kind"] == "prompt":
                stage_rec[target.field] = value
            elif value is None:
                stage_rec["params"].pop(target.field, None)
            else:
                stage_rec["params"][target.field] = value
    record = {"stages": stages, "vars": variables}
    return Configuration(
        id=content_hash("configuration", record),
        stages=tuple(stages),
        vars=variables,
        varied=dict(point),
    )


def grid_size(exp: Experiment) -> int:
    return math.prod(len(values_of(v)) for v in exp.space.values()) if exp.space else 1


def grid_points(exp: Experiment) -> Iterator[dict[str, Any]]:
    """Every combination, lazily, in a stable order."""
    keys = list(exp.space)
    axes = [values_of(exp.space[k]) for k in keys]
    for combo in itertools.product(*axes):
        yield dict(zip(keys, combo, strict=True))


def _draw(value: list[Any] | Range | Linked, rng: random.Random) -> Any:
    if isinstance(value, list):
        return rng.choice(value)
    if isinstance(value, Linked):
        return rng.choice(value.linked)
    if value.step is not None:
        return rng.choice(value.grid())
    if value.log:
        x = math.exp(rng.uniform(math.log(value.min), math.log(value.max)))
    else:
        x = rng.uniform(value.min, value.max)
    return int(round(x)) if value.integer else round(x, 4)


def random_points(exp: Experiment, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` distinct points drawn with ``seed`` (fewer if the space is smaller)."""
    rng = random.Random(seed)
    continuous = any(isinstance(v, Range) and v.step is None for v in exp.space.values())
    limit = n if continuous else min(n, grid_size(exp))
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    attempts = 0
    while len(out) < limit and attempts < limit * 50 + 100:
        attempts += 1
        point = {k: _draw(v, rng) for k, v in exp.space.items()}
        key = content_hash("point", point)
        if key not in seen:
            seen.add(key)
            out.append(point)
    return out
