"""Commands about scores: ``rescore`` (stored runs, new or changed scorers, no model calls needed),
``rate`` (a human's thumbs or stars) and ``calibration`` (how far each judge agrees with humans)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from .commands import command
from .output import table

if TYPE_CHECKING:
    from ..workbench import Workbench


def cmd_rescore(wb: Workbench, args: argparse.Namespace) -> int:
    if not (args.file or args.experiment):
        print("give an EXPERIMENT or --file FILE", file=sys.stderr)
        return 2
    # With --file, the file's (new or changed) scorers become the experiment's and score its runs.
    target: Any = wb.load_file(args.file) if args.file else args.experiment
    out = wb.rescore(target, model_calls=not args.no_model_calls)
    print(f"re-scored {out['runs']} run(s): {out['scores']} score(s) written, {out['calls']} model call(s) "
          f"({out['cache_hits']} from the cache)")
    if out.get("failed"):
        # A missing score is not a verdict: say how many and why, and fail the command (CI reads the exit code).
        print(f"{out['failed']} score(s) failed (missing, left out of every mean):", file=sys.stderr)
        for reason, count in sorted(out["failures"].items(), key=lambda kv: -kv[1]):
            print(f"  {count} x {reason}", file=sys.stderr)
        return 1
    return 0


def cmd_rate(wb: Workbench, args: argparse.Namespace) -> int:
    out = wb.rate(args.run, thumbs=args.thumbs, stars=args.stars, comment=args.comment, by=args.by)
    print(json.dumps(out, indent=2, default=str))
    return 0


def cmd_calibration(wb: Workbench, args: argparse.Namespace) -> int:
    df = wb.calibration(args.experiment)
    if args.json:
        print(df.to_json(orient="records", indent=2))
    else:
        print(table(df.to_dict(orient="records")) if len(df) else "no runs have both a judge score and a human rating yet")
    return 0


# What add_parser adds: a command line naming one of these builds only this group's parsers (cli/parser.py).
COMMANDS = ("rescore", "rate", "calibration")


def add_parser(sub: Any) -> None:
    p = command(sub, "rescore", cmd_rescore, "Re-score every stored run with the experiment's (or a file's) scorers; no model calls.")
    p.add_argument("experiment", nargs="?", help="experiment to re-score with its stored scorers")
    p.add_argument("--file", help="an experiment file whose scorers to apply (same project/name)")
    p.add_argument("--no-model-calls", action="store_true", help="skip judges that would need a call not in the cache")
    p = command(sub, "rate", cmd_rate, "Rate a run: thumbs up/down and/or 1-5 stars, with a comment (stored as human scores).")
    p.add_argument("run")
    p.add_argument("--thumbs", choices=["up", "down"])
    p.add_argument("--stars", type=int, choices=[1, 2, 3, 4, 5])
    p.add_argument("--comment", default="")
    p.add_argument("--by", default="")
    p = command(sub, "calibration", cmd_calibration, "How far to trust each judge: agreement with human ratings (Spearman, kappa).")
    p.add_argument("experiment")
    p.add_argument("--json", action="store_true")
