"""`plan`: before any call, how many calls a sweep needs, how many are cached, tokens and cost.

First-stage calls are known exactly (their prompts depend only on samples and configuration), so
their cache hits are counted exactly; later stages depend on earlier outputs and are counted as
needed calls (an upper bound when earlier stages hit the cache). Tokens are estimated from the
prompt length (about 1.3 tokens per word) plus the model's mean output in the cache, else
``max_tokens`` (else 128).
"""

from __future__ import annotations

from typing import Any

from . import templates
from .engine.calls import cache_key_material
from .engine.runner import run_id
from .hashing import content_hash
from .providers.pricing import cost
from .providers.registry import EndpointPool, split_model
from .samples import sample_id
from .spec import Experiment
from .store import Store

TOKENS_PER_WORD = 1.3


def plan(store: Store, exp: Experiment, configs: list[Any], samples: list[dict[str, Any]], pool: EndpointPool) -> dict[str, Any]:
    try:
        experiment_id = store.experiment(exp.key)["id"]
        finished = store.finished_run_ids(experiment_id)
    except Exception:  # noqa: BLE001 - a new experiment has no finished runs
        experiment_id, finished = "", set()
    mean_out: dict[str, float] = {}
    with store.cx.read() as c:
        for model, avg in c.execute("SELECT model, AVG(tokens_out) FROM response_cache GROUP BY model"):
            mean_out[model] = float(avg or 0)
    runs = remaining = calls = 0
    tokens_in = tokens_out = 0.0
    est_cost = 0.0
    keys: list[str] = []
    sids = [(sample_id(s), s) for s in samples]
    for config in configs:
        prompt_stages = [st for st in config.stages if st["kind"] == "prompt"]
        for sid, sample in sids:
            for rep in range(exp.repeat):
                runs += 1
                if run_id(experiment_id, config.id, sid, rep) in finished:
                    continue
                remaining += 1
                ctx = {**sample, "sample": sample, **config.vars}
                for k, st in enumerate(prompt_stages):
                    endpoint, model = split_model(st["model"])
                    params = dict(st["params"])
                    if rep:
                        params["seed"] = int(params.get("seed", 0)) + rep
                    out_tokens = mean_out.get(model) or float(params.get("max_tokens") or 128)
                    if k == 0 and config.stages[0]["kind"] == "prompt":
                        messages = []
                        if st.get("system"):
                            messages.append({"role": "system", "content": templates.render(st["system"], ctx)})
                        messages.append({"role": "user", "content": templates.render(st["user"], ctx)})
                        in_tokens = TOKENS_PER_WORD * sum(len(m["content"].split()) for m in messages)
                        keys.append(content_hash("call", cache_key_material(pool.provider(endpoint), model, messages, params)))
                    else:
                        in_tokens = TOKENS_PER_WORD * (len(str(st["user"]).split()) + len(str(st.get("system") or "").split())) + out_tokens
                    calls += 1
                    tokens_in += in_tokens
                    tokens_out += out_tokens
                    est_cost += cost(int(in_tokens), int(out_tokens), pool.price(endpoint, model))
    hits = store.cache_get_many(keys) if keys else {}
    cached = len([k for k in keys if k in hits])
    # Cached first-stage calls spend nothing: take their share out of the estimate.
    share = cached / calls if calls else 0.0
    return {
        "experiment": exp.key, "configurations": len(configs), "samples": len(samples), "repeat": exp.repeat,
        "runs": runs, "finished_runs": runs - remaining, "remaining_runs": remaining,
        "calls": calls, "cached_calls": cached, "calls_to_make": calls - cached,
        "estimated_tokens": int((tokens_in + tokens_out) * (1 - share)),
        "estimated_cost": round(est_cost * (1 - share), 6),
    }
