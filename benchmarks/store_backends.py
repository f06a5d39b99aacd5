"""A sweep on each store backend: the fraction of C/L while calls flow, and cached runs/s.

    .venv/bin/python benchmarks/store_backends.py /tmp/b.db postgresql://postgres@127.0.0.1:54329/pl

For each location (a SQLite file or a PostgreSQL URL, as ``--db`` takes): (a) two sweeps of 2,000
distinct calls against the fake server in another process at latency 100 ms and concurrency 64,
the second judged (as in run.py's (a)); (c) a new experiment of the same 2,000 calls, all cached.
Issue 18's target: the PostgreSQL fraction of C/L as on SQLite (>= 0.90). Runs each location in
this process one after the other; give an empty database (or a new file) each time.

Measured on the 2-core machine (quiet; PostgreSQL 15 of tests/pg.py, fsync off, on the same
machine), two rounds each:
  sqlite      0.90 / 0.86 of C/L, engine CPU 627 / 610 us a run, cached 8,600 / 9,500 runs/s
  postgresql  0.90 / 0.90 of C/L, engine CPU 686 / 663 us a run, cached 4,900 / 5,200 runs/s
(The cached gap: PostgreSQL is read off the sweep's loop, the next group of runs' keys looked up
in one round trip on a connection held for it (store/postgres/reads.py), while SQLite answers
in-process on the loop; the second process the server is costs CPU of its own on 2 cores.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scenarios  # noqa: E402  (its experiment builder, after the path is set)

import promptlooper as pl  # noqa: E402
from promptlooper.store import open_store  # noqa: E402
from promptlooper.testing.fake_server import _terminate, spawn_fake_server  # noqa: E402

LATENCY, N_CONFIGS, N_SAMPLES = 0.100, 40, 50


def one(location: str, base_url: str) -> dict[str, float]:
    topic = uuid.uuid4().hex[:8]  # new calls each time, whatever the database already caches
    wb = pl.Workbench(location)
    try:
        wb.run(scenarios.experiment(base_url, f"cold-{topic}", N_CONFIGS, N_SAMPLES, topic=f"cold {topic}"))
        t0, c0 = time.perf_counter(), time.process_time()
        progress = wb.run(scenarios.experiment(base_url, f"a-{topic}", N_CONFIGS, N_SAMPLES, topic=topic))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        cached = wb.run(scenarios.experiment(base_url, f"c-{topic}", N_CONFIGS, N_SAMPLES, topic=topic))
        cached_wall = time.perf_counter() - t0
    finally:
        wb.close()
    store = open_store(location, readonly=True)
    try:
        stored = store.run_counts(store.experiment(f"bench/a-{topic}")["id"])
    finally:
        store.close()
    runs = N_CONFIGS * N_SAMPLES
    assert progress.done == runs and cached.cached == runs and stored == {"completed": runs}, (progress, cached, stored)
    return {"fraction_of_ideal": round(runs / wall / (scenarios.CONCURRENCY / LATENCY), 3),
            "calls_per_s": round(runs / wall, 1),
            # This process's CPU (every thread; not SQLite's writer process, nor the server's): what
            # competes with the event loop, and far less moved by other load than wall figures.
            "engine_cpu_us_per_run": round(cpu / runs * 1e6), "cached_runs_per_s": round(runs / cached_wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("locations", nargs="+")
    args = ap.parse_args()
    server, base_url = spawn_fake_server(latency=LATENCY)
    try:
        for location in args.locations:
            print(location.split("://", 1)[0] if "://" in location else "sqlite", json.dumps(one(location, base_url)))
    finally:
        _terminate(server)


if __name__ == "__main__":
    main()
