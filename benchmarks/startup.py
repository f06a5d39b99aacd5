"""Start-up as a user meets it: whole ``promptlooper`` processes, timed from spawn to exit.

    .venv/bin/python benchmarks/startup.py                      # this checkout, 5 runs of each
    .venv/bin/python benchmarks/startup.py --before main        # and the same against a git ref
    .venv/bin/python benchmarks/startup.py help run --repeat 9  # a selection

| | scenario | target |
|---|---|---|
| help | ``promptlooper --help`` | <= 0.25 s |
| run | a one-call ``promptlooper run`` (latency 0), in a folder whose database exists | <= 0.8 s |
| calls | 1,000 calls at latency 100 ms, concurrency 64, whole process | >= 0.75 of C/L (640 calls/s) |
| (floor) | the same calls from a bare aiohttp client process (``bare_client.py``), right after each | (the machine's limit) |
| cached | a NEW experiment of 10,000 runs whose every call is cached, whole process | >= 5,000 runs/s |
| rss | peak RSS of each process above, and of run.py's (d) (100,000 runs) | <= 150 MB |

Each figure is the median of ``--repeat`` fresh processes (default 5) on a warm machine: one
untimed run of each scenario comes first (it fills the OS file cache and the .pyc files). With
``--before REF``, REF is checked out with ``git worktree add`` into a temporary folder and each
repetition runs before and after back to back, so both see the same load. The fake server
(``promptlooper.testing``) runs in its own process from this checkout, shared by both sides. A
database is made once per side (by an untimed run); every timed run is a new experiment with new
calls (a nonce in its prompt), except ``cached``, whose calls an untimed run made first. ``run``
is also timed on a new database (``run_new_db``): creating one applies the migrations through the
store's own connection, which imports nothing heavy. Under each timed scenario the table also gives
the process's CPU seconds (user + system, from GNU time): another agent's load on a shared machine
moves wall times much more than CPU. Each timed ``calls`` run is followed by ``bare_client.py``
making the same 1,000 calls as a bare aiohttp process (interpreter, aiohttp, the engine's ramp,
nothing else): its fraction of C/L is the machine's floor, and ``calls_of_floor`` (its wall time
over the run's) the share of it PromptLooper keeps, which moves much less than the fraction does
when the machine's speed changes. Both processes' walls are split in three, so that a gap can be
placed: until the first call (the run: its first run's ``started_at`` in its database), the calls
(to the last reply: the last run's ``completed_at``, its scores included), and after it to the exit;
with the mean latency of a call as each client saw it (the run: the runs' ``latency_ms``). The
calls take at least ``ceil(1000 / 64) = 16`` rounds of that latency. Figures go to
``benchmarks/results.json`` under ``startup``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results.json"
SCENARIOS = ("help", "run", "calls", "cached", "rss")
TARGETS = {"help_s": 0.25, "run_s": 0.8, "calls_fraction": 0.75, "cached_runs_per_s": 5000, "peak_rss_mb": 150}
CONCURRENCY, LATENCY, N_CALLS, N_CACHED = 64, 0.100, 1000, 10_000
TIME = shutil.which("time", path="/usr/bin:/bin") or "/usr/bin/time"  # GNU time (Debian package "time")


def experiment_yaml(base_url: str, name: str, topic: str, n_configs: int, n_samples: int) -> str:
    """One prompt stage over ``n_configs`` personas × ``n_samples`` samples, two cheap scorers;
    the calls depend on ``topic`` (a new topic: new calls)."""
    doc = {
        "project": "startup", "name": name,
        "samples": [{"question": f"Fact {i} about {topic}?", "reference": "alpha"} for i in range(n_samples)],
        "stages": [{"name": "answer", "model": "fake/fake-small", "system": "{{ persona }}", "user": "Q: {{ question }}",
                    "params": {"max_tokens": 16}}],
        "space": {"persona": [f"You are assistant {i}." for i in range(n_configs)]},
        "scorers": [{"name": "length", "max_words": 10}, {"name": "keyword", "words": ["alpha"]}],
        "endpoints": {"fake": {"base_url": base_url, "max_concurrency": CONCURRENCY, "max_retries": 2}},
        "concurrency": CONCURRENCY,
    }
    return json.dumps(doc)  # JSON is YAML


class Side:
    """One checkout to measure: its package on PYTHONPATH, its own working folder and database."""

    def __init__(self, label: str, tree: Path, work: Path):
        self.label, self.tree, self.work = label, tree, work
        self.work.mkdir(parents=True, exist_ok=True)
        # Without PYTHONDONTWRITEBYTECODE (set in some shells and CI jobs): a user's installed package has
        # its .pyc files, and the warm-up run writes them here. With it, a checkout that never had them
        # (the temporary --before tree) compiled every module from source in each timed process: a
        # --before HEAD comparison of identical code read ~0.11 s more CPU for that side.
        environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.env = {**environ, "PYTHONPATH": str(tree), "PROMPTLOOPER_DB": str(work / "promptlooper.db"),
                    "NO_COLOR": "1"}
        self.figures: dict[str, list[float]] = {}
        self.last_cpu = 0.0
        self.last_span = (0.0, 0.0)  # epoch seconds the last process was started and ended
        self.last_stdout = ""
        self.command = console_script(tree, work)

    def cli(self, *args: str, db: Path | None = None) -> tuple[float, float]:
        """(wall seconds, peak RSS in MB) of one ``promptlooper ARGS`` process; its CPU seconds
        (user + system) in ``self.last_cpu``: less sensitive than wall time to what else runs."""
        return self.process([*self.command, *args], db=db)

    def process(self, command: list[str], db: Path | None = None) -> tuple[float, float]:
        """:meth:`cli` for any command."""
        env = self.env if db is None else {**self.env, "PROMPTLOOPER_DB": str(db)}
        # GNU time reports the peak RSS: a child forked from this (larger) process would count the
        # pages it shared with it between fork and exec in its own ru_maxrss.
        rss_file = self.work / "maxrss"
        started, t0 = time.time(), time.perf_counter()
        proc = subprocess.run([TIME, "-f", "%M %U %S", "-o", str(rss_file), *command], cwd=self.work,
                              env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        self.last_span, self.last_stdout = (started, started + wall), proc.stdout
        if proc.returncode != 0:
            raise SystemExit(f"{self.label}: {' '.join(command)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        rss_kb, user, system = rss_file.read_text().split()[-3:]
        self.last_cpu = float(user) + float(system)
        return wall, int(rss_kb) / 1024

    def write(self, name: str, text: str) -> str:
        path = self.work / f"{name}.yaml"
        path.write_text(text)
        return str(path)

    def add(self, key: str, value: float) -> None:
        self.figures.setdefault(key, []).append(value)


def console_script(tree: Path, work: Path) -> list[str]:
    """What a user types, as ``tree`` installs it: the ``promptlooper`` console script that pip
    writes for that checkout's entry point (the venv's own script names this checkout's entry,
    which an older checkout may not have)."""
    import tomllib

    entry = tomllib.loads((tree / "pyproject.toml").read_text())["project"]["scripts"]["promptlooper"]
    module, func = entry.split(":")
    script = work / "promptlooper"
    script.write_text(f"#!{sys.executable}\nimport sys\nfrom {module} import {func}\n"
                      f"if __name__ == '__main__':\n    sys.exit({func}())\n")
    script.chmod(0o755)
    return [str(script)]


# ---------------------------------------------------------------------- scenarios (one repetition each)
def s_help(side: Side, urls: dict[str, str], timed: bool) -> None:
    wall, rss = side.cli("--help")
    if timed:
        side.add("help_s", wall)
        side.add("help_cpu_s", side.last_cpu)
        side.add("help_rss_mb", rss)


def s_run(side: Side, urls: dict[str, str], timed: bool) -> None:
    nonce = uuid.uuid4().hex[:12]
    path = side.write("one", experiment_yaml(urls["fast"], f"one-{nonce}", nonce, 1, 1))
    wall, rss = side.cli("run", path, "--quiet", "--yes")
    cpu = side.last_cpu
    fresh = side.work / f"new-{nonce}.db"
    wall_new, _ = side.cli("run", path, "--quiet", "--yes", db=fresh)
    for f in side.work.glob(f"new-{nonce}.db*"):
        f.unlink()
    if timed:
        side.add("run_s", wall)
        side.add("run_cpu_s", cpu)
        side.add("run_rss_mb", rss)
        side.add("run_new_db_s", wall_new)


def stored_calls(db: str, name: str) -> tuple[float, float, float]:
    """Experiment ``name``'s runs in ``db``: the epoch its first one started, the epoch its last one
    ended, and a call's mean latency in ms (read only: the side's own package owns the schema)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
        first, last, latency = c.execute(
            "SELECT min(r.started_at), max(r.completed_at), avg(r.latency_ms) FROM runs r"
            " JOIN experiments e ON e.id = r.experiment_id WHERE e.name = ?", (name,)).fetchone()
    return datetime.fromisoformat(first).timestamp(), datetime.fromisoformat(last).timestamp(), latency


def add_phases(side: Side, who: str, span: tuple[float, float], first: float, last: float, latency_ms: float) -> None:
    side.add(f"{who}_first_s", first - span[0])
    side.add(f"{who}_flow_s", last - first)
    side.add(f"{who}_latency_ms", latency_ms)
    side.add(f"{who}_last_s", span[1] - last)


def s_calls(side: Side, urls: dict[str, str], timed: bool) -> None:
    nonce = uuid.uuid4().hex[:12]
    path = side.write("calls", experiment_yaml(urls["slow"], f"calls-{nonce}", nonce, 20, N_CALLS // 20))
    wall, rss = side.cli("run", path, "--quiet", "--yes")
    cpu, span = side.last_cpu, side.last_span
    # The machine's floor, right after: the same calls from a bare aiohttp client process
    # (bare_client.py), spaced at first as this checkout's engine spaces them.
    from promptlooper.engine.ramp import SPACING

    floor, _ = side.process([sys.executable, str(HERE / "bare_client.py"), urls["slow"], str(N_CALLS),
                             str(CONCURRENCY), str(SPACING)])
    if timed:
        add_phases(side, "calls", span, *stored_calls(side.env["PROMPTLOOPER_DB"], f"calls-{nonce}"))
        bare = json.loads(side.last_stdout)
        add_phases(side, "floor", side.last_span, bare["first_sent"], bare["last_answered"], bare["latency_ms"])
        side.add("calls_s", wall)
        side.add("calls_cpu_s", cpu)
        side.add("calls_fraction", N_CALLS / wall / (CONCURRENCY / LATENCY))
        side.add("calls_rss_mb", rss)
        side.add("floor_fraction", N_CALLS / floor / (CONCURRENCY / LATENCY))
        side.add("calls_of_floor", floor / wall)


def s_cached(side: Side, urls: dict[str, str], timed: bool) -> None:
    if not (side.work / "cache-filled").exists():  # the calls, made once (untimed)
        side.cli("run", side.write("fill", experiment_yaml(urls["fast"], "fill", "cached", 10, N_CACHED // 10)),
                 "--quiet", "--yes")
        (side.work / "cache-filled").touch()
    if not timed:
        return
    nonce = uuid.uuid4().hex[:12]
    path = side.write("cached", experiment_yaml(urls["fast"], f"cached-{nonce}", "cached", 10, N_CACHED // 10))
    wall, rss = side.cli("run", path, "--quiet", "--yes")
    side.add("cached_s", wall)
    side.add("cached_cpu_s", side.last_cpu)
    side.add("cached_runs_per_s", N_CACHED / wall)
    side.add("cached_rss_mb", rss)


def s_rss(side: Side, urls: dict[str, str], timed: bool) -> None:
    """run.py's (d) with this side's package (once: it takes a minute and its peak barely varies)."""
    if not timed or "d_peak_rss_mb" in side.figures:
        return
    sys.path.insert(0, str(HERE))
    import run as bench

    result = bench.run_one("d", False, str(side.tree))
    if "error" in result:
        raise SystemExit(f"{side.label}: (d) {result['error']}")
    side.add("d_peak_rss_mb", result["peak_rss_mb"])


RUNNERS = {"help": s_help, "run": s_run, "calls": s_calls, "cached": s_cached, "rss": s_rss}


# ---------------------------------------------------------------------- report
def summary(side: Side) -> dict[str, Any]:
    out: dict[str, Any] = {k: round(statistics.median(v), 4) for k, v in side.figures.items()}
    out["runs"] = {k: [round(x, 4) for x in v] for k, v in side.figures.items()}
    rss = [v for k, v in out.items() if k.endswith("rss_mb")]
    if rss:
        out["peak_rss_mb"] = max(rss)
    return out


ROWS = [("help_s", "promptlooper --help (s)", "<="), ("help_cpu_s", "  CPU (s)", None),
        ("run_s", "one-call run (s)", "<="), ("run_cpu_s", "  CPU (s)", None),
        ("run_new_db_s", "  same, new database (s)", None), ("calls_fraction", "1,000 calls, fraction of C/L", ">="),
        ("calls_s", "  wall (s)", None), ("calls_cpu_s", "  CPU (s)", None),
        ("floor_fraction", "  a bare aiohttp client's fraction", None), ("calls_of_floor", "  run's share of that floor", None),
        ("calls_first_s", "  run: until its first call (s)", None), ("floor_first_s", "  bare: until its first call (s)", None),
        ("calls_flow_s", f"  run: its {math.ceil(N_CALLS / CONCURRENCY)} rounds of calls (s)", None),
        ("floor_flow_s", f"  bare: its {math.ceil(N_CALLS / CONCURRENCY)} rounds of calls (s)", None),
        ("calls_latency_ms", "  run: a call's latency (ms)", None), ("floor_latency_ms", "  bare: a call's latency (ms)", None),
        ("calls_last_s", "  run: after its last reply (s)", None), ("floor_last_s", "  bare: after its last reply (s)", None),
        ("cached_runs_per_s", "10,000 cached runs, runs/s", ">="), ("cached_cpu_s", "  CPU (s)", None),
        ("peak_rss_mb", "peak RSS of all these (MB)", "<="), ("d_peak_rss_mb", "  of run.py (d) (MB)", None),
        ("help_rss_mb", "  of --help (MB)", None), ("run_rss_mb", "  of the one-call run (MB)", None),
        ("calls_rss_mb", "  of the 1,000 calls (MB)", None), ("cached_rss_mb", "  of the cached run (MB)", None)]


def table(results: dict[str, dict[str, Any]]) -> str:
    labels = list(results)
    lines = [f"{'figure':34} {'target':>9} " + " ".join(f"{lb:>12}" for lb in labels)]
    for key, text, op in ROWS:
        if not any(key in r for r in results.values()):
            continue
        target = TARGETS.get(key if key != "d_peak_rss_mb" else "peak_rss_mb")
        cells = []
        for lb in labels:
            v = results[lb].get(key)
            ok = "" if v is None or op is None else (" ✓" if (v <= target if op == "<=" else v >= target) else " ✗")
            cells.append(f"{'–' if v is None else f'{v:,.3f}' if v < 10 else f'{v:,.0f}':>10}{ok:2}")
        tgt = f"{op} {target:g}" if op and target is not None else ""
        lines.append(f"{text:34} {tgt:>9} " + " ".join(cells))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", help=f"which of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--before", metavar="REF", help="also measure this git ref (checked out into a temp worktree)")
    parser.add_argument("--repeat", type=int, default=5, help="timed processes per scenario (the median is reported)")
    parser.add_argument("--no-save", action="store_true", help="do not write benchmarks/results.json")
    args = parser.parse_args()
    chosen = args.scenarios or list(SCENARIOS)
    if unknown := set(chosen) - set(SCENARIOS):
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    sys.path.insert(0, str(ROOT))
    from promptlooper.testing.fake_server import _terminate, spawn_fake_server

    tmp = Path(tempfile.mkdtemp(prefix="pl-startup-"))
    servers = {name: spawn_fake_server(latency=latency) for name, latency in (("fast", 0.0), ("slow", LATENCY))}
    urls = {name: url for name, (_, url) in servers.items()}
    sides = [Side("after", ROOT, tmp / "after")]
    try:
        if args.before:
            before_tree = tmp / "before-tree"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before_tree), args.before],
                           check=True, capture_output=True)
            sides.insert(0, Side(f"before ({args.before})", before_tree, tmp / "before"))
        load = os.getloadavg()[0]
        for name in chosen:  # warm-up: one untimed run of each, per side
            for side in sides:
                RUNNERS[name](side, urls, False)
        for i in range(args.repeat):
            for name in chosen:
                for side in sides:
                    RUNNERS[name](side, urls, True)
            print(f"repetition {i + 1}/{args.repeat} done", file=sys.stderr)
        results = {side.label.split(" ")[0]: summary(side) for side in sides}
    finally:
        for proc, _ in servers.values():
            _terminate(proc)
        if args.before:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp / "before-tree")],
                           capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print(table(results))
    if not args.no_save:
        data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        data["startup"] = {
            "_machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "when": time.strftime("%Y-%m-%d %H:%M:%S"), "load_before": round(load, 2),
                         "load_after": round(os.getloadavg()[0], 2)},
            "_note": f"median of {args.repeat} fresh processes each; before = {args.before or 'not measured'}",
            **results,
        }
        RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")  # as run.py writes it
    return 0


if __name__ == "__main__":
    sys.exit(main())
