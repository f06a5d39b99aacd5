"""Commands that compare: ``compare`` (A vs B, in one experiment or across two), ``compare-experiments``
and ``group`` (a metric by any variable). The statistics are the Workbench's; these print them."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from ..errors import PromptLooperError
from .commands import command
from .output import table

if TYPE_CHECKING:
    from ..workbench import Workbench


def rank_or_id(value: str) -> str | int:
    """A leaderboard rank (``2``) or a configuration id prefix; ids are hex, so longer digits stay ids."""
    return int(value) if value.isdigit() and len(value) < 6 else value


def compared(wb: Workbench, args: argparse.Namespace) -> dict[str, Any]:
    """``compare EXP A B`` (A / B: a CONFIG of EXP, or OTHER_EXP:CONFIG), or ``compare EXP:A EXP2:B``."""
    if args.b is None:
        if ":" not in args.experiment or ":" not in (args.a or ""):
            raise PromptLooperError("compare takes EXPERIMENT A B, or A and B each as EXPERIMENT:CONFIG "
                                    "(e.g. promptlooper compare qa/base:best qa/base-fork1:best)")
        return wb.compare_across(args.experiment, args.a, scorer=args.scorer)
    if ":" in args.a or ":" in args.b:
        a = args.a if ":" in args.a else f"{args.experiment}:{args.a}"
        b = args.b if ":" in args.b else f"{args.experiment}:{args.b}"
        return wb.compare_across(a, b, scorer=args.scorer)
    return wb.compare(args.experiment, rank_or_id(args.a), rank_or_id(args.b), scorer=args.scorer)


def cmd_compare(wb: Workbench, args: argparse.Namespace) -> int:
    out = compared(wb, args)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    a, b = (f"{out[f'experiment_{x}']}:" if f"experiment_{x}" in out else "" for x in "ab")
    print(f"A {a}{str(out.get('config_a', args.a))[:12]}: {out['mean_a']:.3f}   B {b}{str(out.get('config_b', args.b))[:12]}: {out['mean_b']:.3f}"
          f"   over n={out['n']} shared samples")
    print(f"difference A-B {out['mean_diff']:+.3f}, 95% interval [{out['ci_low']:+.3f}, {out['ci_high']:+.3f}], p = {out['p_value']:.4g}"
          f" → {'significant' if out['significant'] else 'not distinguishable'}")
    return 0


def cmd_compare_experiments(wb: Workbench, args: argparse.Namespace) -> int:
    df = wb.compare_experiments(args.a, args.b, scorer=args.scorer)
    if args.json:
        print(json.dumps({**dict(df.attrs.items()), "rows": json.loads(df.to_json(orient="records"))}, indent=2))
        return 0
    a = df.attrs
    print(f"{a['experiment_a']} vs {a['experiment_b']} over {a['shared_samples']} shared samples "
          f"(only in A: {a['only_a']}, only in B: {a['only_b']})")
    for name in (a["experiment_a"], a["experiment_b"]):
        part = df[df.experiment == name].drop(columns=["experiment", "full_config_id"])
        print(f"\n{name}")
        print(table(part.head(args.top).to_dict(orient="records")))
    return 0


def cmd_group(wb: Workbench, args: argparse.Namespace) -> int:
    by = [args.by] + ([args.by2] if args.by2 else [])
    df = wb.group_by(args.experiment, by, metric=args.metric)
    if args.json:
        print(df.to_json(orient="records", indent=2))
    else:
        print(f"{args.metric} by {' × '.join(by)}: mean, 95% interval, n = (configuration, sample) pairs")
        print(table(df.to_dict(orient="records")))
    return 0


# What add_parser adds: a command line naming one of these builds only this group's parsers (cli/parser.py).
COMMANDS = ("compare", "group", "compare-experiments")


def add_parser(sub: Any) -> None:
    p = command(sub, "compare", cmd_compare, "A vs B: paired comparison of two configurations over their shared samples "
                                             "(of one experiment, or of two: EXPERIMENT:CONFIG).")
    p.add_argument("experiment", help="the experiment of A and B, or A itself as EXPERIMENT:CONFIG")
    p.add_argument("a", help="configuration id prefix, 'best', a leaderboard rank, or OTHER_EXPERIMENT:CONFIG")
    p.add_argument("b", nargs="?", help="the same (omitted when the first two are EXPERIMENT:CONFIG each)")
    p.add_argument("--scorer", help="compare one scorer instead of the weighted score")
    p.add_argument("--json", action="store_true")
    p = command(sub, "group", cmd_group, "Mean, 95-percent interval and n per value of any variable (or per pair of values).")
    p.add_argument("experiment")
    p.add_argument("by", help="a varied parameter (e.g. persona, answer.temperature), config_id, sample_id or status")
    p.add_argument("by2", nargs="?", help="a second variable: one row per pair of values")
    p.add_argument("--metric", default="score", help="score (default), a scorer, cost, tokens or latency_ms")
    p.add_argument("--json", action="store_true")
    p = command(sub, "compare-experiments", cmd_compare_experiments,
                "Two experiments' leaderboards side by side over their shared samples (a fork and its parent, or any two).")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--scorer", help="rank by one scorer instead of the weighted score")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--json", action="store_true")
