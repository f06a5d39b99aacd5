"""Guided search vs the full grid, on synthetic landscapes served by the fake loopback server.

Each landscape maps a configuration (persona × model × temperature × top_p) to an expected score;
the fake server replies ``value=X`` with X = expected + per-sample noise, and a ``value`` scorer
reads it back. For every landscape the full grid is run once (its leaderboard is the truth); then
guided search runs with several seeds, each on a fresh database (no shared cache). A guided run
succeeds when its best configuration is the grid's best or cannot be told apart from it by a
paired t-test over the grid's samples (p >= 0.05). Reported: calls as a share of the grid's calls.

    python benchmarks/guided_search.py [--seeds 5] [--samples 20]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

import promptlooper as pl
from promptlooper.leaderboard import per_sample_scores
from promptlooper.testing import FakeServer

PERSONAS = ["A", "B", "C", "D", "E"]
MODELS = ["fake-small", "fake-large"]
TEMPS = [0.0, 0.3, 0.6, 0.9, 1.2]
TOP_PS = [0.5, 0.8, 1.0]


def _stable_noise(*parts: Any) -> float:
    digest = hashlib.sha256(json.dumps(parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big")).gauss(0, 1)


def smooth(p: str, m: str, t: float, tp: float) -> float:
    """One broad optimum: a good persona, a better model, temperature near 0.6."""
    base = {"A": 0.45, "B": 0.6, "C": 0.5, "D": 0.4, "E": 0.55}[p] + (0.05 if m == "fake-large" else 0.0)
    return base + 0.3 * (1 - abs(t - 0.6) / 0.6) * (1 - abs(tp - 0.8))


def rugged(p: str, m: str, t: float, tp: float) -> float:
    """Several local optima: each persona prefers its own temperature."""
    pref = {"A": 0.0, "B": 0.9, "C": 0.3, "D": 1.2, "E": 0.6}[p]
    base = {"A": 0.55, "B": 0.62, "C": 0.5, "D": 0.58, "E": 0.52}[p] + (0.04 if m == "fake-small" else 0.0)
    return base + 0.28 * math.exp(-((t - pref) ** 2) / 0.05) - 0.15 * abs(tp - 1.0)


def needle(p: str, m: str, t: float, tp: float) -> float:
    """A plateau with one clearly better corner (persona C on the large model, cool and focused)."""
    v = 0.5 + 0.05 * (m == "fake-large") - 0.05 * t / 1.2
    if p == "C" and m == "fake-large":
        v += 0.25 - 0.1 * t
    return v + 0.05 * (tp == 0.8)


LANDSCAPES = {"smooth": smooth, "rugged": rugged, "needle": needle}
NOISE = 0.06


def make_reply(fn: Any) -> Any:
    def reply(body: dict[str, Any]) -> str:
        persona = body["messages"][0]["content"]
        question = body["messages"][-1]["content"]
        t, tp = float(body.get("temperature", 0.0)), float(body.get("top_p", 1.0))
        v = fn(persona, body["model"], t, tp) + NOISE * _stable_noise(persona, body["model"], t, tp, question)
        return f"value={min(1.0, max(0.0, v)):.4f}"

    return reply


@pl.scorer("value", description="Reads value=X from the reply (benchmark landscapes).")
def value_scorer() -> Any:
    def score(ctx: Any) -> float:
        m = re.search(r"value=([0-9.]+)", ctx.output)
        return float(m.group(1)) if m else 0.0

    return score


def experiment(name: str, base_url: str, samples: int, **over: Any) -> pl.Experiment:
    return pl.Experiment(
        project="bench", name=name, samples=[{"q": f"question {i}"} for i in range(samples)],
        stages=[pl.PromptStage(name="answer", model="fake/fake-small", system="{{ persona }}", user="{{ q }}")],
        space={"persona": PERSONAS, "answer.model": [f"fake/{m}" for m in MODELS], "answer.temperature": TEMPS,
               "answer.top_p": TOP_PS},
        scorers=[pl.ScorerSpec(name="value")], concurrency=32,
        endpoints={"fake": pl.EndpointSpec(base_url=base_url, max_concurrency=64)}, **over,
    )


def per_config(wb: pl.Workbench, key: str) -> dict[str, dict[str, float]]:
    exp = wb.experiment(key)
    df = per_sample_scores(wb.store, exp["id"], {"value": 1.0})
    return {str(cid): dict(zip(g["sample_id"], g["score"], strict=True)) for cid, g in df.groupby("config_id")}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--landscapes", default=",".join(LANDSCAPES), help="comma-separated subset")
    args = ap.parse_args()
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="pl-guided-"))
    chosen = {k: v for k, v in LANDSCAPES.items() if k in args.landscapes.split(",")}
    for lname, fn in chosen.items():
        with FakeServer(reply=make_reply(fn)) as srv:
            grid_wb = pl.Workbench(tmp / f"{lname}-grid.db")
            grid = grid_wb.run(experiment("grid", srv.base_url, args.samples))
            truth = per_config(grid_wb, "bench/grid")
            board = grid_wb.leaderboard("bench/grid")
            best_id = board.iloc[0]["full_config_id"]
            for seed in range(1, args.seeds + 1):
                wb = pl.Workbench(tmp / f"{lname}-guided-{seed}.db")
                t0 = time.perf_counter()
                g = wb.run(experiment("guided", srv.base_url, args.samples, strategy="guided", seed=seed))
                found = wb.leaderboard("bench/guided").iloc[0]["full_config_id"]
                a, b = truth[best_id], truth[found]
                shared = sorted(set(a) & set(b))
                diff = np.array([a[s] - b[s] for s in shared])
                p = 1.0 if found == best_id or not diff.any() else float(stats.ttest_1samp(diff, 0.0).pvalue)
                ok = p >= 0.05
                rows.append({"landscape": lname, "seed": seed, "grid_calls": grid.calls, "guided_calls": g.calls,
                             "share": g.calls / grid.calls, "found_best": found == best_id, "indistinguishable": ok,
                             "p": round(p, 4), "stop": g.stop_reason, "seconds": round(time.perf_counter() - t0, 2)})
                r = rows[-1]
                print(f"{lname:7} seed {seed}: {r['guided_calls']:4} / {r['grid_calls']} calls = {r['share']:.0%}  "
                      f"{'same best' if r['found_best'] else ('indistinguishable' if ok else 'WORSE')} (p={r['p']})  stop: {r['stop']}",
                      flush=True)
                wb.close()
            grid_wb.close()
    shares = [r["share"] for r in rows]
    success = [r["indistinguishable"] for r in rows]
    print()
    print(f"{'landscape':10} {'runs':>4} {'mean share':>10} {'max share':>9} {'success':>8}")
    for lname in chosen:
        rs = [r for r in rows if r["landscape"] == lname]
        print(f"{lname:10} {len(rs):4} {np.mean([r['share'] for r in rs]):10.1%} {max(r['share'] for r in rs):9.1%} "
              f"{sum(r['indistinguishable'] for r in rs)}/{len(rs):>3}")
    print(f"\nall: mean {np.mean(shares):.1%} of the grid's calls (target <= 30%), "
          f"{sum(success)}/{len(success)} runs indistinguishable from the grid's best")
    out = Path(__file__).with_name("guided_results.json")
    out.write_text(json.dumps(rows, indent=2))
    return 0 if np.mean(shares) <= 0.30 and all(success) else 1


if __name__ == "__main__":
    sys.exit(main())
