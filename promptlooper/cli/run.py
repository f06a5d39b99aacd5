"""Commands that check or sweep an experiment: ``validate``, ``plan``, ``run``, ``rerun``, ``quickstart``.

An experiment file is read once (``Workbench.load_file``), and that one object is validated,
sized and swept. ``run`` / ``rerun`` / ``quickstart`` (and ``fork --run``) exit 1 unless every run
completed, and with ``--fail-under`` unless the best (or approved) configuration scores at least
that: see :mod:`promptlooper.ci`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from .commands import CREATES, NONE_NEEDED, command, score, seconds
from .output import Bar, print_leaderboard, print_unpriced

if TYPE_CHECKING:
    from ..compiled import CompiledExperiment
    from ..spec import Experiment
    from ..workbench import Workbench


def compiled(wb: Workbench, exp: Experiment, args: argparse.Namespace) -> CompiledExperiment:
    """``exp`` validated and prepared once, with the command's options; every problem raised as
    one SpecError (exit 2) before any call. Sizing, planning and sweeping all take this object."""
    return wb.compile(exp, strategy=getattr(args, "strategy", None), max_configs=getattr(args, "max_configs", None),
                      seed=getattr(args, "seed", None), concurrency=getattr(args, "concurrency", None))


def cmd_validate(wb: Workbench, args: argparse.Namespace) -> int:
    ready = compiled(wb, wb.load_file(args.file), args)
    print(f"✓ {ready.key} is valid: {wb.sweep_size(ready).describe()}")
    return 0


def cmd_plan(wb: Workbench, args: argparse.Namespace) -> int:
    info = wb.plan(compiled(wb, wb.load_file(args.file), args))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['experiment']}: {info['configurations']} configuration(s) × {info['samples']} sample(s) × {info['repeat']} repeat(s)"
          f" = {info['runs']} runs ({info['finished_runs']} already finished)")
    scorers = f" (scorers: {info['scorer_calls']}, {info['cached_scorer_calls']} cached)" if info["scorer_calls"] else ""
    print(f"model calls: {info['calls']} needed, {info['cached_calls']} already cached → {info['calls_to_make']} to make{scorers}")
    print(f"estimated: {info['estimated_tokens']:,} tokens, ${info['estimated_cost']:.4f}")
    print_unpriced(info["unpriced_models"])
    return 0


def cmd_run(wb: Workbench, args: argparse.Namespace) -> int:
    return sweep(wb, wb.load_file(args.file), args)


def cmd_rerun(wb: Workbench, args: argparse.Namespace) -> int:
    return sweep(wb, wb.load(args.experiment), args)


def cmd_quickstart(wb: Workbench, args: argparse.Namespace) -> int:
    from importlib import resources
    from pathlib import Path

    with resources.as_file(resources.files("promptlooper") / "examples" / "quickstart.yaml") as path:
        exp = wb.load_file(path)
    print(f"quickstart: {exp.key} on the embedded model ({Path(wb.db_path).resolve()})", file=sys.stderr)
    return sweep(wb, exp, args)


def confirmed(wb: Workbench, ready: CompiledExperiment, args: argparse.Namespace) -> bool:
    """A sweep past the confirmation limits runs only with --yes, or a "y" typed at a terminal."""
    size = wb.sweep_size(ready)
    if not size.needs_confirmation or getattr(args, "yes", False):
        return True
    print(f"{ready.key}: {size.describe()}", file=sys.stderr)
    if sys.stdin.isatty() and sys.stderr.isatty():
        sys.stderr.write("start it? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() in ("y", "yes"):
            return True
    print("not started: add --yes to run it, or narrow the space (--max-configs, --strategy random)", file=sys.stderr)
    return False


def sweep(wb: Workbench, exp: Experiment, args: argparse.Namespace) -> int:
    """Sweep ``exp`` with a progress bar, print the leaderboard, and judge it for CI (the exit status)."""
    ready = compiled(wb, exp, args)  # the one validation: confirming, sweeping and reporting use it
    if not confirmed(wb, ready, args):
        return 2
    if getattr(args, "workers", False) and not args.wait:
        handle = wb.start(ready, workers=True, unhealthy_timeout=args.unhealthy_timeout, stop_on_budget=True)
        print(f"queued sweep {handle.sweep_id[:8]} of {exp.key} for workers: {handle.progress.total} runs "
              f"({handle.progress.done} already finished); run `promptlooper worker` where they should run, "
              f"`promptlooper status {exp.key}` to follow it")
        return 0
    bar = Bar(args.quiet)
    try:
        progress = wb.run(ready, listeners=[bar], unhealthy_timeout=args.unhealthy_timeout, stop_on_budget=True,
                          workers=getattr(args, "workers", False))
    except KeyboardInterrupt:
        bar.close()
        print("interrupted: finished runs are saved; run the same command again to resume", file=sys.stderr)
        return 130
    bar.close()
    if progress.stop_reason and progress.status == "completed":
        print(f"search stopped: {progress.stop_reason}")
    print(f"{progress.status}: {progress.done}/{progress.total} runs, {progress.failed} failed, "
          f"{progress.cached} cached, {progress.tokens:,} tokens, ${progress.cost:.4f}, "
          f"cache hit rate {progress.cache_hit_rate:.0%}, {progress.elapsed:.1f}s")
    print_unpriced(progress.unpriced)
    print()
    # Ranked once, as rows (no pandas after every run): printed (its top rows) and judged (--fail-under).
    board = wb.leaderboard(exp.key, as_frame=False)
    print_leaderboard(board[:args.top] if args.top else board)
    return verdict(wb, exp, progress, board, args)


def verdict(wb: Workbench, exp: Experiment, progress: Any, board: Any, args: argparse.Namespace) -> int:
    """0 if every run completed (and the best scores at least --fail-under); the JUnit report if asked."""
    from .. import ci

    status = 0
    problems = ci.failure_lines(progress)
    if problems:
        status = 1
        print("\n✗ not every run completed:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
    threshold = None
    if args.fail_under is not None:
        threshold = ci.check_fail_under(board, args.fail_under)
        print(("✓ " if threshold.ok else "✗ ") + threshold.message, file=sys.stderr)
        if not threshold.ok:
            status = 1
    if args.junit:
        # Imported only now: a run without --junit never imports an XML library.
        from ..junit import write_junit

        write_junit(wb.store, exp.key, wb.leaderboard(exp.key, include_rejected=True, as_frame=False),
                       progress, args.junit, threshold)
        print(f"wrote {args.junit}", file=sys.stderr)
    return status


def sweep_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strategy", choices=["grid", "random", "guided"])
    p.add_argument("--max-configs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--concurrency", type=int)
    p.add_argument("--top", type=int, default=10, help="leaderboard rows to print")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--yes", "-y", action="store_true",
                   help="start a sweep past the confirmation limits ($PROMPTLOOPER_CONFIRM_CALLS / _COST) without asking")
    p.add_argument("--fail-under", type=score, metavar="SCORE",
                   help="exit 1 if the best configuration (the approved one, if any) scores below SCORE (0..1)")
    p.add_argument("--junit", metavar="FILE", help="write a JUnit XML report (one test case per configuration)")
    p.add_argument("--workers", action="store_true",
                   help="queue the sweep for `promptlooper worker` processes (any number, any host) and return at once")
    p.add_argument("--wait", action="store_true", help="with --workers: follow the workers' progress and print the leaderboard")
    p.add_argument("--unhealthy-timeout", type=seconds, default=120.0, metavar="SECONDS",
                   help="stop the sweep when an endpoint stays unhealthy (its circuit breaker open) this long;"
                        " 0 stops at once (default 120)")


# What add_parser adds: a command line naming one of these builds only this group's parsers (cli/parser.py).
COMMANDS = ("validate", "run", "quickstart", "plan", "rerun")


def add_parser(sub: Any) -> None:
    p = command(sub, "validate", cmd_validate, "Check an experiment file; every problem with its field path (exit 2 if any).",
                database=NONE_NEEDED)
    p.add_argument("file")
    p = command(sub, "run", cmd_run, "Validate, then sweep an experiment file with a live progress bar; prints the leaderboard.",
                database=CREATES)
    p.add_argument("file")
    sweep_options(p)
    p = command(sub, "quickstart", cmd_quickstart, "Run the bundled quickstart experiment on the embedded model.",
                database=CREATES)
    sweep_options(p)
    p = command(sub, "plan", cmd_plan, "Before any call: calls needed, already cached, estimated tokens and cost.",
                database=NONE_NEEDED)
    p.add_argument("file")
    p.add_argument("--strategy", choices=["grid", "random"])
    p.add_argument("--max-configs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--json", action="store_true")
    p = command(sub, "rerun", cmd_rerun, "Run a stored experiment again (resumes; finished runs are skipped).")
    p.add_argument("experiment")
    sweep_options(p)
