"""The widget latency benchmark with idle and during interleaved in time.

    .venv/bin/python benchmarks/widget_latency_interleaved.py              # 4 sweeps of 500 runs
    .venv/bin/python benchmarks/widget_latency_interleaved.py --repeat 3

``widget_latency.py`` times its idle cells before the sweep (and after it), and the sweep's cells
over several seconds in between; on a shared VM whose speed drifts from minute to minute (other
programs, the host), "idle" and "during" then see different machines. Here the same kernel runs
``--segments`` sweeps one after the other, each a new experiment (nothing cached) shown with
every view (``promptlooper.ui.workbench``: progress, leaderboard, steering, timeline, charts), and
after each one the views are closed and as many cells are timed with nothing running: a true idle
window, a few seconds from the sweep's own. The control kernel (nothing to do) is timed in turn
throughout, and every cell follows the same pause, as in ``widget_latency.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from widget_latency import (  # noqa: E402 - the same sweep, cells and timing as the widget benchmark
    SETUP,
    START_IN_KERNEL,
    CpuMeter,
    drain_iopub,
    evaluate,
    fake_server,
    run_cell,
    timed_pair,
)

CLOSE = """
dash.close()
del dash, handle
"""


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from jupyter_client.manager import start_new_kernel

    temps = max(1, args.runs // args.segments // 20)
    with tempfile.TemporaryDirectory() as tmp, fake_server(args.latency, None) as (base_url, server_pid):
        km, kc = start_new_kernel(kernel_name="python3", cwd=tmp)
        ckm, ckc = start_new_kernel(kernel_name="python3", cwd=tmp)
        cells: dict[str, list[float]] = {"idle": [], "during": [], "control_idle": [], "control_during": []}
        cores: dict[str, float] = {}
        sweep_s = 0.0
        try:
            for c in (kc, ckc):
                run_cell(c, "import promptlooper, promptlooper.ui, ipywidgets, anywidget, plotly")
            db = str(Path(tmp) / "bench.db")
            for segment in range(args.segments):
                setup = SETUP.format(db=db, temps=temps, base_url=base_url, views=["all"], start=START_IN_KERNEL)
                run_cell(kc, setup.replace('name="widget-latency"', f'name="widget-latency-{segment}"'), timeout=120)
                meter = CpuMeter(kernel=km.provisioner.pid, server=server_pid)
                started = time.perf_counter()
                n = 0
                while True:
                    n += 1
                    elapsed, control = timed_pair(kc, ckc, args.pause)
                    cells["during"].append(elapsed)
                    cells["control_during"].append(control)
                    if n % 5 == 0:
                        meter.sample()
                    if n % 10 == 0 and evaluate(kc, "_done()"):
                        break
                sweep_s += time.perf_counter() - started
                meter.sample()
                for k, v in meter.used().items():
                    cores[k] = cores.get(k, 0.0) + v
                status = evaluate(kc, "_progress()")[2]
                if status != "completed":
                    raise RuntimeError(f"segment {segment}: the sweep ended {status}")
                run_cell(kc, CLOSE)
                time.sleep(0.5)  # the writer's last checkpoint
                drain_iopub(kc)
                for _ in range(n):  # as many idle cells as the sweep had, paced the same
                    elapsed, control = timed_pair(kc, ckc, args.pause)
                    cells["idle"].append(elapsed)
                    cells["control_idle"].append(control)
        finally:
            for c, m in ((kc, km), (ckc, ckm)):
                c.stop_channels()
                m.shutdown_kernel(now=True)
    p50 = {k: round(1000 * statistics.median(v), 2) for k, v in cells.items()}
    result = {
        "segments": args.segments, "runs": args.runs, "cells": len(cells["during"]), "p50_ms": p50,
        "during_over_idle_p50": round(p50["during"] / p50["idle"], 2),
        "control_during_over_idle_p50": round(p50["control_during"] / p50["control_idle"], 2),
        "during_over_control_p50": round(p50["during"] / p50["control_during"], 2),
        "cpu_cores_used": {k: round(v / sweep_s, 3) for k, v in cores.items()},
    }
    print(f"{args.segments} sweeps of {args.runs // args.segments} runs, {len(cells['during'])} cells during and as many idle, interleaved: "
          f"p50 idle {p50['idle']:.1f} ms, during {p50['during']:.1f} ms -> {result['during_over_idle_p50']:.2f}x (target <= 1.2x); "
          f"control kernel {p50['control_idle']:.1f} -> {p50['control_during']:.1f} ms ({result['control_during_over_idle_p50']:.2f}x); "
          f"during / control {result['during_over_control_p50']:.2f}x; cores used during the sweeps: "
          + ", ".join(f"{k} {v:.2f}" for k, v in result["cpu_cores_used"].items()) + f"; load average {os.getloadavg()[0]:.2f}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--runs", type=int, default=2000, help="runs in all (2 personas x 10 samples x N temperatures each sweep)")
    parser.add_argument("--segments", type=int, default=4, help="sweeps, each followed by an idle window")
    parser.add_argument("--latency", type=float, default=0.05, help="fake server latency per call, seconds")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between timed cells")
    args = parser.parse_args()
    results = [measure(args) for _ in range(args.repeat)]
    if len(results) > 1:
        print(f"medians of {len(results)}: " + ", ".join(
            f"{k} {statistics.median(r[k] for r in results)}"
            for k in ("during_over_idle_p50", "control_during_over_idle_p50", "during_over_control_p50")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
