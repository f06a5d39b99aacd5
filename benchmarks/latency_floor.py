"""What a neighbour's CPU load alone does to a notebook cell's round trip: the machine's floor.

    .venv/bin/python benchmarks/latency_floor.py                       # the sweep's CPU profile
    .venv/bin/python benchmarks/latency_floor.py --policy idle         # the same load at SCHED_IDLE
    .venv/bin/python benchmarks/latency_floor.py --load 0.3 --repeat 3

``widget_latency.py`` times a trivial cell in a kernel while a sweep updates every view. Whether
its idle-vs-during ratio can reach issue 16's 1.2x depends on more than PromptLooper: here no
PromptLooper runs at all. A plain IPython kernel (nothing imported) is timed with the same client
code while plain Python processes burn the CPU that the sweep's processes use (by default the
shares measured by ``widget_latency.py``: the kernel's loop 0.30 of a core, the fake server 0.08,
the writer 0.03), in bursts of about a loop turn, sleeping in between.

The load is switched on and off (SIGCONT / SIGSTOP) in alternating windows of cells, so "idle"
and "loaded" cells are interleaved in time and share whatever else the machine does (the speed of
a shared VM drifts from minute to minute). ``--policy`` runs the neighbours at ``nice 19`` or
``SCHED_IDLE`` (Linux: they only get a core nobody else wants): if the round trip still slows
down, no lowering of the background work's priority can win it back. The kernel's and the
client's CPU time per cell are printed for both states: a cell that costs more CPU, not only more
waiting, is slowed by the hardware it shares (two vCPUs on one core's hyperthreads, its caches),
which no scheduler setting changes.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from widget_latency import TRIVIAL, run_cell  # noqa: E402 - the same cell and timing as the widget benchmark

# A neighbour: busy for `burst` seconds, then asleep so that it uses `share` of a core.
BURNER = """
import sys, time
share, burst = float(sys.argv[1]), float(sys.argv[2])
period = burst / share
while True:
    t = time.perf_counter()
    while time.perf_counter() - t < burst:
        pass
    time.sleep(max(0.0, period - (time.perf_counter() - t)))
"""


def start_neighbours(shares: list[float], burst: float, policy: str) -> list[subprocess.Popen[bytes]]:
    procs = []
    for share in shares:
        proc = subprocess.Popen([sys.executable, "-c", BURNER, str(share), str(burst)])
        if policy == "idle":
            os.sched_setscheduler(proc.pid, os.SCHED_IDLE, os.sched_param(0))
        elif policy == "nice":
            os.setpriority(os.PRIO_PROCESS, proc.pid, 19)
        proc.send_signal(signal.SIGSTOP)
        procs.append(proc)
    return procs


def cpu_of(pid: int) -> float:
    import psutil  # the measurement's own dependency (dev extra)

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from jupyter_client.manager import start_new_kernel

    shares = [float(x) for x in args.load.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        km, kc = start_new_kernel(kernel_name="python3", cwd=tmp)
        procs = start_neighbours(shares, args.burst_ms / 1000, args.policy)
        times: dict[str, list[float]] = {"idle": [], "loaded": []}
        cpu: dict[str, float] = {"idle": 0.0, "loaded": 0.0}
        try:
            for _ in range(5):
                run_cell(kc, TRIVIAL)  # warm up
            for window in range(2 * args.windows):
                state = "loaded" if window % 2 else "idle"
                for proc in procs:
                    proc.send_signal(signal.SIGCONT if state == "loaded" else signal.SIGSTOP)
                time.sleep(0.2)  # let the load settle (or stop)
                before = cpu_of(km.provisioner.pid) + sum(os.times()[:2])
                for _ in range(args.cells):
                    times[state].append(run_cell(kc, TRIVIAL)[0])
                    time.sleep(args.pause)
                cpu[state] += cpu_of(km.provisioner.pid) + sum(os.times()[:2]) - before
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    idle, loaded = (1000 * statistics.median(times[s]) for s in ("idle", "loaded"))
    cpu_idle, cpu_loaded = (1e6 * cpu[s] / len(times[s]) for s in ("idle", "loaded"))
    result = {"load": shares, "policy": args.policy, "idle_p50_ms": round(idle, 2), "loaded_p50_ms": round(loaded, 2),
              "ratio_p50": round(loaded / idle, 2), "cpu_per_cell_idle_us": round(cpu_idle), "cpu_per_cell_loaded_us": round(cpu_loaded)}
    print(f"neighbours {shares} ({args.policy}): trivial cell p50 idle {idle:.1f} ms, loaded {loaded:.1f} ms -> {loaded / idle:.2f}x; "
          f"kernel + client CPU per cell {cpu_idle:.0f} -> {cpu_loaded:.0f} µs ({cpu_loaded / cpu_idle:.2f}x); "
          f"load average {os.getloadavg()[0]:.2f}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--load", default="0.30,0.08,0.03", help="the neighbours' shares of a core, comma-separated")
    parser.add_argument("--burst-ms", type=float, default=2.0, help="each neighbour's busy stretch, ms")
    parser.add_argument("--policy", choices=("normal", "nice", "idle"), default="normal",
                        help="the neighbours at nice 0, nice 19, or SCHED_IDLE")
    parser.add_argument("--windows", type=int, default=5, help="pairs of idle / loaded windows")
    parser.add_argument("--cells", type=int, default=20, help="cells per window")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between cells")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    results = [measure(args) for _ in range(args.repeat)]
    if len(results) > 1:
        print(f"medians of {len(results)}: " + ", ".join(
            f"{k} {statistics.median(r[k] for r in results)}" for k in ("idle_p50_ms", "loaded_p50_ms", "ratio_p50",
                                                                        "cpu_per_cell_idle_us", "cpu_per_cell_loaded_us")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
