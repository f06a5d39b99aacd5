"""``promptlooper worker``: take part in the sweeps queued for workers (``run --workers``).

Any number of workers, on any host that reaches the database, share every queued sweep (see
:mod:`promptlooper.workers`). SIGTERM (and Ctrl+C) let the calls in flight land and be recorded,
give the chunk back, and exit 0.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from .commands import CREATES, command, seconds

if TYPE_CHECKING:
    from ..workbench import Workbench


def cmd_worker(wb: Workbench, args: argparse.Namespace) -> int:
    import asyncio
    import signal
    import sys

    from ..workers.worker import Worker

    worker = Worker(wb.db_path, wb.compile_stored, concurrency=args.concurrency, lease=args.lease, max_idle=args.max_idle,
                    once=args.once, name=args.name)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.exit_soon)
        return await worker.run()

    print(f"worker {worker.name}: waiting for sweeps queued in {wb.db_path.split('@')[-1]}", file=sys.stderr, flush=True)
    status = asyncio.run(main())
    stats = worker.stats
    print(f"worker {worker.name}: {stats.chunks} chunk(s), {stats.runs} run(s), {stats.lost} lease(s) lost", file=sys.stderr)
    return status


# What add_parser adds: a command line naming one of these builds only this group's parsers (cli/parser.py).
COMMANDS = ("worker",)


def add_parser(sub: Any) -> None:
    p = command(sub, "worker", cmd_worker, "Run chunks of the sweeps queued for workers (`run --workers`), any experiment, until stopped.",
                database=CREATES)
    p.add_argument("--concurrency", type=int, help="calls in flight in this worker (default: the sweep's concurrency)")
    p.add_argument("--max-idle", type=seconds, metavar="SECONDS", help="exit after this long with no chunk to claim")
    p.add_argument("--once", action="store_true", help="exit (0) as soon as there is no chunk to claim")
    p.add_argument("--lease", type=float, default=10.0, metavar="SECONDS",
                   help="how long a claimed chunk stays this worker's without a commit (renewed every 2 s at most; default 10)")
    p.add_argument("--name", help="this worker's name in the chunks table (default HOST:PID)")
