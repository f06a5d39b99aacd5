"""LLM-as-judge: another model grades the output on a scale, through the response cache.

The judge prompt is a Jinja template that sees ``input`` (the scored stage's prompt), ``output``,
``reference`` (the sample's ``reference_field``, or None), ``sample`` and every sample field,
``outputs`` and every stage output by name, and ``min`` / ``max`` of the scale. The default prompt
asks for one line ``Score: N``; :mod:`promptlooper.scorers.grades` reads it strictly first (JSON,
a ``Score: N`` statement) and then robustly. A reply with no grade is a missing score (left out of
the mean, counted in the leaderboard's ``missing`` column), never 0, with the reason in the
metadata. A call that fails is a missing score too, marked ``call_failed`` so that re-scoring keeps
the earlier value. ``scale: 5`` is short for ``scale: [1, 5]``.

Calls go through :mod:`promptlooper.scorers.env`, so their cache keys are exactly those of stage
calls (``content_hash("call", cache_key_material(provider, model, messages, params))``) and a
re-scoring serves them from the cache.
"""

from __future__ import annotations

from typing import Any

from .. import templates
from ..errors import EndpointError, PromptLooperError, ProviderError
from ..providers.registry import split_model
from ..spec import DEFAULT_MODEL, ModelParams
from .core import PlannedCall, ScoreContext, ScoreFn, ScoreResult, missing, scorer
from .env import current
from .grades import parse_score, read_grade  # noqa: F401 - parse_score: re-exported (it lived here)

DEFAULT_SYSTEM = "You are a strict, fair grader. You answer with one line: Score: N"
DEFAULT_PROMPT = """Rate the RESPONSE to the INPUT on a scale from {{ min }} (worst) to {{ max }} (best).
{%- if reference %} A correct response agrees with the REFERENCE answer.{% endif %}
Reply with exactly one line, "Score: N", where N is a whole number from {{ min }} to {{ max }}.

INPUT:
{{ input }}
{% if reference %}
REFERENCE:
{{ reference }}
{% endif %}
RESPONSE:
{{ output }}

Score:"""
DEFAULT_PARAMS: dict[str, Any] = {"temperature": 0, "max_tokens": 16, "seed": 0}

def _scale(scale: int | list[int]) -> tuple[int, int]:
    if isinstance(scale, int):
        scale = [1, scale]  # `scale: 5`, as people say "on a scale of 5"
    if len(scale) != 2:
        raise ValueError(f"scale must be two whole numbers [low, high], e.g. [1, 5]; got {scale!r}")
    low, high = scale
    if not 0 <= low < high <= 1000:
        raise ValueError(f"scale must satisfy 0 <= low < high <= 1000; got [{low}, {high}]")
    return low, high


@scorer("judge", description="An LLM grades the output on a scale (1-5 by default) with a Jinja prompt; its calls are cached.",
        model_calls=True)
def judge(
    model: str = DEFAULT_MODEL,
    prompt: str | None = None,
    system: str | None = DEFAULT_SYSTEM,
    scale: int | list[int] = [1, 5],  # noqa: B006 - pydantic validates a copy
    reference_field: str = "reference",
    params: dict[str, Any] = {},  # noqa: B006
    base_url: str | None = None,
    api_key_env: str | None = None,
) -> ScoreFn:
    low, high = _scale(scale if isinstance(scale, int) else list(scale))
    try:
        endpoint, model_name = split_model(model)
    except EndpointError as exc:
        raise ValueError(str(exc)) from exc
    template = prompt or DEFAULT_PROMPT
    for name, source in (("prompt", template), ("system", system or "")):
        problem = templates.check_syntax(source)
        if problem:
            raise ValueError(f"{name}: {problem}")
    call_params = ModelParams(**{**DEFAULT_PARAMS, **params}).as_dict()

    def messages_for(ctx: ScoreContext) -> list[dict[str, str]]:
        variables = {**ctx.sample, **ctx.outputs, "sample": ctx.sample, "outputs": ctx.outputs, "input": ctx.input,
                     "output": ctx.output, "reference": ctx.sample.get(reference_field), "min": low, "max": high}
        messages = [{"role": "system", "content": templates.render(system, variables)}] if system else []
        messages.append({"role": "user", "content": templates.render(template, variables)})
        return messages

    def planned_call(ctx: ScoreContext) -> PlannedCall | None:
        """The call :func:`score` would make for ``ctx``, for ``plan`` (see PlannedCall)."""
        try:
            messages = messages_for(ctx)
        except templates.TemplateError:
            return None
        return PlannedCall(endpoint, model_name, sum(len(m["content"].split()) for m in messages), messages, call_params,
                           base_url, api_key_env)

    async def score(ctx: ScoreContext) -> ScoreResult:
        try:
            messages = messages_for(ctx)
        except templates.TemplateError as exc:
            return missing(f"judge prompt: {exc}")
        env = current()
        try:
            provider = env.provider(endpoint, base_url=base_url, api_key_env=api_key_env)
            result = await env.call(provider, model_name, messages, call_params, usage=ctx.usage)
        except (ProviderError, EndpointError, PromptLooperError) as exc:
            return missing(f"judge call failed: {exc}", call_failed=True, model=model)
        reply = result.response.text
        detail: dict[str, Any] = {"model": model, "reply": reply[:500], "cached": result.cached, "cache_key": result.key}
        grade = read_grade(reply, low, high)
        if grade is None:
            return missing(f"no grade from {low} to {high} in the judge's reply", **detail)
        return ScoreResult((grade.value - low) / (high - low), {**detail, "raw": grade.value, "grade_form": grade.form})

    score.planned_call = planned_call  # type: ignore[attr-defined]
    return score
