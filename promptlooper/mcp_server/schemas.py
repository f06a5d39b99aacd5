"""The tools' argument types: JSON schemas from the same pydantic models the Python API validates with.

``create_experiment`` takes an :class:`~promptlooper.spec.Experiment` as JSON (function stages and
``python`` scorers name a registered function, an installed plugin, or an import path the operator
allows: see :mod:`promptlooper.functions`); every other argument is an ``Annotated`` type whose
description and bounds come from the spec's fields where one exists, so they are written once.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from ..spec import Experiment, FunctionStage, PromptStage, _stage_kind


class _NamedFunctionStage(FunctionStage):
    """A stage that runs a Python function of the server process, by name."""

    function: str = Field(  # type: ignore[assignment]
        description="A function registered in the server process, an installed plugin (entry point group "
                    "'promptlooper.functions'), or 'module:function' for a module the operator allows "
                    "($PROMPTLOOPER_ALLOW_IMPORTS)."
    )


_McpStage = Annotated[
    Annotated[PromptStage, Tag("prompt")] | Annotated[_NamedFunctionStage, Tag("function")],
    Discriminator(_stage_kind),
]


class _McpExperiment(Experiment):
    """The Experiment schema as JSON: function stages by name (registered, plugin, or an allowed import path)."""

    stages: list[_McpStage] = Field(min_length=1, description=Experiment.model_fields["stages"].description)  # type: ignore[assignment]
    base_dir: SkipJsonSchema[str | None] = Field(None, exclude=True)


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A self-contained copy of a pydantic JSON schema (``$ref``s to ``$defs`` inlined)."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                target = walk(defs[ref.removeprefix("#/$defs/")])
                extra = {k: walk(v) for k, v in node.items() if k != "$ref"}
                return {**target, **extra}
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)  # type: ignore[no-any-return]


EXPERIMENT_SCHEMA = _inline_refs(_McpExperiment.model_json_schema())
EXPERIMENT_SCHEMA["description"] = (
    "An experiment, with the same fields as pl.Experiment / an experiment YAML file: samples, 1..N stages, "
    "space (what to vary: 'stage.field', a bare stage field or a template variable -> list of values or "
    "{min,max,step}), weighted scorers, strategy, budget... Function stages and python scorers name a "
    "registered function, an installed plugin, or module:function for a module the operator allows."
)


def described(model: Any, name: str, extra: str = "") -> str:
    """A spec field's own description (plus ``extra``), so a tool argument says what the field says."""
    text = model.model_fields[name].description or ""
    return f"{text} {extra}".strip()


ExperimentJSON = Annotated[dict[str, Any], WithJsonSchema(EXPERIMENT_SCHEMA)]
ExperimentRef = Annotated[str, Field(description="A stored experiment: 'project/name', its id, or a unique name.")]
ConfigRef = Annotated[str, Field(description="A configuration id (a prefix from get_leaderboard is enough).")]
RunRef = Annotated[str, Field(description="A run id (a unique prefix is enough).")]
Point = Annotated[dict[str, Any], Field(
    description="One value for every space key, e.g. {\"answer.temperature\": 0.3, \"persona\": \"terse\"}.")]
_STRATEGIES = Experiment.model_fields["strategy"].annotation  # Literal["grid", "random", ...], declared once in spec.py
Strategy = Annotated[_STRATEGIES | None,  # type: ignore[valid-type]
                     Field(description="Override the experiment's strategy (grid, random, guided).")]
MaxConfigs = Annotated[int | None, Field(ge=1, description=described(Experiment, "max_configs", "Also caps grid sweeps."))]
Seed = Annotated[int | None, Field(description="Random / guided sweeps: the sampler's seed.")]
Concurrency = Annotated[int | None, Field(ge=1, le=4096, description=described(Experiment, "concurrency"))]
MaxCalls = Annotated[int | None, Field(ge=1, description=(
    "The most model calls you accept for this sweep. Required when the sweep would exceed the operator's "
    "confirmation limits (PROMPTLOOPER_CONFIRM_CALLS / _COST); a sweep over it is refused, not started."))]
Full = Annotated[bool, Field(description="Return long texts (prompts, responses) in full instead of truncated.")]
By = Annotated[str, Field(description="Who decides (recorded in the event); default: this server's name for its "
                                      "clients ('agent' unless the operator named it).")]
Reason = Annotated[str, Field(description="Why (recorded in the event).")]
Confirm = Annotated[bool, Field(description="Must be true: deleting cannot be undone (archive hides instead).")]
ProjectName = Annotated[str, Field(min_length=1, description="A project's name.")]

__all__ = ["EXPERIMENT_SCHEMA", "By", "Concurrency", "ConfigRef", "Confirm", "ExperimentJSON", "ExperimentRef", "Full",
           "MaxCalls", "MaxConfigs", "Point", "ProjectName", "Reason", "RunRef", "Seed", "Strategy", "described"]
