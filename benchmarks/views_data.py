"""How fast the data views answer on large experiments (issue 17: each within 2 s at 5,000 runs).

The widget views (promptlooper.ui: output matrix, rating queue, group by, compare, sweep plots)
are timed too, from construction to their first state, and the output matrix's state is weighed
at 200 x 100: only a page of cells is sent to the browser, whatever the matrix's size.

Builds, through the public API against the fake server in another process, an experiment of
5,000 runs (50 configurations x 100 samples) and a second one on the same samples (for comparing
experiments), then an experiment of 20,000 runs (200 configurations x 100 samples) for the output
matrix, and times every data API on them: the best of ``--repeat`` attempts (the machine is shared)
with a monotonic clock, each a cold call (no cache between calls: every call reads the store).

    .venv/bin/python benchmarks/views_data.py               # prints the table, writes views_data.json
    .venv/bin/python benchmarks/views_data.py --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scenarios import experiment  # noqa: E402

import promptlooper as pl  # noqa: E402
from promptlooper.runs_table import encode  # noqa: E402
from promptlooper.testing import fake_server_process  # noqa: E402

TARGET_S = 2.0


def opened(cls: Any, *args: Any, **kwargs: Any) -> Callable[[], Any]:
    """Open a widget view (its first state is built in the constructor), then close it."""
    def run() -> None:
        view = cls(*args, **kwargs)
        view.close()
    return run


def state_bytes(view: Any) -> int:
    """The size of a view's synced state as JSON: what its first render sends to the browser."""
    names = [n for n in view.trait_names(sync=True) if not n.startswith("_")]
    return len(json.dumps({n: getattr(view, n) for n in names}, default=str))


def timed(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).with_name("views_data.json")))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, fake_server_process() as base_url:
        wb = pl.Workbench(Path(tmp) / "views.db")
        big = experiment(base_url, "views-5k", 50, 100)
        other = experiment(base_url, "views-5k-b", 50, 100)
        other = other.model_copy(update={"space": {**other.space, "answer.temperature": [0.1, 0.3, 0.6, 0.8, 0.9]}})
        huge = experiment(base_url, "views-20k", 200, 100)
        built = {}
        for exp in (big, other, huge):
            start = time.perf_counter()
            wb.run(exp)
            built[exp.name] = round(time.perf_counter() - start, 1)
        k, k2, h = big.key, other.key, huge.key
        cases: list[tuple[str, str, Callable[[], Any]]] = [
            ("runs table (wb.runs as_frame)", k, lambda: wb.runs(k, as_frame=True)),
            ("runs export csv", k, lambda: encode(wb.runs(k, as_frame=True), "csv")),
            ("runs export parquet", k, lambda: encode(wb.runs(k, as_frame=True), "parquet")),
            ("matrix", k, lambda: wb.matrix(k).outputs),
            ("matrix differ + failures", k, lambda: wb.matrix(k, differ=True, failures=True)),
            ("matrix where + score range", k, lambda: wb.matrix(k, where={"answer.temperature": [0.0, 0.5]}, score=(0.2, 0.8))),
            ("matrix search (outputs + prompts)", k, lambda: wb.matrix(k, search="fact number 42")),
            ("group_by one variable", k, lambda: wb.group_by(k, "persona")),
            ("group_by two variables", k, lambda: wb.group_by(k, ["persona", "answer.temperature"])),
            ("compare_experiments", f"{k} vs {k2}", lambda: wb.compare_experiments(k, k2)),
            ("compare_across (paired)", f"{k}:best vs {k2}:best", lambda: wb.compare_across(f"{k}:best", f"{k2}:best")),
            ("sweep_analysis (importance)", k, lambda: wb.sweep_analysis(k)),
            ("sweep_plots (6 figures)", k, lambda: wb.sweep_plots(k)),
            ("matrix 200 x 100", h, lambda: wb.matrix(h).outputs),
            ("matrix 200 x 100 search", h, lambda: wb.matrix(h, search="fact number 42")),
            ("sweep_plots 200 configurations", h, lambda: wb.sweep_plots(h)),
        ]
        from promptlooper.ui import CompareView, GroupByView, MatrixView, RatingQueue, SweepPlots

        cases += [
            ("view: output matrix opens", k, opened(MatrixView, wb, k, readonly=True)),
            ("view: rating queue opens", k, opened(RatingQueue, wb, k, readonly=True)),
            ("view: group by opens", k, opened(GroupByView, wb, k, ["persona", "answer.temperature"])),
            ("view: compare opens", f"{k} vs {k2}", opened(CompareView, wb, k, k2)),
            ("view: sweep plots open", k, opened(SweepPlots, wb, k)),
            ("view: output matrix 200 x 100 opens", h, opened(MatrixView, wb, h, readonly=True)),
        ]
        results = []
        for name, on, fn in cases:
            fn()  # first use imports (plotly, optuna, pyarrow): a notebook pays it once
            seconds = timed(fn, args.repeat)
            results.append({"api": name, "experiment": on, "seconds": round(seconds, 3), "ok": seconds <= TARGET_S})
            print(f"{name:<36} {seconds:7.3f} s  {'ok' if seconds <= TARGET_S else 'OVER'}  ({on})", flush=True)
        view = MatrixView(wb, h, readonly=True)
        page = {"cells": sum(len(r["cells"]) for r in view.rows), "state_bytes": state_bytes(view),
                "matrix_runs": len(view._matrix.cells)}
        view.close()
        print(f"output matrix 200 x 100: {page['cells']} cells on a page of {page['matrix_runs']} runs, "
              f"{page['state_bytes']:,} bytes of state", flush=True)
        wb.close()
    record = {"target_s": TARGET_S, "repeat": args.repeat, "build_s": built, "load_average": os.getloadavg(),
              "results": results, "matrix_view_page": page}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
