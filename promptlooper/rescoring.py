"""Re-scoring: compute scores again for finished runs from their stored outputs, with no model call.

Every finished run keeps its stage outputs (``stage_results``) and the prompt each prompt stage
sent, and the experiment keeps its samples, so a scorer added or changed after a sweep can be
applied to the whole history: the runs are never executed again. Only judges call models, and
their calls go through the response cache (an identical judge call is never made twice);
``model_calls=False`` skips them altogether.

With the experiment's own scorers (the default), automatic scores of scorers no longer in the
experiment are dropped; with ``scorers=[...]`` only those columns are (re)written. Human ratings
are never touched. Each run's weighted score is then recomputed from its automatic scores with the
experiment's weights, as the leaderboard does: a scorer that is not in the experiment is a column
of its own until the experiment gives it a weight.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .engine.chat import last_user_text
from .engine.runner import BoundScorer
from .errors import Problem, PromptLooperError, SpecError
from .keys import KeyGrants
from .providers.registry import EndpointPool
from .ratings import refresh_human_scores
from .samples import read_samples, sample_id
from .scorers.base import ScoreContext, check_args, computed, get
from .scorers.env import ScoringEnv, using
from .scoring import weights_of
from .spec import ScorerSpec, parse_endpoint
from .store import Store, now_iso
from .store.scores import ScoreRow

CHUNK = 500  # runs scored and written per transaction


def _scorer_specs(raw: Sequence[ScorerSpec | dict[str, Any] | str]) -> list[ScorerSpec]:
    specs = [s if isinstance(s, ScorerSpec) else ScorerSpec.model_validate(s) for s in raw]
    problems: list[Problem] = []
    for i, spec in enumerate(specs):
        try:
            get(spec.name)
        except PromptLooperError as exc:
            problems.append(Problem(f"scorers[{i}].name", str(exc)))
            continue
        problems += [Problem(f"scorers[{i}].{path}", msg) for path, msg in check_args(spec.name, spec.args)]
    if problems:
        raise SpecError(problems)
    return specs


def _samples(spec: dict[str, Any], given: Sequence[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    raw = spec.get("samples")
    if given is not None:
        samples = list(given)
    elif isinstance(raw, list):
        samples = raw
    else:
        rows, problems = read_samples(Path(str(raw)).expanduser())
        if problems:
            raise SpecError([Problem(p.path, p.message, "pass samples=[...] (or run from the experiment file's folder)") for p in problems])
        samples = rows
    return {sample_id(s): s for s in samples}


def _stage_output(kind: str, text: str | None) -> Any:
    if kind == "function" and text and text[:1] in "[{":
        try:
            return json.loads(text)  # a function stage's object output was stored as JSON
        except ValueError:
            pass
    return text or ""


def _contexts(run: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], dict[str, str], str]:
    """(stage outputs, their texts, each prompt stage's user message, the last stage's name)."""
    outputs: dict[str, Any] = {}
    texts: dict[str, str] = {}
    inputs: dict[str, str] = {}
    last = ""
    for name, kind, prompt_sent, response in run["stages"]:
        outputs[name] = _stage_output(kind, response)
        texts[name] = response or ""
        if kind == "prompt" and prompt_sent:
            messages = json.loads(prompt_sent)
            inputs[name] = last_user_text(messages) if messages else ""  # as the runner gives scorers
        last = name
    if last and run["output"] is not None:
        texts[last] = run["output"]
    return outputs, texts, inputs, last


async def arescore(store: Store, experiment_ref: str, scorers: Sequence[ScorerSpec | dict[str, Any] | str] | None = None, *,
                   model_calls: bool = True, samples: Sequence[dict[str, Any]] | None = None, concurrency: int = 8) -> dict[str, Any]:
    """Async form of :func:`rescore`."""
    if store.readonly:
        raise PromptLooperError("this workbench is read-only; open it without readonly=True to re-score")
    experiment = store.experiment(experiment_ref)
    spec = experiment["spec"]
    own = scorers is None
    specs = _scorer_specs(spec.get("scorers", []) if own else scorers)  # type: ignore[arg-type]
    skipped = [s.column for s in specs if not model_calls and get(s.name).model_calls]
    bound = [BoundScorer(s) for s in computed(specs) if s.column not in skipped]
    by_id = _samples(spec, samples)
    runs = store.finished_runs_with_stages(experiment["id"])
    # The experiment's weights, as the leaderboard uses: extra scorers are columns, not part of the score.
    weights = weights_of(spec.get("scorers", []))
    labels = [b.spec.column for b in bound]
    inline = {k: parse_endpoint(v) for k, v in (spec.get("endpoints") or {}).items()}
    env = ScoringEnv(store=store, pool=EndpointPool(store.endpoints(), inline, grants=KeyGrants(store)), concurrency=concurrency, flush_every=64)
    limit = asyncio.Semaphore(concurrency)
    summary: dict[str, Any] = {"experiment": f"{experiment['project']}/{experiment['name']}", "runs": 0, "scores": 0,
                               "kept": 0, "missing_sample": 0, "failed": 0, "failures": {}, "scorers": labels,
                               "skipped_scorers": skipped}

    async def score_run(run: dict[str, Any]) -> tuple[str, list[tuple[str, float | None, Any, str, Any]]] | None:
        sample = by_id.get(run["sample_id"])
        if sample is None:
            return None
        outputs, texts, inputs, last = _contexts(run)
        info = {"run_id": run["id"], "config_id": run["config_id"], "varied": run["varied"], "repeat": run["repeat"]}
        rows = []
        async with limit:
            for b in bound:
                stage = b.spec.stage or last
                ctx = ScoreContext(output=texts.get(stage, ""), sample=sample, input=inputs.get(stage, ""), outputs=outputs, run=info)
                value, detail = await b.score(ctx)
                rows.append((b.spec.column, value, detail, b.spec.name, b.spec.args))
        return run["id"], rows

    # People's ratings are not computed: the experiment's `human` columns are refreshed from them.
    await asyncio.to_thread(refresh_human_scores, store, experiment["id"], [r["id"] for r in runs])
    try:
        with using(env):
            for start in range(0, len(runs), CHUNK):
                results = await asyncio.gather(*(score_run(r) for r in runs[start : start + CHUNK]))
                await env.flush()
                done = [r for r in results if r is not None]
                summary["missing_sample"] += len(results) - len(done)
                _count_failures(summary, done)
                counts = await asyncio.to_thread(_write, store, done, weights, labels if own else None)
                summary["runs"] += len(done)
                summary["scores"] += counts[0]
                summary["kept"] += counts[1]
    finally:
        await env.aclose()
        await env.pool.aclose()
    summary.update(env.stats)
    store.add_event(experiment["id"], "experiment.rescored", {k: v for k, v in summary.items() if k != "experiment"})
    return summary


def _count_failures(summary: dict[str, Any], results: list[tuple[str, list[tuple[str, float | None, Any, str, Any]]]]) -> None:
    """Count the scores that failed (missing scores), grouped by scorer column and reason."""
    for _, rows in results:
        for label, value, detail, *_ in rows:
            if value is None:
                summary["failed"] += 1
                reason = f"{label}: {str((detail or {}).get('error', 'no score'))[:200]}"
                summary["failures"][reason] = summary["failures"].get(reason, 0) + 1


def _write(store: Store, results: list[tuple[str, list[tuple[str, float | None, Any, str, Any]]]], weights: dict[str, float],
           keep_only: list[str] | None) -> tuple[int, int]:
    """Write score rows and each run's weighted score; returns (rows written, failed judge calls kept)."""
    kept = 0
    fresh: list[tuple[str, list[ScoreRow]]] = []
    for run_id, rows in results:
        scores: list[ScoreRow] = []
        for label, value, detail, name, args in rows:
            if detail and detail.get("call_failed"):
                kept += 1  # an endpoint failure is not a verdict: keep the earlier score
                continue
            scores.append((label, value, detail, name, args))
        fresh.append((run_id, scores))
    return store.replace_auto_scores(fresh, weights, now_iso(), keep_only), kept


def rescore(store: Store, experiment_ref: str, scorers: Sequence[ScorerSpec | dict[str, Any] | str] | None = None, *,
            model_calls: bool = True, samples: Sequence[dict[str, Any]] | None = None, concurrency: int = 8) -> dict[str, Any]:
    """Re-score every finished run of an experiment from its stored outputs; returns a summary.

    ``scorers``: scorer specs (``{name: embedding, field: reference}``, ScorerSpec or a name);
    default: the experiment's own. ``model_calls=False`` skips judges. ``samples``: the
    experiment's samples, when its samples file cannot be found from here. The summary has the
    runs re-scored, score rows written, judge ``calls`` and ``cache_hits``, how many runs were
    skipped for lack of their sample, and how many scores ``failed`` (missing: a judge reply with
    no grade, a failed call, a scorer error), their reasons counted in ``failures``.
    """
    from .asyncutil import run_sync

    return run_sync(arescore(store, experiment_ref, scorers, model_calls=model_calls, samples=samples,  # type: ignore[no-any-return]
                             concurrency=concurrency))


__all__ = ["arescore", "rescore"]
