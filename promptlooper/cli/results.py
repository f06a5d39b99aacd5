"""Commands that read what a sweep left: ``leaderboard``, ``definitions``, ``status``, ``runs``,
``show``, ``events``, ``export``. Each asks the Workbench and prints what it returns."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from ..errors import PromptLooperError
from .commands import command
from .output import print_frame_json, print_leaderboard, table, write_file

if TYPE_CHECKING:
    from ..workbench import Workbench

RUNS_SHOWN = 50
RUN_COLUMNS = ["id", "config_id", "sample_index", "repeat", "status", "score", "tokens_in", "tokens_out", "output", "error"]


def cmd_leaderboard(wb: Workbench, args: argparse.Namespace) -> int:
    which = {"sort": args.sort, "top": args.top, "definition": args.definition, "all_definitions": args.all}
    if args.json:
        print_frame_json(wb.leaderboard(args.experiment, **which))
    else:
        print_leaderboard(wb.leaderboard(args.experiment, as_frame=False, **which))
    return 0


def cmd_definitions(wb: Workbench, args: argparse.Namespace) -> int:
    rows = wb.definitions(args.experiment)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for r in rows:  # the space in full: it is what tells two definitions apart
        print(f"#{r['number']}{' (current)' if r['current'] else ''}  {r['created_at']}  {r['samples']} sample(s), "
              f"{r['configurations']} configuration(s); stages: {', '.join(r['stages'])}; scorers: {', '.join(r['scorers'])}")
        print(f"    space: {json.dumps(r['space'], ensure_ascii=False)}")
    if not rows:
        print("(no definition recorded yet: the experiment has not run since definitions are kept)")
    return 0


def cmd_status(wb: Workbench, args: argparse.Namespace) -> int:
    print(json.dumps(wb.status(args.experiment), indent=2, default=str))
    return 0


def cmd_runs(wb: Workbench, args: argparse.Namespace) -> int:
    if args.format not in ("table", "json"):
        return runs_export(wb, args)
    if args.format == "json" or args.json:  # every run unless --limit: an export, not a screenful
        print(json.dumps(wb.runs(args.experiment, args.config, args.limit), indent=2))
        return 0
    shown_limit = args.limit or RUNS_SHOWN
    rows = wb.runs(args.experiment, args.config, shown_limit + 1)
    print(table(rows[:shown_limit], RUN_COLUMNS))
    if len(rows) > shown_limit and not args.limit:
        print(f"(the first {shown_limit}; every run: --format csv|jsonl|parquet -o FILE, or --limit N)", file=sys.stderr)
    return 0


def runs_export(wb: Workbench, args: argparse.Namespace) -> int:
    """Every run (or the first --limit) as csv / jsonl / parquet, to -o FILE or stdout."""
    from ..runs_table import encode

    if args.format == "parquet" and not args.output:
        raise PromptLooperError("parquet is binary: write it to a file with -o FILE (csv and jsonl may go to stdout)")
    df = wb.runs(args.experiment, args.config, args.limit, as_frame=True)
    data = encode(df, args.format)
    if args.output:
        write_file(data, args.output)
        print(f"wrote {len(df):,} runs to {args.output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        print(f"{len(df):,} runs", file=sys.stderr)
    return 0


def cmd_show(wb: Workbench, args: argparse.Namespace) -> int:
    print(json.dumps(wb.run_detail(args.run), indent=2, ensure_ascii=False))
    return 0


def cmd_events(wb: Workbench, args: argparse.Namespace) -> int:
    rows = wb.events(args.experiment, args.type or None, limit=args.limit)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            payload = dict(r["payload"] or {})
            by = payload.pop("by", "") if isinstance(payload.get("by"), str) else ""
            who = f"by {by}" if by else ""  # who acted (promptlooper.actors), in a column of its own
            print(f"{r['ts']}  {r['type']:<22} {who:<16} {json.dumps(payload, ensure_ascii=False)[:120]}")
    return 0


def cmd_export(wb: Workbench, args: argparse.Namespace) -> int:
    text = wb.export(args.experiment, args.format)
    if args.output:
        write_file(text.encode("utf-8"), args.output)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


# What add_parser adds: a command line naming one of these builds only this group's parsers (cli/parser.py).
COMMANDS = ("leaderboard", "definitions", "status", "runs", "show", "events", "export")


def add_parser(sub: Any) -> None:
    p = command(sub, "leaderboard", cmd_leaderboard, "Configurations ranked by weighted score, with n and a 95-percent interval.")
    p.add_argument("experiment")
    p.add_argument("--json", action="store_true")
    p.add_argument("--sort", help="a scorer column, tokens, cost or latency_ms")
    p.add_argument("--top", type=int)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every configuration and sample ever run, earlier definitions included")
    which.add_argument("--definition", type=int, metavar="N", help="rank an earlier definition (numbers from `definitions`)")
    p = command(sub, "definitions", cmd_definitions,
                "An experiment's definitions: each run with changed samples, stages, space or scorers.")
    p.add_argument("experiment")
    p.add_argument("--json", action="store_true")
    p = command(sub, "status", cmd_status, "An experiment's status, run counts and latest sweep.")
    p.add_argument("experiment")
    p = command(sub, "runs", cmd_runs,
                "List an experiment's runs (the first 50), or export them all: --format csv|jsonl|parquet -o FILE.")
    p.add_argument("experiment")
    p.add_argument("--config", help="configuration id prefix")
    p.add_argument("--limit", type=int, help="at most N runs (default: 50 in the table, every run in an export)")
    p.add_argument("--format", choices=["table", "json", "csv", "jsonl", "parquet"], default="table",
                   help="csv / jsonl / parquet: one row per run with every varied parameter and scorer as columns")
    p.add_argument("--output", "-o", help="file to write (default: stdout; parquet needs a file)")
    p.add_argument("--json", action="store_true", help="same as --format json")
    p = command(sub, "show", cmd_show, "One run in full: prompts sent, responses, scores.")
    p.add_argument("run")
    p = command(sub, "events", cmd_events, "An experiment's event timeline.")
    p.add_argument("experiment")
    p.add_argument("--type", action="append", help="event type, or a family such as 'run.*' (repeatable)")
    p.add_argument("--limit", type=int)
    p.add_argument("--json", action="store_true")
    p = command(sub, "export", cmd_export,
                "The best configuration (approved, else top) as json / yaml / env, or a markdown report.")
    p.add_argument("experiment")
    p.add_argument("--format", choices=["json", "yaml", "env", "report"], default="json")
    p.add_argument("--output", "-o")
