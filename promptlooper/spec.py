"""The experiment schema: one pydantic definition behind YAML files, Python objects and MCP tools.

An experiment is samples + 1..N stages + a parameter space + weighted scorers (+ strategy,
concurrency, budget, seed). Field metadata (ranges, descriptions) is declared here once and feeds
validation, sweep ranges and tool schemas. Semantic checks that need more than one field (template
variables, scorer names, endpoints) live in :mod:`promptlooper.validation`.

A YAML file::

    project: demo
    name: capital-quiz
    samples: questions.jsonl          # or an inline list of objects, or a .csv file
    stages:
      - name: answer
        system: "{{ persona }}"
        user: "{{ question }}"
        model: local/smollm2-135m
        params: {max_tokens: 32, seed: 1}
    space:
      answer.temperature: [0.0, 0.7]
      persona: ["You are terse.", "You are a geography teacher."]
    scorers:
      - {name: contains, field: reference, weight: 2}
      - {name: length, max_words: 20}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from .bounds import MAX_AXIS_VALUES

DEFAULT_MODEL = "local/smollm2-135m"
# Keys of a call's body that PromptLooper owns: params may not override them.
RESERVED_PARAMS = ("model", "messages", "stream")
# Params that would carry a credential: sent in every body and stored with every run and cache entry.
_KEY_LIKE = re.compile(r"(api[_-]?key|secret|passw(or)?d|token|auth|authori[sz]ation|bearer|credentials?|headers?)$|^(key|cookie)$", re.I)
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Fields of a prompt stage that a space key may vary besides its model parameters.
STAGE_TEXT_FIELDS = ("model", "system", "user")


class ModelParams(BaseModel):
    """Sampling parameters sent with every call of a prompt stage.

    Unknown keys are allowed and passed through (servers such as vLLM accept ``top_k``,
    ``repetition_penalty``…); the common ones are range-checked here.
    """

    model_config = ConfigDict(extra="allow")

    temperature: float | None = Field(None, ge=0, le=2, description="Sampling temperature, 0..2.")
    top_p: float | None = Field(None, ge=0, le=1, description="Nucleus sampling mass, 0..1.")
    max_tokens: int | None = Field(None, ge=1, le=131072, description="Cap on generated tokens.")
    seed: int | None = Field(None, ge=0, description="Sampling seed (reproducible output).")
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    stop: list[str] | str | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_owned_or_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                name = str(key)
                if name in RESERVED_PARAMS:
                    raise ValueError(f"{name}: params cannot set {name!r}; PromptLooper sends it "
                                     + ("(the stage's model field chooses the model)" if name == "model" else "itself"))
                if _KEY_LIKE.search(name):
                    raise ValueError(f"{name}: params cannot carry keys or credentials (they are sent in every body and "
                                     "stored with every run); name the key's environment variable in the endpoint's api_key_env")
        return data

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class MessageTemplate(BaseModel):
    """One turn of a stage's conversation; its content is a Jinja2 template."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(description="Message template (Jinja2).")


class FromField(BaseModel):
    """Turns taken from a sample field holding a conversation (a list of {role, content})."""

    model_config = ConfigDict(extra="forbid")

    from_field: str = Field(pattern=NAME_PATTERN, description="Sample field holding a list of {role, content} messages.")


MessageEntry = MessageTemplate | FromField


class PromptStage(BaseModel):
    """A stage that renders its messages and calls a model.

    The call's messages are, in order: ``system`` (if any), ``messages`` (templated turns and
    conversations from sample fields), then ``user`` (if any). ``system`` + ``user`` is the short form.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["prompt"] = "prompt"
    name: str = Field(pattern=NAME_PATTERN, description="Stage name; later stages use it as a variable.")
    model: str = Field(DEFAULT_MODEL, description="'endpoint/model', e.g. local/smollm2-135m.")
    system: str | None = Field(None, description="System message template (Jinja2).")
    user: str | None = Field(None, description="User message template (Jinja2); sent last. Needed unless messages is given.")
    messages: list[MessageEntry] | None = Field(
        None, description="Turns sent after system and before user: {role, content} templates and/or {from_field: NAME}.")
    tools: list[dict[str, Any]] | None = Field(None, description="OpenAI tools schema: [{type: function, function: {name, parameters}}].")
    tool_choice: str | dict[str, Any] | None = Field(None, description="'auto', 'none', 'required' or {type: function, function: {name}}.")
    params: ModelParams = Field(default_factory=ModelParams)

    @model_validator(mode="after")
    def _something_to_send(self) -> PromptStage:
        if self.user is None and not self.messages:
            raise ValueError("a prompt stage needs user: (a template) or messages: (a list of turns)")
        if self.tool_choice is not None and not self.tools:
            raise ValueError("tool_choice needs tools: (the tools the model may call)")
        for i, tool in enumerate(self.tools or []):
            fn = tool.get("function")
            if tool.get("type") != "function" or not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise ValueError(f"tools[{i}] must be {{type: function, function: {{name: ..., parameters: {{...}}}}}}")
        return self


class FunctionStage(BaseModel):
    """A stage that runs a Python function (Python API; over MCP only by registered name).

    The function receives the template context (sample fields, earlier stage outputs, space
    variables) as keyword arguments it declares, plus ``context`` if it asks for it, and returns
    the stage output (a string, or anything JSON-serialisable).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    kind: Literal["function"] = "function"
    name: str = Field(pattern=NAME_PATTERN)
    function: Callable[..., Any] | str = Field(
        description="A callable, or the name of a function registered with register_function."
    )
    params: dict[str, Any] = Field(default_factory=dict)


def _stage_kind(value: Any) -> str:
    # "kind" may be omitted: a stage with a function is a function stage, anything else a prompt.
    if isinstance(value, dict):
        return str(value.get("kind") or ("function" if "function" in value else "prompt"))
    return str(getattr(value, "kind", "prompt"))


Stage = Annotated[
    Annotated[PromptStage, Tag("prompt")] | Annotated[FunctionStage, Tag("function")],
    Discriminator(_stage_kind),
]


class Range(BaseModel):
    """A numeric range in the parameter space. Grid sweeps need ``step`` (or ``values``)."""

    # NaN and infinity make no grid and no sample: refused with the field's path.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    min: float
    max: float
    step: float | None = Field(None, gt=0)
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max}); swap them")
        if self.log and self.min <= 0:
            raise ValueError("a log range needs min > 0")
        if self.step is not None:
            n = (self.max - self.min) / self.step  # a float: 1e308 / 0.5 is inf, not an error
            if not n < MAX_AXIS_VALUES:
                raise ValueError(f"this range has {n + 1:,.0f} values (at most {MAX_AXIS_VALUES:,}); "
                                 "use a larger step, or strategy: random without a step")
        return self

    def size(self) -> int:
        """How many values grid() gives, computed without building them."""
        if self.step is None:
            return 0
        return int(round((self.max - self.min) / self.step + 1e-9)) + 1

    def grid(self) -> list[float | int]:
        if self.step is None:
            return []
        out: list[float | int] = []
        for i in range(self.size()):
            v = round(self.min + i * self.step, 10)
            out.append(int(round(v)) if self.integer else v)
        return out


class Linked(BaseModel):
    """Values that vary together: a list of bundles, each mapping space keys to one value.

    ``space: {combo: {linked: [{answer.model: fake/a, answer.system: "..."}, {answer.model: fake/b, ...}]}}``
    is one axis of two values; every key of a bundle (``stage.field``, a bare stage field or a
    template variable) is set from the bundle chosen, so the values never mix across bundles.
    """

    model_config = ConfigDict(extra="forbid")

    linked: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_AXIS_VALUES,
                                         description="Bundles: each maps space keys to the values they take together.")

    @field_validator("linked")
    @classmethod
    def _bundles(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, bundle in enumerate(v):
            if not bundle:
                raise ValueError(f"bundle {i} is empty; give it at least one key, e.g. {{answer.model: fake/a}}")
            for key in bundle:
                if not isinstance(key, str) or not key:
                    raise ValueError(f"bundle {i}: key {key!r} must be a space key such as answer.model")
        keys = set(v[0])
        for i, bundle in enumerate(v[1:], 1):
            if set(bundle) != keys:
                raise ValueError(f"bundle {i} sets {sorted(bundle)} but bundle 0 sets {sorted(keys)}; "
                                 "every bundle must set the same keys")
        return v

    def grid(self) -> list[dict[str, Any]]:
        return list(self.linked)


def _space_kind(value: Any) -> str:
    # Tagged, so a mapping is read as a range or a linked axis and its errors say which it was
    # meant to be (an untagged union reported a bad bundle as "min: field required").
    if isinstance(value, Linked) or (isinstance(value, dict) and "linked" in value):
        return "Linked"
    return "Range" if isinstance(value, dict | Range) else "list"


SpaceValue = Annotated[
    Annotated[list[Any], Tag("list")] | Annotated[Range, Tag("Range")] | Annotated[Linked, Tag("Linked")],
    Discriminator(_space_kind),
]


class ScorerSpec(BaseModel):
    """A scorer from the registry, its weight, and its arguments (any other keys)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    weight: float = Field(1.0, ge=0)
    label: str | None = Field(None, description="Column name; defaults to the scorer's name.")
    stage: str | None = Field(None, description="Which stage's output to score (default: last).")
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _collect_args(cls, data: Any) -> Any:
        # YAML users write {name: keyword, words: [...], weight: 2}; everything that is not a
        # field of ScorerSpec is an argument of the scorer.
        if isinstance(data, str):
            return {"name": data}
        if isinstance(data, dict):
            known = {"name", "weight", "label", "stage", "args"}
            extra = {k: v for k, v in data.items() if k not in known}
            if extra:
                data = {k: v for k, v in data.items() if k in known}
                data["args"] = {**data.get("args", {}), **extra}
        return data

    @property
    def column(self) -> str:
        return self.label or self.name


class GuidedOptions(BaseModel):
    """Guided search: a model-based sampler proposes configurations, losers are dropped early.

    Every configuration is first run on a fraction of the samples (``rungs[0]``); it gets the
    rest unless its 95% interval lies below what the leader has surely earned (the lower bound of
    the best fully evaluated configuration). The search stops at ``max_configs`` / ``max_calls``
    (default: a quarter of a finite space's grid calls) / the token and cost budget, when the
    space is exhausted, or when the best is separated from every other configuration with
    ``confidence``.
    """

    model_config = ConfigDict(extra="forbid")

    sampler: Literal["tpe", "random"] = "tpe"
    max_configs: int | None = Field(None, ge=1, description="Configurations to try at most (default: half of a finite space, at least 20).")
    max_calls: int | None = Field(None, ge=1, description="Model calls to spend at most (default: a quarter of a finite space's grid calls, at least min_configs configurations on every sample).")
    startup: int = Field(6, ge=1, description="Random configurations before the model-based sampler takes over.")
    batch: int = Field(4, ge=1, le=256, description="Configurations evaluated in parallel.")
    rungs: list[float] = Field(default_factory=lambda: [0.34, 1.0], description="Sample fractions per rung (successive halving).")
    min_samples: int = Field(3, ge=1, description="Samples in the first rung at least.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    stop_when_separated: bool = True
    min_configs: int | None = Field(None, ge=1, description="Configurations to try before a separation may stop the search (default: 20% of a finite space, at least 12).")
    patience: int = Field(3, ge=0, description="Batches in a row the best must hold before a separation stops the search.")

    @field_validator("rungs")
    @classmethod
    def _rungs(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < x <= 1 for x in v) or sorted(v) != v or v[-1] != 1.0:
            raise ValueError("rungs must be increasing fractions in (0, 1] ending with 1.0, e.g. [0.25, 1.0]")
        return v


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(None, ge=1, description="Tokens (in + out) per sweep.")
    max_cost: float | None = Field(None, gt=0, description="Estimated cost per sweep, in USD.")


class EndpointSpec(BaseModel):
    """An OpenAI-compatible endpoint. The key is referenced by environment variable name only."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(None, description="Name of the environment variable holding the key.")
    max_concurrency: int = Field(16, ge=1, le=4096)
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(6, ge=0, le=50)
    retry_after_max: float = Field(60.0, gt=0, description="Longest Retry-After honoured (seconds); longer waits are cut to it.")
    breaker_failures: int = Field(5, ge=1, le=1000, description="Consecutive 5xx / connection errors / timeouts that "
                                  "open the endpoint's circuit breaker (the sweep pauses).")
    breaker_cooldown: float = Field(30.0, gt=0, description="Seconds before the first probe of an unhealthy endpoint; "
                                    "doubled after each failed probe.")
    prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="model -> (USD per 1M input tokens, per 1M output tokens)"
    )

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^(https?|fake)://", v):  # fake://NAME: promptlooper.testing's in-process fake
            raise ValueError("base_url must start with http:// or https://")
        try:
            host = urlsplit(v).hostname
            urlsplit(v).port  # noqa: B018 - raises on a port that is not a number
        except ValueError as exc:
            raise ValueError(f"base_url {v!r} is not a valid URL: {exc}") from exc
        if not host:
            raise ValueError(f"base_url {v!r} names no host; e.g. http://127.0.0.1:8000/v1")
        return v.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", v):
            raise ValueError(
                "api_key_env is the NAME of an environment variable (e.g. OPENAI_API_KEY), "
                "never the key itself"
            )
        return v


class EndpointGroupSpec(BaseModel):
    """One model served by several endpoints: ``{group: [a, b], fallback: c}``.

    Each call goes to the member with the most free slots (its ``max_concurrency`` less its calls
    in flight); a member that fails hands the call to the next one, and when every member has
    failed, to ``fallback`` (an endpoint, or ``endpoint/model`` for another model). The stage
    result records the endpoint (and model) that answered.
    """

    model_config = ConfigDict(extra="forbid")

    group: list[str] = Field(min_length=1, max_length=64, description="Names of the endpoints serving the model.")
    fallback: str | None = Field(None, description="Endpoint (or endpoint/model) called when every member failed.")

    @field_validator("group")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a group lists each endpoint once")
        return v


def _endpoint_kind(value: Any) -> str:
    if isinstance(value, EndpointGroupSpec) or (isinstance(value, dict) and "group" in value):
        return "group"
    return "endpoint"


EndpointEntry = Annotated[
    Annotated[EndpointSpec, Tag("endpoint")] | Annotated[EndpointGroupSpec, Tag("group")],
    Discriminator(_endpoint_kind),
]


def parse_endpoint(value: Any) -> EndpointSpec | EndpointGroupSpec:
    """A stored experiment's endpoint entry as its spec (an endpoint or a group)."""
    return EndpointGroupSpec.model_validate(value) if _endpoint_kind(value) == "group" else EndpointSpec.model_validate(value)


class Experiment(BaseModel):
    """An experiment description. Build it in Python or load a file with :func:`promptlooper.load_experiment`."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    # No "/": the experiment's key is project/name, and a slash in either makes it unreachable.
    project: str = Field("default", min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    samples: list[dict[str, Any]] | str = Field(
        description="Inline list of objects, or a path to a .jsonl / .csv file."
    )
    stages: list[Stage] = Field(min_length=1)
    space: dict[str, SpaceValue] = Field(default_factory=dict, description=(
        "Space key (stage.field, a bare stage field or a template variable) -> a list of values, a range "
        "{min, max, step}, or a linked axis {linked: [{key: value, ...}, ...]} whose bundles set their keys together."))
    scorers: list[ScorerSpec] = Field(default_factory=list)
    strategy: Literal["grid", "random", "guided"] = "grid"
    guided: GuidedOptions = Field(default_factory=lambda: GuidedOptions())
    max_configs: int | None = Field(None, ge=1, description="Random sweeps: how many configurations.")
    concurrency: int = Field(8, ge=1, le=4096, description="Runs in flight at once.")
    budget: Budget = Field(default_factory=Budget)
    seed: int = 0
    repeat: int = Field(1, ge=1, le=1000, description="Calls per (configuration, sample); distinct cache keys.")
    endpoints: dict[str, EndpointEntry] = Field(
        default_factory=dict, description="Endpoints defined inline (added to the store's), and endpoint groups {group: [...], fallback: ...}."
    )
    # Where a YAML file came from, so relative sample paths resolve next to it.
    base_dir: str | None = Field(None, exclude=True)

    @property
    def key(self) -> str:
        return f"{self.project}/{self.name}"

    def samples_path(self) -> Path | None:
        if isinstance(self.samples, list):
            return None
        p = Path(self.samples).expanduser()
        if not p.is_absolute() and self.base_dir:
            p = Path(self.base_dir) / p
        return p

    def to_record(self) -> dict[str, Any]:
        """JSON-safe form for the store; function stages are kept by name."""
        data = self.model_dump(mode="python", exclude={"base_dir"})
        for stage, raw in zip(self.stages, data["stages"], strict=True):
            if isinstance(stage, FunctionStage):
                raw["function"] = function_name(stage.function)
        return data


def function_name(fn: Callable[..., Any] | str) -> str:
    if isinstance(fn, str):
        return fn
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
