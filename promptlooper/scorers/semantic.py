"""Semantic similarity: how close the output is in meaning to a reference.

The reference is a sample field (``field``; for a list, the closest of them counts) or a Jinja
``template`` rendered with the sample, the stage outputs and ``input``. Both texts are embedded
with the offline all-MiniLM-L6-v2 (int8 ONNX) unless an OpenAI-compatible ``endpoint`` (a
configured name) or ``base_url`` is given with a ``model``; the score is ``max(0, cosine)``
(see :mod:`promptlooper.embedder` for why). Vectors are cached in-process and in the store, so
re-scoring embeds nothing twice.
"""

from __future__ import annotations

from typing import Any

from .. import templates
from .core import PlannedCall, ScoreContext, ScoreFn, ScoreResult, missing, scorer
from .env import current


def _needs(args: dict[str, Any]) -> list[str]:
    return [] if args.get("template") else [args.get("field", "reference")]


@scorer("embedding", description="Similarity in meaning to a reference (sample field or template): max(0, cosine) of sentence embeddings.",
        needs_fields=_needs)
def embedding(
    field: str = "reference",
    template: str | None = None,
    endpoint: str | None = None,
    base_url: str | None = None,
    model: str | None = None,
    api_key_env: str | None = None,
    timeout: float = 60.0,
) -> ScoreFn:
    from .. import embedder

    if endpoint and base_url:
        raise ValueError("give either endpoint (a configured endpoint's name) or base_url, not both")
    remote = bool(endpoint or base_url)
    if remote and not model:
        raise ValueError("an embeddings endpoint needs model (e.g. text-embedding-3-small)")
    if not remote:
        if model:
            raise ValueError("model applies to an embeddings endpoint only: give endpoint or base_url too, or drop model")
        problem = embedder.available()
        if problem:
            raise ValueError(problem)
    if template:
        problem = templates.check_syntax(template)
        if problem:
            raise ValueError(f"template: {problem}")

    def backend() -> embedder.Backend:
        if not remote:
            return embedder.local_embedder()
        env = current()
        url, key_env, wait = base_url, api_key_env, timeout
        if endpoint:
            cfg = env.endpoint_config(endpoint)
            url, key_env, wait = cfg["base_url"], api_key_env or cfg.get("api_key_env"), float(cfg.get("timeout", timeout))
        return embedder.EndpointEmbedder(str(url), str(model), api_key_env=key_env, timeout=wait, endpoint=endpoint or str(url),
                                         grants=env.grants)

    def references_for(ctx: ScoreContext) -> list[str]:
        if template:
            variables = {**ctx.sample, **ctx.outputs, "sample": ctx.sample, "outputs": ctx.outputs, "input": ctx.input}
            return [templates.render(template, variables)]
        value = ctx.sample[field]
        return [str(v) for v in (value if isinstance(value, list) else [value])]

    def planned_call(ctx: ScoreContext) -> PlannedCall | None:
        """The embeddings request :func:`score` would make for ``ctx`` (endpoint only), for ``plan``."""
        if not remote:
            return None
        try:
            texts = [ctx.output, *references_for(ctx)]
        except (KeyError, templates.TemplateError):
            return None
        return PlannedCall(endpoint or str(base_url), str(model), sum(len(t.split()) for t in texts), base_url=base_url,
                           texts=texts)

    async def score(ctx: ScoreContext) -> ScoreResult:
        references = references_for(ctx)
        if not ctx.output.strip():
            return ScoreResult(0.0, {"empty_output": True})
        vectors = await current().embeddings(backend()).vectors([ctx.output, *references], usage=ctx.usage)
        if not vectors[0].any():
            # No direction, so no similarity: a cosine of 0 here would be a verdict nobody gave.
            return missing("the embedder gave an all-zero vector for the output", empty_vector="output")
        if not any(v.any() for v in vectors[1:]):
            return missing("the embedder gave an all-zero vector for every reference", empty_vector="reference")
        cosines = [embedder.cosine(vectors[0], v) if v.any() else -1.0 for v in vectors[1:]]
        best = max(range(len(cosines)), key=cosines.__getitem__)
        detail: dict[str, Any] = {"cosine": round(cosines[best], 6)}
        if len(cosines) > 1:
            detail["closest_reference"] = best
        return ScoreResult(embedder.to_unit(cosines[best]), detail)

    score.planned_call = planned_call  # type: ignore[attr-defined]
    return score
