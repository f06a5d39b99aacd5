"""`plan`: before any call, how many calls a sweep needs, how many are cached, tokens and cost.

Every model call of a run is counted: its prompt stages and the calls its scorers make (a judge;
the ``embedding`` scorer on an endpoint). A run is followed through the cache as far as it goes:
the first stage's prompt depends only on the sample and the configuration, so its call is looked
up; when it is cached, its reply is the next stage's input, whose call is then rendered and looked
up in turn, and so on down to the scorers. Where a call is not cached (or a function stage comes
first), what follows is counted as calls to make, estimated. Tokens are estimated from the prompt
length (about 1.3 tokens per word) plus the model's mean output in the cache, else ``max_tokens``
(else 128). Models no price table knows are listed (``unpriced_models``): their cost counts as 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .engine import chat
from .engine.calls import call_key
from .engine.runner import run_id
from .hashing import canonical_json
from .providers.pricing import cost
from .providers.registry import EndpointPool, split_model
from .samples import sample_id
from .scorers import base as scorer_registry
from .spec import Experiment
from .store import Store

TOKENS_PER_WORD = 1.3
DEFAULT_OUT = 128.0


@dataclass
class _Run:
    config: Any
    repeat: int
    ctx: dict[str, Any]
    sample: dict[str, Any]
    known: bool = True  # every stage so far came from the cache: its outputs are known
    outputs: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    last_out: float = 0.0  # estimated output tokens of the last stage, when not known


@dataclass
class _Tally:
    calls: int = 0
    cached: int = 0
    scorer_calls: int = 0
    cached_scorer_calls: int = 0
    tokens: float = 0.0
    cost: float = 0.0
    unpriced: set[str] = field(default_factory=set)


def _words(messages: list[dict[str, str]]) -> int:
    return sum(len(str(m.get("content") or "").split()) for m in messages)


class _Planner:
    def __init__(self, store: Store, pool: EndpointPool):
        self.store = store
        self.pool = pool
        self.mean_out = store.mean_tokens_out_by_model()
        self.tally = _Tally()
        self._env: Any = None

    def out_tokens(self, model: str, params: dict[str, Any]) -> float:
        return self.mean_out.get(model) or float(params.get("max_tokens") or DEFAULT_OUT)

    def spend(self, endpoint: str, model: str, tokens_in: float, tokens_out: float) -> None:
        """A call to make: its estimated tokens and cost."""
        self.tally.tokens += tokens_in + tokens_out
        self.tally.cost += cost(int(tokens_in), int(tokens_out), self.pool.price(endpoint, model))

    def note_model(self, endpoint: str, model: str) -> None:
        if not self.pool.has_price(endpoint, model):
            self.tally.unpriced.add(f"{endpoint}/{model}")

    def provider_identity(self, endpoint: str, base_url: str | None, api_key_env: str | None) -> str:
        """The identity a scorer's call is keyed with: that of the provider the scorer would use."""
        if base_url is None:
            return self.pool.provider(endpoint).identity
        if self._env is None:
            from .scorers.env import ScoringEnv

            self._env = ScoringEnv(store=self.store, pool=self.pool)
        return str(self._env.provider(endpoint, base_url=base_url, api_key_env=api_key_env).identity)

    # ------------------------------------------------------------------ stages
    def stages(self, runs: list[_Run]) -> None:
        """Follow every run's prompt stages through the cache, one stage at a time for all runs."""
        n_stages = max((len(run.config.stages) for run in runs), default=0)
        for k in range(n_stages):
            wanted: list[tuple[_Run, str, str, dict[str, Any], list[dict[str, str]], str]] = []
            for run in runs:
                if k >= len(run.config.stages):
                    continue
                stage = run.config.stages[k]
                if stage["kind"] != "prompt":
                    run.known = False  # a function's output is not known before it runs
                    continue
                endpoint, model = split_model(stage["model"])
                self.note_model(endpoint, model)
                params = chat.call_params(stage, run.repeat)
                out = self.out_tokens(model, params)
                self.tally.calls += 1
                if run.known:
                    messages = chat.messages_for(stage, run.ctx)
                    key, _ = call_key(self.pool.provider(endpoint).identity, model, messages, canonical_json(params))
                    wanted.append((run, endpoint, model, params, messages, key))
                    run.last_out = out
                    continue
                in_tokens = TOKENS_PER_WORD * (len(str(stage.get("user") or "").split()) + len(str(stage.get("system") or "").split()))
                self.spend(endpoint, model, in_tokens + run.last_out, out)
                run.last_out = out
            hits = self.store.cache_get_many([w[-1] for w in wanted]) if wanted else {}
            for run, endpoint, model, _params, messages, key in wanted:
                name = run.config.stages[k]["name"]
                hit = hits.get(key)
                if hit is not None:
                    self.tally.cached += 1
                    run.outputs[name] = run.ctx[name] = run.ctx["previous"] = hit[0]
                    run.inputs[name] = messages[-1]["content"]
                    continue
                self.spend(endpoint, model, TOKENS_PER_WORD * _words(messages), run.last_out)
                run.known = False

    # ------------------------------------------------------------------ scorers
    def scorers(self, runs: list[_Run], exp: Experiment, first_sample: dict[str, Any]) -> None:
        """The calls each scorer makes per run, looked up when the run's outputs are known."""
        for spec in exp.scorers:
            fn = scorer_registry.build(spec.name, spec.args)
            planned = getattr(fn, "planned_call", None)
            if planned is None:
                continue
            probe = planned(scorer_registry.ScoreContext(output="", sample=first_sample))
            if probe is not None:
                self.note_model(probe.endpoint, probe.model)
            wanted = []
            for run in runs:
                stage_name = spec.stage or run.config.stages[-1]["name"]
                outputs = run.outputs if run.known else {st["name"]: "" for st in run.config.stages}
                ctx = scorer_registry.ScoreContext(output=str(outputs.get(stage_name, "")), sample=run.sample,
                                                   input=run.inputs.get(stage_name, ""), outputs=outputs)
                call = planned(ctx)
                if call is None:
                    continue
                self.tally.calls += 1
                self.tally.scorer_calls += 1
                self.note_model(call.endpoint, call.model)
                out = self.out_tokens(call.model, call.params) if call.messages is not None else 0.0
                in_tokens = TOKENS_PER_WORD * call.words + (0.0 if run.known else run.last_out)
                if run.known:
                    wanted.append((call, in_tokens, out))
                else:
                    self.spend(call.endpoint, call.model, in_tokens, out)
            self._look_up_scorer_calls(wanted)

    def _look_up_scorer_calls(self, wanted: list[tuple[scorer_registry.PlannedCall, float, float]]) -> None:
        from .embedder import cache_key as embedding_key

        chat: dict[int, str] = {}
        texts: dict[int, list[str]] = {}
        for call, _, _ in wanted:
            if call.messages is not None:
                identity = self.provider_identity(call.endpoint, call.base_url, call.api_key_env)
                chat[id(call)] = call_key(identity, call.model, call.messages, canonical_json(call.params))[0]
            elif call.texts is not None:
                base_url = call.base_url or self.pool.configs.get(call.endpoint, {}).get("base_url", "")
                identity = f"{str(base_url).rstrip('/')}|{call.model}"  # EndpointEmbedder.identity
                texts[id(call)] = [embedding_key(identity, t) for t in call.texts]
        hits = self.store.cache_get_many(list(chat.values())) if chat else {}
        stored = self.store.embedding_vectors(sorted({k for keys in texts.values() for k in keys})) if texts else {}
        for call, in_tokens, out in wanted:
            if call.messages is not None:
                cached = chat[id(call)] in hits
            else:
                cached = id(call) in texts and all(k in stored for k in texts[id(call)])
            if cached:
                self.tally.cached += 1
                self.tally.cached_scorer_calls += 1
            else:
                self.spend(call.endpoint, call.model, in_tokens, out)


def plan(store: Store, exp: Experiment, configs: list[Any], samples: list[dict[str, Any]], pool: EndpointPool) -> dict[str, Any]:
    try:
        experiment_id = store.experiment(exp.key)["id"]
        finished = store.finished_run_ids(experiment_id)
    except Exception:  # noqa: BLE001 - a new experiment has no finished runs
        experiment_id, finished = "", set()
    planner = _Planner(store, pool)
    runs: list[_Run] = []
    total = 0
    sids = [(sample_id(s), s) for s in samples]
    for config in configs:
        for sid, sample in sids:
            for rep in range(exp.repeat):
                total += 1
                if run_id(experiment_id, config.id, sid, rep) in finished:
                    continue
                runs.append(_Run(config, rep, {**sample, "sample": sample, **config.vars}, sample))
    for config in configs:  # every model the experiment calls is named, whatever remains to run
        for st in config.stages:
            if st["kind"] == "prompt":
                planner.note_model(*split_model(st["model"]))
    planner.stages(runs)
    planner.scorers(runs, exp, samples[0] if samples else {})
    t = planner.tally
    return {
        "experiment": exp.key, "configurations": len(configs), "samples": len(samples), "repeat": exp.repeat,
        "runs": total, "finished_runs": total - len(runs), "remaining_runs": len(runs),
        "calls": t.calls, "cached_calls": t.cached, "calls_to_make": t.calls - t.cached,
        "scorer_calls": t.scorer_calls, "cached_scorer_calls": t.cached_scorer_calls,
        "estimated_tokens": int(round(t.tokens)), "estimated_cost": round(t.cost, 6),
        "unpriced_models": sorted(t.unpriced),
    }
