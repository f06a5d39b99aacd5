"""One run: a configuration applied to one sample, through every stage, then scored.

Failures are data: a stage that cannot be rendered, an endpoint that keeps failing, a function
stage that raises — each ends the run as ``failed`` with the reason, never the sweep.
"""

from __future__ import annotations

import inspect
import json
import math
import time
from dataclasses import dataclass
from typing import Any

from .. import templates
from ..errors import EndpointError, PromptLooperError, ProviderError
from ..functions import resolve_function
from ..hashing import content_hash
from ..providers.pricing import cost
from ..providers.registry import EndpointPool, split_model
from ..scorers.base import ScoreContext, ScoreResult, build
from ..spec import ScorerSpec
from ..store import RunRecord, StageRecord, now_iso
from ..sweeps.space import Configuration
from .calls import CallExecutor


@dataclass(frozen=True)
class RunItem:
    config: Configuration
    sample: dict[str, Any]
    sample_id: str
    sample_index: int
    repeat: int
    # Hashed once (the plan already computes it to skip finished runs), not on every use.
    run_id: str = ""

    def __post_init__(self) -> None:
        if not self.run_id:
            raise ValueError("RunItem needs its run_id (see run_id(experiment_id, ...))")


def run_id(experiment_id: str, config_id: str, sample_id: str, repeat: int) -> str:
    # A run belongs to its experiment (a fork runs the same configuration as new runs of its own);
    # calls are what is shared between experiments, through the cache.
    return content_hash("run", [experiment_id, config_id, sample_id, repeat])[:32]


_PLAIN_SCORES = (float, int, ScoreResult)


class BoundScorer:
    """A scorer spec with its built function, ready to score many runs."""

    def __init__(self, spec: ScorerSpec):
        self.spec = spec
        self.fn = build(spec.name, spec.args)
        self.is_async = inspect.iscoroutinefunction(self.fn)

    async def score(self, ctx: ScoreContext) -> tuple[float, dict[str, Any] | None]:
        try:
            value: Any = self.fn(ctx)
            # Most scorers are sync and return one of these; isawaitable's ABC check costs more.
            if type(value) not in _PLAIN_SCORES and inspect.isawaitable(value):
                value = await value
        except Exception as exc:  # noqa: BLE001 - a scorer bug is recorded, not fatal
            return 0.0, {"error": f"{type(exc).__name__}: {exc}"}
        detail = None
        if isinstance(value, ScoreResult):
            value, detail = value.value, value.detail
        value = float(value)
        if math.isnan(value):
            return 0.0, {"error": "scorer returned NaN"}
        return min(1.0, max(0.0, value)), detail


def weighted(scores: list[tuple[str, float, Any, str, Any]], weights: dict[str, float]) -> float | None:
    total = sum(weights.get(label, 0.0) for label, *_ in scores)
    if not scores or total <= 0:
        return None
    return sum(weights.get(label, 0.0) * value for label, value, *_ in scores) / total


def _stage_output_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


async def _call_function(fn: Any, ctx: dict[str, Any], params: dict[str, Any]) -> Any:
    sig = inspect.signature(fn)
    takes_all = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    kwargs = {**params}
    for name in sig.parameters:
        if name == "context":
            kwargs["context"] = ctx
        elif name in ctx and name not in kwargs:
            kwargs[name] = ctx[name]
    if takes_all:
        kwargs = {**ctx, **kwargs}
    if inspect.iscoroutinefunction(fn):
        return await fn(**kwargs)
    result = fn(**kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


class Runner:
    def __init__(
        self,
        experiment_id: str,
        sweep_id: str | None,
        pool: EndpointPool,
        calls: CallExecutor,
        scorers: list[BoundScorer],
        functions: dict[str, Any] | None = None,
    ):
        self.functions = functions or {}
        self.experiment_id = experiment_id
        self.sweep_id = sweep_id
        self.pool = pool
        self.calls = calls
        self.scorers = scorers
        self.weights = {s.spec.column: s.spec.weight for s in scorers}
        self._prices: dict[tuple[str, str], tuple[float, float]] = {}

    def price(self, endpoint: str, model: str) -> tuple[float, float]:
        """The pool's price, looked up once per (endpoint, model): its tables are fixed for a sweep,
        and the lookup globs every pattern of every table (~15 µs), for every run."""
        key = (endpoint, model)
        found = self._prices.get(key)
        if found is None:
            found = self._prices[key] = self.pool.price(endpoint, model)
        return found

    async def execute(self, item: RunItem) -> RunRecord:
        started_at = now_iso()
        t0 = time.perf_counter()
        record = RunRecord(
            id=item.run_id, experiment_id=self.experiment_id, config_id=item.config.id, sample_id=item.sample_id,
            sample_index=item.sample_index, repeat=item.repeat, sweep_id=self.sweep_id, status="completed",
            started_at=started_at, completed_at=started_at, duration_ms=0.0,
        )
        ctx: dict[str, Any] = {**item.sample, "sample": item.sample, **item.config.vars}
        outputs: dict[str, Any] = {}
        inputs: dict[str, str] = {}
        all_cached = True
        any_prompt = False
        # Summed as the stages go, in stage order (the same float sums as sum() over them after).
        run_cost: float = 0
        latency: float = 0
        try:
            for index, stage in enumerate(item.config.stages):
                if stage["kind"] == "prompt":
                    stage_rec, text, cached = await self._prompt_stage(index, stage, ctx, item.repeat)
                    all_cached &= cached
                    any_prompt = True
                    output: Any = text
                    inputs[stage["name"]] = stage_rec.prompt_sent[-1]["content"]
                else:
                    stage_rec, output = await self._function_stage(index, stage, ctx)
                record.stages.append(stage_rec)
                record.tokens_in += stage_rec.tokens_in
                record.tokens_out += stage_rec.tokens_out
                run_cost += self.stage_cost(stage_rec)
                latency += stage_rec.latency_ms or 0.0
                outputs[stage["name"]] = output
                ctx[stage["name"]] = output
                ctx["previous"] = output
        except (ProviderError, EndpointError, templates.TemplateError, PromptLooperError) as exc:
            return self._fail(record, t0, str(exc))
        except Exception as exc:  # noqa: BLE001 - a user function's bug fails this run only
            return self._fail(record, t0, f"{type(exc).__name__}: {exc}")

        last = item.config.stages[-1]["name"]
        record.output = _stage_output_text(outputs[last])
        record.cost = run_cost
        record.latency_ms = latency
        if all_cached and any_prompt:
            record.status = "cached"
        run_info = {"run_id": record.id, "config_id": item.config.id, "varied": item.config.varied, "repeat": item.repeat}
        for bound in self.scorers:
            stage_name = bound.spec.stage or last
            ctx_s = ScoreContext(
                output=_stage_output_text(outputs[stage_name]), sample=item.sample,
                input=inputs.get(stage_name, ""), outputs=outputs, run=run_info,
            )
            value, detail = await bound.score(ctx_s)
            record.scores.append((bound.spec.column, value, detail, bound.spec.name, bound.spec.args))
        record.score = weighted(record.scores, self.weights)
        record.completed_at = now_iso()
        record.duration_ms = (time.perf_counter() - t0) * 1000
        return record

    def _fail(self, record: RunRecord, t0: float, reason: str) -> RunRecord:
        record.status = "failed"
        record.error = reason
        record.completed_at = now_iso()
        record.duration_ms = (time.perf_counter() - t0) * 1000
        return record

    def stage_cost(self, stage: StageRecord) -> float:
        if stage.kind != "prompt" or not stage.endpoint:
            return 0.0
        return cost(stage.tokens_in, stage.tokens_out, self.price(stage.endpoint, stage.model_used or ""))

    async def _prompt_stage(self, index: int, stage: dict[str, Any], ctx: dict[str, Any], repeat: int) -> tuple[StageRecord, str, bool]:
        messages = []
        if stage.get("system"):
            messages.append({"role": "system", "content": templates.render(stage["system"], ctx)})
        messages.append({"role": "user", "content": templates.render(stage["user"], ctx)})
        endpoint, model = split_model(stage["model"])
        provider = self.pool.provider(endpoint)
        params = dict(stage["params"])
        if repeat:
            # Each repeat is a distinct sample of the model: a distinct seed and cache key.
            params["seed"] = int(params.get("seed", 0)) + repeat
        result = await self.calls.call(provider, model, messages, params)
        resp = result.response
        rec = StageRecord(
            stage_index=index, stage_name=stage["name"], kind="prompt", prompt_sent=messages, response_raw=resp.text,
            model_used=model, endpoint=endpoint, parameters=params, tokens_in=resp.tokens_in, tokens_out=resp.tokens_out,
            latency_ms=resp.latency_ms, cached=result.cached, cache_key=result.key,
        )
        return rec, resp.text, result.cached

    async def _function_stage(self, index: int, stage: dict[str, Any], ctx: dict[str, Any]) -> tuple[StageRecord, Any]:
        fn = self.functions.get(stage["name"]) or resolve_function(stage["function"])
        t0 = time.perf_counter()
        try:
            output = await _call_function(fn, ctx, stage["params"])
        except Exception as exc:
            raise PromptLooperError(f"stage {stage['name']!r} raised {type(exc).__name__}: {exc}") from exc
        rec = StageRecord(
            stage_index=index, stage_name=stage["name"], kind="function", prompt_sent=None,
            response_raw=_stage_output_text(output), model_used=stage["function"], parameters=stage["params"],
            latency_ms=(time.perf_counter() - t0) * 1000,
        )
        return rec, output

