"""The data commands of the CLI: ``runs --format``, ``group``, ``compare`` across experiments,
``compare-experiments``. Thin: each calls the facade and prints or writes what it returns."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .errors import Problem, PromptLooperError, SpecError
from .runs_table import EXPORT_FORMATS, encode
from .workbench import Workbench


def write_output(data: bytes, output: str | None, what: str) -> None:
    """``data`` to the file ``output`` (its folder must exist), or to stdout."""
    if not output:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    out = Path(output)
    if not out.parent.is_dir():
        raise SpecError([Problem("--output", f"no folder {str(out.parent)!r} to write {out.name!r} into",
                                 "create the folder first, or name another file")])
    try:
        out.write_bytes(data)
    except OSError as exc:
        raise SpecError([Problem("--output", f"cannot write {output}: {exc.strerror}", "name another file")]) from exc
    print(f"wrote {what} to {output}", file=sys.stderr)


def runs_export(wb: Workbench, args: argparse.Namespace) -> int:
    """Every run (or the first --limit) as csv / jsonl / parquet, to -o FILE or stdout."""
    if args.format == "parquet" and not args.output:
        raise PromptLooperError("parquet is binary: write it to a file with -o FILE (csv and jsonl may go to stdout)")
    df = wb.runs(args.experiment, args.config, args.limit, as_frame=True)
    write_output(encode(df, args.format), args.output, f"{len(df):,} runs")
    if not args.output:
        print(f"{len(df):,} runs", file=sys.stderr)
    return 0


def cmd_group(wb: Workbench, args: argparse.Namespace) -> int:
    from .cli import _table

    by = [args.by] + ([args.by2] if args.by2 else [])
    df = wb.group_by(args.experiment, by, metric=args.metric)
    if args.json:
        print(df.to_json(orient="records", indent=2))
    else:
        print(f"{args.metric} by {' × '.join(by)}: mean, 95% interval, n = (configuration, sample) pairs")
        print(_table(df.to_dict(orient="records")))
    return 0


def compare(wb: Workbench, args: argparse.Namespace, rank_or_id: Any) -> dict[str, Any]:
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


def cmd_compare_experiments(wb: Workbench, args: argparse.Namespace) -> int:
    from .cli import _table

    df = wb.compare_experiments(args.a, args.b, scorer=args.scorer)
    if args.json:
        print(json.dumps({**{k: v for k, v in df.attrs.items()}, "rows": json.loads(df.to_json(orient="records"))},
                         indent=2))
        return 0
    a = df.attrs
    print(f"{a['experiment_a']} vs {a['experiment_b']} over {a['shared_samples']} shared samples "
          f"(only in A: {a['only_a']}, only in B: {a['only_b']})")
    for name in (a["experiment_a"], a["experiment_b"]):
        part = df[df.experiment == name].drop(columns=["experiment", "full_config_id"])
        print(f"\n{name}")
        print(_table(part.head(args.top).to_dict(orient="records")))
    return 0


def add_parsers(add: Any) -> None:
    p = add("group", cmd_group, "Mean, 95-percent interval and n per value of any variable (or per pair of values).")
    p.add_argument("experiment")
    p.add_argument("by", help="a varied parameter (e.g. persona, answer.temperature), config_id, sample_id or status")
    p.add_argument("by2", nargs="?", help="a second variable: one row per pair of values")
    p.add_argument("--metric", default="score", help="score (default), a scorer, cost, tokens or latency_ms")
    p.add_argument("--json", action="store_true")
    p = add("compare-experiments", cmd_compare_experiments,
            "Two experiments' leaderboards side by side over their shared samples (a fork and its parent, or any two).")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--scorer", help="rank by one scorer instead of the weighted score")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--json", action="store_true")


__all__ = ["EXPORT_FORMATS", "add_parsers", "compare", "runs_export"]
