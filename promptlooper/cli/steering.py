"""Commands that steer a sweep from any process: ``pause``, ``resume``, ``stop``, ``redirect``,
``budget``, ``approve``, ``reject``, ``fork``, ``request-human``. Steering is state in the store,
so the sweep applies it wherever it runs; these only ask the Workbench."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from ..errors import Problem, SpecError
from .commands import command
from .run import sweep, sweep_options

if TYPE_CHECKING:
    from ..workbench import Workbench


def assignments(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs; VALUE is YAML, so 0.5, [0.1, 0.2] and {min: 0, max: 1, step: 0.5} all work."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SpecError([Problem(item, "expected KEY=VALUE", "e.g. answer.temperature=[0.1,0.3]")])
        out[key.strip()] = yaml.safe_load(value)
    return out


def cmd_steer(wb: Workbench, args: argparse.Namespace) -> int:
    verb = args.command
    fn = {"pause": wb.pause, "resume": wb.resume, "stop": wb.stop}[verb]
    out = fn(args.experiment)  # SweepInterruptedError (exit 1) when the sweep's process is gone
    print(f"{verb} requested for sweep {out['id'][:8]} (status {out['status']}); the engine applies it within a second")
    return 0


def cmd_redirect(wb: Workbench, args: argparse.Namespace) -> int:
    if not (args.space or args.set):
        raise SpecError([Problem("redirect", "nothing to change", "give --set KEY=VALUES (repeatable) or --space JSON")])
    try:
        space = json.loads(args.space) if args.space else None
    except json.JSONDecodeError as exc:
        raise SpecError([Problem("--space", f"not JSON: {exc.msg} (column {exc.colno})",
                                 """e.g. --space '{"answer.temperature": [0.0, 0.2]}', or use --set KEY=VALUES""")]) from exc
    # --set changes the axes it names and keeps the others; --space replaces the whole space.
    out = wb.redirect(args.experiment, space, changes=assignments(args.set) if args.set else None)
    print(f"{out['experiment']}: space now {json.dumps(out['space'])} ({out['configurations']} configurations)"
          + (" — applied to the running sweep" if out["live"] else " — used by the next run"))
    return 0


def cmd_budget(wb: Workbench, args: argparse.Namespace) -> int:
    budget = wb.set_budget(args.experiment, max_tokens=args.max_tokens, max_cost=args.max_cost)
    print(f"budget now {budget}; `promptlooper resume` continues a budget pause")
    return 0


def cmd_decide(wb: Workbench, args: argparse.Namespace) -> int:
    fn = wb.approve if args.command == "approve" else wb.reject
    out = fn(args.experiment, args.config, by=args.by, reason=args.reason)
    print(f"configuration {out['config_id'][:12]} {out['decision']} by {out['by']}")
    return 0


def cmd_fork(wb: Workbench, args: argparse.Namespace) -> int:
    child = wb.fork(args.experiment, args.config, assignments(args.set or []), name=args.name)
    print(f"forked {child.key}; run it with `promptlooper rerun {child.key}`")
    return sweep(wb, child, args) if args.run else 0


def cmd_human(wb: Workbench, args: argparse.Namespace) -> int:
    wb.request_human(args.experiment, args.reason)
    print("human_needed raised")
    return 0


# What add_parser adds: a command line naming one of these builds only this group's parsers (cli/parser.py).
COMMANDS = ("pause", "resume", "stop", "redirect", "budget", "approve", "reject", "fork", "request-human")


def add_parser(sub: Any) -> None:
    for verb, text in (("pause", "Pause a running sweep (from any process): calls in flight finish, no new ones start."),
                       ("resume", "Resume a paused sweep."), ("stop", "Stop a sweep; finished runs stay.")):
        command(sub, verb, cmd_steer, text).add_argument("experiment")
    p = command(sub, "redirect", cmd_redirect, "Change the remaining space of a (running) sweep; runs already done stay.")
    p.add_argument("experiment")
    p.add_argument("--set", action="append", help="KEY=VALUES (YAML list or range): that key's new values, the others kept; repeatable")
    p.add_argument("--space", help="the whole new space as JSON")
    p = command(sub, "budget", cmd_budget, "Set or raise the budget of a running or paused sweep.")
    p.add_argument("experiment")
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--max-cost", type=float)
    for verb, text in (("approve", "Mark a configuration good enough: it becomes the exported best."),
                       ("reject", "Exclude a configuration from the leaderboard (runs are kept).")):
        p = command(sub, verb, cmd_decide, text)
        p.add_argument("experiment")
        p.add_argument("config", help="configuration id (a prefix from the leaderboard)")
        p.add_argument("--by", default="", help="who decides (default: --as, $PROMPTLOOPER_USER or your user name)")
        p.add_argument("--reason", default="")
    p = command(sub, "fork", cmd_fork,
                "A new experiment from a configuration (default: the approved one, else the best) with changed parameters.")
    p.add_argument("experiment")
    p.add_argument("--config", help="configuration id prefix (default: the approved one, else the leaderboard's top)")
    p.add_argument("--set", action="append", help="KEY=VALUE (YAML): a fixed value or a list to sweep; repeatable")
    p.add_argument("--name")
    p.add_argument("--run", action="store_true", help="run the fork right away")
    sweep_options(p)
    p = command(sub, "request-human", cmd_human, "Raise the human_needed event for an experiment.")
    p.add_argument("experiment")
    p.add_argument("reason")
