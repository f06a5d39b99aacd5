"""Does a notebook stay responsive while a sweep updates the widgets?

    .venv/bin/python benchmarks/widget_latency.py             # 2,000 runs, all views
    .venv/bin/python benchmarks/widget_latency.py --runs 500  # quicker
    .venv/bin/python benchmarks/widget_latency.py --repeat 5  # and the medians of five

A real IPython kernel (jupyter_client) starts a 2,000-run sweep on the fake server (a separate
process, 50 ms per call, concurrency 16) and displays ``promptlooper.ui.workbench`` (live
progress, leaderboard, steering, timeline, charts: every refresh loop running). While the sweep
runs, the client executes a trivial cell again and again and times each round trip
(execute_request -> execute_reply), which is what a person feels when they run a cell. The same
cells are timed with nothing running, before the sweep and after it, as the baseline. Every cell,
idle or not, follows the same ``--pause``: on this machine a round trip right after another costs
~40% less than one after 50 ms of quiet, so a baseline timed back to back made the sweep look
1.5x slower when it cost the kernel nothing (see benchmarks/README.md).

``--probe`` also runs a probe task in the kernel that sleeps 1 ms again and again and records how
late it wakes up: how long the kernel's event loop went without looking at its sockets (what
blocks a cell), apart from the client's and the other processes' share of the cores. ``--pin``
puts the fake server on CPU 1 and the kernel (with its sweep's writer process) on CPU 0, to tell
CPU contention between them from blocking of the kernel's loop.

``--sweep-in cli`` runs the same sweep in a ``promptlooper run`` process on the same database
instead (a sweep started from a terminal, or by workers), while the kernel shows the views, which
then follow the store. ``--nice N`` runs the fake server (standing for a remote LLM) and that
process at niceness N.

A second kernel with nothing to do, the control, is timed in turn with the first throughout: on
a 2-core machine the fake server, the sweep, the writer and the client share the cores (and other
programs too), and that load alone slows any round trip. "during / control" is what the sweep
and the views cost the kernel itself; "control meanwhile / control idle" is what the machine's
load costs every kernel. The CPU each process used during the sweep (the kernel, its writer
process, the fake server, the control kernel, the client) is printed as well.
``widget_latency_interleaved.py`` runs the same sweep as several shorter ones with idle windows in
between, and ``latency_floor.py`` the same cells beside plain CPU load with no PromptLooper.

Target: the cells' p95 <= 100 ms while the sweep updates the widgets (issue 16: p50 <= 1.2x idle). Figures are printed and
written to ``benchmarks/widget_latency.json`` (the default configuration only). The figures are
noisy: repeat, and take medians.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

SETUP = """
import promptlooper as pl, promptlooper.ui as plui
from IPython.display import display
wb = pl.Workbench({db!r})
exp = pl.Experiment(
    project="bench", name="widget-latency",
    samples=[{{"question": f"q{{i}}", "reference": "alpha"}} for i in range(10)],
    stages=[pl.PromptStage(name="answer", model="fake/fake-small", system="{{{{ persona }}}}", user="{{{{ question }}}}",
                           params={{"max_tokens": 8}})],
    space={{"persona": ["terse", "verbose"], "answer.temperature": [round(i / {temps}, 4) for i in range({temps})]}},
    scorers=[{{"name": "keyword", "words": ["alpha", "bravo"]}}, {{"name": "length", "max_words": 6}}],
    endpoints={{"fake": {{"base_url": {base_url!r}, "max_concurrency": 64}}}},
    concurrency=16,
)
{start}
views = {views!r}
if views == ["all"]:
    dash = plui.workbench(wb, exp, handle)
    display(dash)
else:
    shown = [plui.LiveSweep(wb, exp, handle) if v == "LiveSweep" else getattr(plui, v)(wb, exp) for v in views]
    display(*[getattr(v, "widget", v) for v in shown])
"""
# Where the sweep runs: in the kernel (``wb.start``), or in a ``promptlooper run`` process on the
# same database, watched by the kernel's views through the store (a sweep started from a terminal).
START_IN_KERNEL = """
handle = wb.start(exp)
_done = handle.done
_progress = lambda: (handle.progress.done, handle.progress.total, handle.progress.status)
"""
START_IN_CLI = """
import json as _json, subprocess as _subprocess, sys as _sys, time as _time
with open("experiment.json", "w") as _f:
    _json.dump(exp.model_dump(mode="json", exclude_none=True), _f)
_proc = _subprocess.Popen([*{nice!r}, _sys.executable, "-m", "promptlooper.cli", "run", "experiment.json", "--db", {db!r}, "--quiet", "--yes"],
                          stdout=_subprocess.DEVNULL, stderr=_subprocess.DEVNULL)
def _started():
    try:
        return bool(wb.status(exp.key).get("sweep"))
    except pl.PromptLooperError:  # not in the store yet
        return False
while not _started():
    if _proc.poll() is not None:
        raise RuntimeError(f"promptlooper run exited with {{_proc.returncode}}")
    _time.sleep(0.05)
handle = None
_done = lambda: _proc.poll() is not None
def _progress():
    _s = wb.status(exp.key)["sweep"]
    return (_s["done"], _s["total"], _s["status"])
"""
TRIVIAL = "x = sum(range(1000))"

# In the kernel, as the sweep starts: a task on the kernel's loop that wakes every millisecond.
PROBE = """
import asyncio as _asyncio, time as _time
_lateness = []
async def _loop_probe():
    while True:
        _t = _time.perf_counter()
        await _asyncio.sleep(0.001)
        _lateness.append(_time.perf_counter() - _t - 0.001)
_probe_task = _asyncio.ensure_future(_loop_probe())
def _probe_summary():  # a short tuple: a long list's repr is cut short by IPython
    _probe_task.cancel()
    _o = sorted(_lateness)
    return (len(_o), *(round(1000 * _o[min(len(_o) - 1, int(q * len(_o)))], 2) for q in (0.5, 0.95, 0.99)), round(1000 * _o[-1], 2))
"""


def run_cell(kc: Any, code: str, timeout: float = 60.0) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    msg_id = kc.execute(code, silent=False, store_history=False)
    while True:
        reply = kc.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    elapsed = time.perf_counter() - start
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"cell failed: {reply['content']}")
    return elapsed, reply


def evaluate(kc: Any, expr: str) -> Any:
    _, reply = run_cell(kc, "pass")  # make sure nothing is queued
    msg_id = kc.execute("", user_expressions={"v": expr})
    while True:
        reply = kc.get_shell_msg(timeout=60)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    value = reply["content"]["user_expressions"]["v"]
    if value["status"] != "ok":
        raise RuntimeError(value)
    return eval(value["data"]["text/plain"])  # noqa: S307 - our own expression's repr


def drain_iopub(kc: Any) -> None:
    """Read what the kernel published so far (widget updates, status), without waiting for more."""
    while True:
        try:
            kc.get_iopub_msg(timeout=0)
        except Exception:  # noqa: BLE001 - queue.Empty
            return


def timed_pair(kc: Any, ckc: Any, pause: float) -> tuple[float, float]:
    """After ``pause``, one trivial cell in the measured kernel, then one in the control kernel.

    The idle and the during phases time their cells with this same function, so that both follow
    the same pause: a round trip after 50 ms with nothing to do costs more than one right after
    another (the cores went idle, the threads sleep, caches cool: +60-75% at p50 on this 2-vCPU
    machine), and a baseline timed back to back made any paced phase look slow by that much."""
    time.sleep(pause)
    elapsed = run_cell(kc, TRIVIAL)[0]
    drain_iopub(kc)
    control = run_cell(ckc, TRIVIAL)[0]
    drain_iopub(ckc)
    return elapsed, control


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(values), "p50_ms": 1000 * statistics.median(values), "p95_ms": 1000 * pick(0.95),
            "max_ms": 1000 * max(values), "mean_ms": 1000 * statistics.fmean(values)}


@contextlib.contextmanager
def fake_server(latency: float, cpu: int | None, nice: int = 0) -> Iterator[tuple[str, int]]:
    """The fake server in a process of its own (on ``cpu`` only, if given; at ``nice``); yields its
    base URL and process id."""
    from promptlooper.testing import spawn_fake_server

    proc, base_url = spawn_fake_server(latency)
    try:
        if cpu is not None:
            os.sched_setaffinity(proc.pid, {cpu})
        if nice:
            os.setpriority(os.PRIO_PROCESS, proc.pid, nice)
        yield base_url, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


class CpuMeter:
    """CPU seconds used by processes (and their children, such as the sweep's writer) since start.

    A child that exits between two samples keeps its last sample, so sample often enough."""

    def __init__(self, **pids: int):
        import psutil  # the measurement's own dependency (dev extra)

        self.psutil = psutil
        self.roots = pids
        self.first: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self.sample(start=True)

    def sample(self, start: bool = False) -> None:
        for name, pid in self.roots.items():
            with contextlib.suppress(self.psutil.Error):
                root = self.psutil.Process(pid)
                for i, proc in enumerate([root, *root.children(recursive=True)]):
                    with contextlib.suppress(self.psutil.Error):
                        t = proc.cpu_times()
                        used = t.user + t.system
                        if start:
                            self.first[proc.pid] = used
                        named = self.last.get(proc.pid, (name if i == 0 else f"{name}'s children", 0.0))[0]
                        self.last[proc.pid] = (named, used)  # a process keeps the first root that names it

    def used(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, (name, used) in self.last.items():
            out[name] = out.get(name, 0.0) + used - self.first.get(pid, 0.0)
        return out


def kernel_cpu(kc: Any) -> float:
    """CPU seconds the kernel process used so far (all its threads)."""
    return float(evaluate(kc, "(lambda t: t.user + t.system)(__import__('os').times())"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="measure this many times; print (and save) the medians too")
    parser.add_argument("--runs", type=int, default=2000, help="runs in the sweep (2 personas x 10 samples x N temperatures)")
    parser.add_argument("--latency", type=float, default=0.05, help="fake server latency per call, seconds")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between timed cells")
    parser.add_argument("--probe", action="store_true", help="measure the kernel loop's lateness with a 1 ms probe task")
    parser.add_argument("--pin", action="store_true", help="fake server on CPU 1, kernel and writer on CPU 0 (Linux)")
    parser.add_argument("--sweep-in", choices=("kernel", "cli"), default="kernel",
                        help="run the sweep in the kernel (wb.start) or in a `promptlooper run` process watched by the kernel's views")
    parser.add_argument("--nice", type=int, default=0,
                        help="run the fake server (standing for a remote LLM) and a --sweep-in cli process at this niceness")
    parser.add_argument("--views", default="all", help="'all' (the composed dashboard), 'none', or names: LiveSweep,Leaderboard,...")
    args = parser.parse_args()
    results = [measure(args) for _ in range(args.repeat)]
    result = results[0] if len(results) == 1 else {**results[len(results) // 2], "repeats": results, "medians": medians(results)}
    if len(results) > 1:
        print(f"medians of {len(results)}: " + ", ".join(f"{k} {v}" for k, v in result["medians"].items()))
    if args.views == "all" and args.sweep_in == "kernel" and not args.nice:
        (HERE / "widget_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(r["during_sweep"]["p95_ms"] <= 100 for r in results) else 1


MEDIANS = ("during_over_idle_p50", "during_over_control_p50", "control_over_control_idle_p50", "kernel_cpu_share")


def medians(results: list[dict[str, Any]]) -> dict[str, float]:
    """The figures to compare between configurations, each the median over the repeats."""
    out = {k: round(statistics.median(r[k] for r in results), 2) for k in MEDIANS}
    for part in ("baseline", "during_sweep", "control_during_sweep"):
        for q in ("p50_ms", "p95_ms", "max_ms"):
            out[f"{part}_{q}"] = round(statistics.median(r[part][q] for r in results), 1)
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement: fresh kernels, server and database; prints its figures and returns them."""
    from jupyter_client.manager import start_new_kernel

    temps = max(1, args.runs // 20)
    with tempfile.TemporaryDirectory() as tmp, fake_server(args.latency, 1 if args.pin else None, args.nice) as (base_url, server_pid):
        km, kc = start_new_kernel(kernel_name="python3", cwd=tmp)
        # The control: a second kernel with nothing to do, timed in turn with the first, so that both
        # see the same load of the machine (the fake server, the writer, other programs).
        ckm, ckc = start_new_kernel(kernel_name="python3", cwd=tmp)
        try:
            if args.pin:
                run_cell(kc, "import os; os.sched_setaffinity(0, {0})")  # its children (the writer) inherit it
                run_cell(ckc, "import os; os.sched_setaffinity(0, {0})")
            for c in (kc, ckc):
                run_cell(c, "import promptlooper, promptlooper.ui, ipywidgets, anywidget, plotly")
            baseline, control_idle = [], []
            for _ in range(40):
                elapsed, ctl = timed_pair(kc, ckc, args.pause)
                baseline.append(elapsed)
                control_idle.append(ctl)
            views = [] if args.views == "none" else [v.strip() for v in args.views.split(",")]
            db = str(Path(tmp) / "bench.db")
            nice = ["nice", "-n", str(args.nice)] if args.nice else []
            start = START_IN_KERNEL if args.sweep_in == "kernel" else START_IN_CLI.format(db=db, nice=nice)
            setup = SETUP.format(db=db, temps=temps, base_url=base_url, views=views, start=start)
            setup_s, _ = run_cell(kc, setup, timeout=120)
            if args.probe:  # after the setup cell, which blocks the loop while it runs (it is the user's)
                run_cell(kc, PROBE)
            cpu_before = kernel_cpu(kc)
            meter = CpuMeter(kernel=km.provisioner.pid, server=server_pid, control=ckm.provisioner.pid, client=os.getpid())
            during: list[float] = []
            control: list[float] = []
            started = time.perf_counter()
            while True:
                elapsed, ctl = timed_pair(kc, ckc, args.pause)
                during.append(elapsed)
                control.append(ctl)
                if len(during) % 5 == 0:
                    meter.sample()
                if len(during) % 20 == 0 and evaluate(kc, "_done()"):
                    break
                if time.perf_counter() - started > 600:
                    raise RuntimeError("the sweep did not finish in 10 minutes")
            sweep_s = time.perf_counter() - started
            meter.sample()
            cpu = kernel_cpu(kc) - cpu_before
            info = evaluate(kc, "_progress()")
            if views == ["all"]:
                info += evaluate(kc, "(dash.live.pushes, len(dash.leaderboard.rows), len(dash.timeline.events))")
            else:
                info += (0, 0, 0)
            lateness = evaluate(kc, "_probe_summary()") if args.probe else None
            # The idle figures again once the sweep has ended (its writer gone too): the machine's
            # speed drifts from minute to minute, so the baseline brackets the sweep.
            run_cell(kc, "_done() or None")
            time.sleep(0.5)
            idle_before = len(baseline)
            for _ in range(40):
                elapsed, ctl = timed_pair(kc, ckc, args.pause)
                baseline.append(elapsed)
                control_idle.append(ctl)
        finally:
            for c, m in ((kc, km), (ckc, ckm)):
                c.stop_channels()
                m.shutdown_kernel(now=True)

    done, total, status, pushes, rows, events = info
    rounded = lambda values: {k: round(v, 1) for k, v in percentiles(values).items()}  # noqa: E731
    result = {
        "views": args.views, "sweep_in": args.sweep_in, "runs": total, "status": status, "sweep_seconds": round(sweep_s, 2),
        "runs_per_s": round(done / sweep_s, 1), "live_view_pushes": pushes, "pushes_per_s": round(pushes / sweep_s, 2),
        "leaderboard_rows": rows, "timeline_events_shown": events, "setup_cell_s": round(setup_s, 2),
        "kernel_cpu_share": round(cpu / sweep_s, 3),
        "baseline": rounded(baseline), "during_sweep": rounded(during),
        "control_idle": rounded(control_idle), "control_during_sweep": rounded(control),
        "pinned": args.pin, "nice": args.nice,
        "cpu_cores_used": {k: round(v / sweep_s, 3) for k, v in meter.used().items()},
        "load_average_after": round(os.getloadavg()[0], 2),  # other work on the machine (1-minute average)
    }
    result["idle_before_p50_ms"] = round(1000 * statistics.median(baseline[:idle_before]), 1)
    result["idle_after_p50_ms"] = round(1000 * statistics.median(baseline[idle_before:]), 1)
    if lateness:
        result["kernel_loop_lateness"] = dict(zip(("n", "p50_ms", "p95_ms", "p99_ms", "max_ms"), lateness, strict=True))
    b, d, ci, cd = (result[k]["p50_ms"] for k in ("baseline", "during_sweep", "control_idle", "control_during_sweep"))
    result["during_over_idle_p50"] = round(d / b, 2)
    result["during_over_control_p50"] = round(d / cd, 2)
    result["control_over_control_idle_p50"] = round(cd / ci, 2)
    met = result["during_sweep"]["p95_ms"] <= 100
    print(f"sweep: {total} runs in the {args.sweep_in}, {status}, {sweep_s:.1f} s ({result['runs_per_s']} runs/s); "
          f"live view pushed {pushes} times ({result['pushes_per_s']}/s); the kernel used {cpu:.2f} s of CPU "
          f"({result['kernel_cpu_share']:.0%} of a core)")
    print(f"trivial cell, idle kernel : p50 {b:.1f} ms (before the sweep {result['idle_before_p50_ms']} ms, after it "
          f"{result['idle_after_p50_ms']} ms), p95 {result['baseline']['p95_ms']:.1f} ms  (control kernel: p50 {ci:.1f} ms)")
    print(f"trivial cell, during sweep: p50 {d:.1f} ms, p95 {result['during_sweep']['p95_ms']:.1f} ms, "
          f"max {result['during_sweep']['max_ms']:.1f} ms over {result['during_sweep']['n']} cells  "
          f"-> target p95 <= 100 ms: {'met' if met else 'NOT met'}")
    print(f"control kernel, meanwhile : p50 {cd:.1f} ms, p95 {result['control_during_sweep']['p95_ms']:.1f} ms "
          f"(idle itself: what the machine's load alone does to a round trip)")
    print("cores used meanwhile: " + ", ".join(f"{k} {v:.2f}" for k, v in result["cpu_cores_used"].items()))
    if lateness:
        late = result["kernel_loop_lateness"]
        print(f"kernel loop, 1 ms probe     : late p50 {late['p50_ms']} ms, p95 {late['p95_ms']} ms, p99 {late['p99_ms']} ms, max {late['max_ms']} ms")
    print(f"during / idle p50: {d / b:.2f}x (issue 16's target: <= 1.2x); during / control kernel meanwhile: {d / cd:.2f}x; "
          f"control meanwhile / control idle: {cd / ci:.2f}x")
    return result


if __name__ == "__main__":
    raise SystemExit(main())
