"""Tools that run: one configuration (blocking), a whole sweep (in the background), a run's detail.

``run_sweep`` returns once the sweep holds its lease (or has ended, e.g. refused): it waits on the
handle's :meth:`~promptlooper.engine.handle.SweepHandle.started`, an event, not a poll.
"""

from __future__ import annotations

from typing import Any

from ..spec import Linked
from .boundary import ArgumentError, argument
from .context import ToolContext, key
from .replies import truncate
from .schemas import (
    Concurrency,
    ExperimentRef,
    Full,
    MaxCalls,
    MaxConfigs,
    Point,
    RunRef,
    Seed,
    Strategy,
)

STARTED_WITHIN = 5.0  # seconds run_sweep waits for the lease before replying with what it knows


def check_point(context: ToolContext, row: dict[str, Any], point: dict[str, Any], arg: str) -> None:
    """A point names one value for every space key and nothing else (an agent's typo is not a default)."""
    axes = context.wb.load(row["id"]).space
    for k, v in point.items():
        if isinstance(v, list | dict) and not (isinstance(v, dict) and isinstance(axes.get(k), Linked)):  # a bundle is one value
            raise ArgumentError(f"{arg}.{k}", "give one value, not a list or range (run_sweep / fork_experiment sweep several)")
    space = list(axes)
    unknown = [k for k in point if k not in space]
    missing = [k for k in space if k not in point]
    if unknown or missing:
        parts = ([f"not space keys: {', '.join(unknown)}"] if unknown else []) + \
                ([f"missing values for: {', '.join(missing)}"] if missing else [])
        raise ArgumentError(arg, f"{'; '.join(parts)} (the space keys are: {', '.join(space) or 'none'})")


def start_sweep(context: ToolContext, experiment: str, *, strategy: str | None = None, max_configs: int | None = None,
                seed: int | None = None, concurrency: int | None = None, max_calls: int | None = None) -> dict[str, Any]:
    """Start a sweep in the background (run_sweep, fork_experiment with start=true)."""
    wb, exp = context.wb, context.load(experiment)
    with argument("experiment"):
        size = wb.sweep_size(exp, strategy=strategy, max_configs=max_configs)
    refusal = size.refusal(max_calls)
    if refusal:
        raise ArgumentError("max_calls", refusal)
    with argument("experiment"):
        handle = wb.start(exp, strategy=strategy, max_configs=max_configs, seed=seed, concurrency=concurrency)
    handle.started(STARTED_WITHIN)  # a sweep refused at its start (e.g. another process holds it) raises here
    progress = handle.progress
    return {"experiment": exp.key, "sweep_id": (handle.sweep_id or "")[:8], "status": progress.status,
            "total_runs": progress.total, "done": progress.done,
            "poll": "get_experiment_status", "steer": "pause_sweep / resume_sweep / stop_sweep / redirect_sweep"}


def register(server: Any, context: ToolContext) -> None:
    wb, tool = context.wb, context.tool(server)

    @tool
    def run_single(experiment: ExperimentRef, point: Point, full: Full = False) -> dict[str, Any]:
        """Run ONE configuration of an experiment on all its samples and return its score and outputs
        (blocks until done; calls already made come from the cache)."""
        row = context.experiment(experiment)
        check_point(context, row, point, "point")
        with argument("point"):
            [result] = wb.evaluate(row["id"], [point])
        target, cid = key(row), str(result["config_id"])
        runs = wb.runs(target, cid) if cid else []
        return {"experiment": target, "config_id": cid[:12], "point": point, "score": result.get("score"),
                "n": result.get("n"),
                "runs": [{"run_id": r["id"][:12], "sample": r["sample_index"], "status": r["status"], "score": r["score"],
                          "output": truncate(r["output"], full), **({"error": r["error"]} if r.get("error") else {})}
                         for r in runs[: None if full else 5]],
                **({"more_runs": len(runs) - 5} if not full and len(runs) > 5 else {})}

    @tool
    def run_sweep(
        experiment: ExperimentRef,
        strategy: Strategy = None,
        max_configs: MaxConfigs = None,
        seed: Seed = None,
        concurrency: Concurrency = None,
        max_calls: MaxCalls = None,
    ) -> dict[str, Any]:
        """Start a sweep of a stored experiment in the BACKGROUND and return at once. Poll
        get_experiment_status / get_leaderboard; steer with pause_sweep, resume_sweep, stop_sweep, redirect_sweep.
        Running it again resumes: finished runs are kept, calls come from the cache. Call `plan` first:
        a large sweep needs max_calls, the most calls you accept."""
        return start_sweep(context, experiment, strategy=strategy, max_configs=max_configs, seed=seed,
                           concurrency=concurrency, max_calls=max_calls)

    @tool
    def get_run_detail(run_id: RunRef, full: Full = False) -> dict[str, Any]:
        """One run: its configuration, prompts sent, responses, scores (long text truncated unless full=true)."""
        with argument("run_id"):
            run = wb.run_detail(run_id)
        return {
            "run_id": run["id"], "config_id": run["config_id"][:12], "sample": run["sample_index"], "repeat": run["repeat"],
            "status": run["status"], "error": run.get("error"), "score": run["score"],
            "scores": {s["scorer"]: s["value"] for s in run["scores"]},
            "tokens": (run.get("tokens_in") or 0) + (run.get("tokens_out") or 0), "cost": run.get("cost"),
            "latency_ms": run.get("latency_ms"), "output": truncate(run.get("output"), full),
            "stages": [{"stage": s["stage_name"], "kind": s["kind"], "model": s.get("model_used"),
                        "parameters": s.get("parameters"), "cached": bool(s.get("cached")),
                        "prompt": [{**m, "content": truncate(m.get("content"), full)} for m in s["prompt_sent"]]
                        if isinstance(s.get("prompt_sent"), list) else truncate(s.get("prompt_sent"), full),
                        "response": truncate(s.get("response_raw"), full), "endpoint": s.get("endpoint"),
                        **({"tool_calls": s["tool_calls"]} if "tool_calls" in s else {})} for s in run["stages"]],
        }


__all__ = ["check_point", "register", "start_sweep"]
