"""One run: a configuration applied to one sample, through every stage, then scored.

Failures are data: a stage that cannot be rendered, an endpoint that keeps failing, a function
stage that raises — each ends the run as ``failed`` with the reason, never the sweep.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import templates
from ..errors import EndpointError, PromptLooperError, ProviderError
from ..functions import resolve_function
from ..hashing import canonical_json, canonical_text, json_encoder
from ..keys import redact
from ..providers import tool_calls
from ..providers.base import Provider
from ..providers.pricing import cost
from ..providers.registry import EndpointPool, split_model
from ..scoring import weighted_score
from ..store import RunRecord, StageRecord, now_iso
from ..sweeps.runs import RunItem
from . import chat
from .calls import CallExecutor, CallResult, call_key

if TYPE_CHECKING:
    from ..scorers.bound import (
        BoundScorer,  # built above the engine (promptlooper.compiled), used as given
    )

_dumps = json_encoder(ensure_ascii=False, default=str)  # as the store encodes values


def _nothing() -> None:
    pass


class _Prepared(NamedTuple):
    ctx: dict[str, Any]
    messages: list[dict[str, str]]
    messages_json: str
    key: str


class _StageCall(NamedTuple):
    provider: Provider
    endpoint: str
    model: str
    params: dict[str, Any]
    params_key: str  # canonical JSON, for the cache key
    params_json: str  # as stored with the stage result


def _messages_json(stage: dict[str, Any], messages: list[dict[str, Any]]) -> str:
    # Rendered templates are strings, which canonical JSON leaves as they are; a conversation from
    # a sample may hold anything, and is normalised like any other value.
    return canonical_json(messages) if "messages" in stage else canonical_text(messages)


def _prompt_record(index: int, stage: dict[str, Any], call: _StageCall, messages: list[dict[str, str]], result: CallResult) -> StageRecord:
    resp = result.response
    return StageRecord(
        stage_index=index, stage_name=stage["name"], kind="prompt", prompt_sent=messages, response_raw=resp.text,
        model_used=resp.model or call.model, endpoint=resp.endpoint or call.endpoint, parameters=call.params, tokens_in=resp.tokens_in,
        tokens_out=resp.tokens_out, latency_ms=resp.latency_ms, cached=result.cached, cache_key=result.key,
        prompt_json=result.messages_json, parameters_json=call.params_json,
    )


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
        self._stage_calls: dict[tuple[str, int, int], _StageCall] = {}

    def price(self, endpoint: str, model: str) -> tuple[float, float]:
        """The pool's price, looked up once per (endpoint, model): its tables are fixed for a sweep,
        and the lookup globs every pattern of every table (~15 µs), for every run."""
        key = (endpoint, model)
        found = self._prices.get(key)
        if found is None:
            found = self._prices[key] = self.pool.price(endpoint, model)
        return found

    async def execute(self, item: RunItem, on_start: Callable[[], None] = _nothing) -> RunRecord:
        """Run ``item`` through every stage and score it; ``on_start`` is called when the run waits
        for a model or runs a function (perhaps more than once: it keeps the first), never for a
        run served wholly from the cache."""
        started_at = now_iso()
        t0 = time.perf_counter()
        config = item.config
        record = RunRecord(
            id=item.run_id, experiment_id=self.experiment_id, config_id=config.id, sample_id=item.sample_id,
            sample_index=item.sample_index, repeat=item.repeat, sweep_id=self.sweep_id, status="completed",
            started_at=started_at, completed_at=started_at, duration_ms=0.0,
        )
        prepared = item.prepared
        item.prepared = None  # used once: a run tried again renders afresh
        ctx: dict[str, Any] = prepared.ctx if prepared is not None else self._context(item)
        outputs: dict[str, Any] = {}
        inputs: dict[str, str] = {}
        all_cached = True
        any_prompt = False
        # Summed as the stages go, in stage order (the same float sums as sum() over them after).
        run_cost: float = 0
        latency: float = 0
        try:
            for index, stage in enumerate(config.stages):
                if stage["kind"] == "prompt":
                    # The call is awaited here, not in a helper coroutine: a cached run waits once
                    # (for its look-up), and every coroutine level costs on the way down and up.
                    call = self._stage_call(config.id, index, stage, item.repeat)
                    if index == 0 and prepared is not None:
                        messages, messages_json, key = prepared.messages, prepared.messages_json, prepared.key
                    else:
                        messages = chat.messages_for(stage, ctx)
                        messages_json, key = _messages_json(stage, messages), None
                    result = await self.calls.call(call.provider, call.model, messages, call.params, call.params_key,
                                                   on_start, messages_json, key)
                    stage_rec = _prompt_record(index, stage, call, messages, result)
                    all_cached &= result.cached
                    any_prompt = True
                    output: Any = result.response.text
                    if "tools" in stage:  # later stages' templates read {{ answer.tool_calls[0].arguments }}
                        output = tool_calls.parse(output) or output
                    inputs[stage["name"]] = messages[-1]["content"] if "messages" not in stage else chat.last_user_text(messages)
                else:
                    on_start()
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

        last = config.stages[-1]["name"]
        record.output = _stage_output_text(outputs[last])
        record.cost = run_cost
        record.latency_ms = latency
        if all_cached and any_prompt:
            record.status = "cached"
        run_info = {"run_id": record.id, "config_id": config.id, "varied": config.varied, "repeat": item.repeat}
        contexts: dict[str, Any] = {}  # one per scored stage, shared by its scorers
        for bound in self.scorers:
            stage_name = bound.spec.stage or last
            ctx_s = contexts.get(stage_name)
            if ctx_s is None:
                ctx_s = contexts[stage_name] = bound.new_context(
                    output=record.output if stage_name == last else _stage_output_text(outputs[stage_name]),
                    sample=item.sample, input=inputs.get(stage_name, ""), outputs=outputs, run=run_info,
                )
            scored = bound.score_now(ctx_s)
            value, detail = scored if type(scored) is tuple else await bound.finish(scored)
            record.scores.append((bound.spec.column, value, detail, bound.spec.name, bound.args_json))
        for ctx_s in contexts.values():  # calls the scorers made (judge, embeddings) count in the run
            for endpoint, model, tokens_in, tokens_out in ctx_s.usage.calls:
                record.tokens_in += tokens_in
                record.tokens_out += tokens_out
                record.cost += cost(tokens_in, tokens_out, self.price(endpoint, model))
        # The formula re-scoring uses too: a sweep and a re-score must agree to the last digit.
        record.score = weighted_score(record.scores, self.weights)
        record.completed_at = now_iso()
        record.duration_ms = (time.perf_counter() - t0) * 1000
        return record

    def _fail(self, record: RunRecord, t0: float, reason: str) -> RunRecord:
        record.status = "failed"
        record.error = redact(reason)  # the run's error feeds events, webhooks, `show` and MCP replies
        record.completed_at = now_iso()
        record.duration_ms = (time.perf_counter() - t0) * 1000
        return record

    def stage_cost(self, stage: StageRecord) -> float:
        if stage.kind != "prompt" or not stage.endpoint:
            return 0.0
        return cost(stage.tokens_in, stage.tokens_out, self.price(stage.endpoint, stage.model_used or ""))

    @staticmethod
    def _context(item: RunItem) -> dict[str, Any]:
        """What templates see: the sample's fields, the sample itself, the configuration's variables."""
        return {**item.sample, "sample": item.sample, **item.config.vars}

    def prepare(self, items: list[RunItem]) -> None:
        """Render the first call of each item ahead and look all their keys up in one query.

        A run whose look-up is already answered never waits: a cache hit then costs no future, no
        task switch and no coroutine resumed (~15% of a fully cached run). Anything that fails here
        (a template, an endpoint) is left for :meth:`execute` to fail with its usual message.
        """
        keys, config_ids = [], []
        for item in items:
            stage = item.config.stages[0]
            if stage["kind"] != "prompt":
                continue
            try:
                ctx = self._context(item)
                call = self._stage_call(item.config.id, 0, stage, item.repeat)
                messages = chat.messages_for(stage, ctx)
            except Exception:  # noqa: BLE001, S112 - execute() renders again and reports it
                continue
            messages_json = _messages_json(stage, messages)
            key, _ = call_key(call.provider.identity, call.model, messages, call.params_key, messages_json)
            item.prepared = _Prepared(ctx, messages, messages_json, key)
            keys.append(key)
            config_ids.append(item.config.id)
        self.calls.prefetch(keys, config_ids)

    def _stage_call(self, config_id: str, index: int, stage: dict[str, Any], repeat: int) -> _StageCall:
        """What a prompt stage's calls share for one configuration and repeat, made once."""
        key = (config_id, index, repeat)
        found = self._stage_calls.get(key)
        if found is None:
            params = chat.call_params(stage, repeat)
            endpoint, model = split_model(stage["model"])
            if len(self._stage_calls) >= 65536:  # bounded, whatever the number of configurations
                self._stage_calls.clear()
            # The key needs canonical JSON (1.0 as 1); the stage result keeps the values as written.
            found = self._stage_calls[key] = _StageCall(
                self.pool.provider(endpoint), endpoint, model, params, canonical_json(params), _dumps(params))
        return found

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

