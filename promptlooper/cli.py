"""The ``promptlooper`` command: thin, every command calls the Workbench facade.

Exit status: 0 ok, 1 an operation failed (message on stderr), 2 the input is invalid (every
problem listed with its field path and what to do), 130 interrupted, 141 the reader of the output
went away (``| head``), as a shell reports a process ended by SIGPIPE. ``run`` / ``rerun`` (and
``quickstart``, ``fork --run``) exit 1 unless every run of the sweep completed, and with
``--fail-under`` unless the best (or approved) configuration scores at least that: see
:mod:`promptlooper.ci`.

``--db FILE`` is accepted before or after any command. Commands about stored experiments never
create a database: on a file that does not exist they say so and exit 1; ``validate``, ``plan`` and
listing endpoints or webhooks work without one (an empty store in memory, nothing written).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from . import __version__
from .bounds import shown
from .cli_housekeeping import add_parsers as add_housekeeping
from .cli_housekeeping import cmd_prices_list
from .errors import Problem, PromptLooperError, SpecError
from .spec import Experiment
from .store import default_path
from .workbench import Workbench


def _print_problems(exc: SpecError) -> int:
    print(f"✗ {len(exc.problems)} problem(s); nothing was run:", file=sys.stderr)
    first, more = shown(exc.problems)
    for p in first:
        print(f"  {p.path}: {p.message}", file=sys.stderr)
        if p.hint:
            print(f"      → {p.hint}", file=sys.stderr)
    if more:
        print(f"  … and {more:,} more", file=sys.stderr)
    return 2


def _table(rows: list[dict[str, Any]], columns: list[str] | None = None, *, wide: tuple[str, ...] = ()) -> str:
    """Rows as aligned text; long values are cut to 40 characters except in the ``wide`` columns."""
    if not rows:
        return "(nothing)"
    columns = columns or list(rows[0])

    def fmt(v: Any, limit: int | None = 40) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "–"
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 1000 else f"{v:,.0f}"
        text = str(v).replace("\n", " ")
        return text if limit is None or len(text) <= limit else text[: limit - 3] + "…"

    cells = [[fmt(r.get(c), None if c in wide else 40) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("─" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _leaderboard_rows(df: Any) -> list[dict[str, Any]]:
    return json.loads(df.to_json(orient="records"))


def _print_leaderboard(wb: Workbench, ref: str, top: int | None, sort: str | None, as_json: bool, **which: Any) -> None:
    if as_json:  # the frame's JSON (its float precision), as before
        print(json.dumps(_leaderboard_rows(wb.leaderboard(ref, sort=sort, top=top, **which)), indent=2))
        return
    rows = wb.leaderboard(ref, sort=sort, top=top, as_frame=False, **which)  # no pandas: printed after every run
    hidden = {"full_config_id"} | ({"decision"} if not any(r["decision"] for r in rows) else set())
    failed = any(r["failed"] for r in rows)
    if not failed:
        hidden |= {"failed", "failure"}
    shown = [{k: v for k, v in r.items() if k not in hidden} for r in rows]
    if failed:
        for r in shown:
            # A configuration with failed runs is marked where the eye starts reading: its rank.
            r["rank"] = f"{r['rank']}!" if r["failed"] else str(r["rank"])
            r["failure"] = r.pop("failure")  # in full, last
    print(_table(shown, wide=("failure",)))


class _Bar:
    """Live one-line progress on a terminal; a line every few seconds otherwise (CI logs)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, progress: Any) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        final = progress.status in ("completed", "stopped")
        if self.tty and (now - self.last > 0.1 or final):
            sys.stderr.write("\r" + progress.line() + "\033[K")
            sys.stderr.flush()
            self.last = now
        elif not self.tty and (now - self.last > 3 or final):
            sys.stderr.write(progress.line() + "\n")
            self.last = now

    def close(self) -> None:
        if self.tty and not self.quiet:
            sys.stderr.write("\n")


def cmd_validate(wb: Workbench, args: argparse.Namespace) -> int:
    problems = wb.validate(args.file)
    if problems:
        return _print_problems(SpecError(problems))
    exp = Experiment.from_yaml(args.file)
    size = wb.sweep_size(exp)
    print(f"✓ {exp.key} is valid: {size.describe()}")
    return 0


def _confirmed(wb: Workbench, exp: Experiment, args: argparse.Namespace) -> bool:
    """A sweep past the confirmation limits runs only with --yes, or a "y" typed at a terminal."""
    size = wb.sweep_size(exp, strategy=args.strategy, max_configs=args.max_configs)
    if not size.needs_confirmation or getattr(args, "yes", False):
        return True
    print(f"{exp.key}: {size.describe()}", file=sys.stderr)
    if sys.stdin.isatty() and sys.stderr.isatty():
        sys.stderr.write("start it? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() in ("y", "yes"):
            return True
    print("not started: add --yes to run it, or narrow the space (--max-configs, --strategy random)", file=sys.stderr)
    return False


def _run(wb: Workbench, exp: Experiment, args: argparse.Namespace) -> int:
    from . import ci

    if not _confirmed(wb, exp, args):
        return 2
    bar = _Bar(args.quiet)
    try:
        progress = wb.run(exp, strategy=args.strategy, max_configs=args.max_configs, seed=args.seed,
                          concurrency=args.concurrency, listeners=[bar], unhealthy_timeout=args.unhealthy_timeout,
                          stop_on_budget=True)
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
    _print_unpriced(progress.unpriced)
    print()
    _print_leaderboard(wb, exp.key, args.top, None, False)
    status = 0
    problems = ci.failure_lines(progress)
    if problems:
        status = 1
        print("\n✗ not every run completed:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
    threshold = None
    if args.fail_under is not None:
        threshold = ci.check_fail_under(wb.leaderboard(exp.key, as_frame=False), args.fail_under)
        print(("✓ " if threshold.ok else "✗ ") + threshold.message, file=sys.stderr)
        if not threshold.ok:
            status = 1
    if args.junit:
        ci.write_junit(wb, exp.key, progress, args.junit, threshold)
        print(f"wrote {args.junit}", file=sys.stderr)
    return status


def cmd_run(wb: Workbench, args: argparse.Namespace) -> int:
    problems = wb.validate(args.file)  # every problem at once, before any call
    if problems:
        return _print_problems(SpecError(problems))
    return _run(wb, Experiment.from_yaml(args.file), args)


def cmd_quickstart(wb: Workbench, args: argparse.Namespace) -> int:
    path = resources.files("promptlooper") / "examples" / "quickstart.yaml"
    with resources.as_file(path) as p:
        exp = Experiment.from_yaml(p)
    print(f"quickstart: {exp.key} on the embedded model ({Path(wb.db_path).resolve()})", file=sys.stderr)
    return _run(wb, exp, args)


def cmd_leaderboard(wb: Workbench, args: argparse.Namespace) -> int:
    _print_leaderboard(wb, args.experiment, args.top, args.sort, args.json, definition=args.definition,
                       all_definitions=args.all)
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
    from .cli_views import runs_export

    if args.format not in ("table", "json"):
        return runs_export(wb, args)
    if args.format == "json" or args.json:  # every run unless --limit: an export, not a screenful
        print(json.dumps(wb.runs(args.experiment, args.config, args.limit), indent=2))
        return 0
    shown_limit = args.limit or RUNS_SHOWN
    rows = wb.runs(args.experiment, args.config, shown_limit + 1)
    print(_table(rows[:shown_limit], ["id", "config_id", "sample_index", "repeat", "status", "score", "tokens_in", "tokens_out", "output", "error"]))
    if len(rows) > shown_limit and not args.limit:
        print(f"(the first {shown_limit}; every run: --format csv|jsonl|parquet -o FILE, or --limit N)", file=sys.stderr)
    return 0


RUNS_SHOWN = 50


def cmd_show(wb: Workbench, args: argparse.Namespace) -> int:
    print(json.dumps(wb.run_detail(args.run), indent=2, ensure_ascii=False))
    return 0


def cmd_steer(wb: Workbench, args: argparse.Namespace) -> int:
    verb = args.command
    fn = {"pause": wb.pause, "resume": wb.resume, "stop": wb.stop}[verb]
    sweep = fn(args.experiment)  # SweepInterruptedError (exit 1) when the sweep's process is gone
    print(f"{verb} requested for sweep {sweep['id'][:8]} (status {sweep['status']}); the engine applies it within a second")
    return 0


def cmd_events(wb: Workbench, args: argparse.Namespace) -> int:
    rows = wb.events(args.experiment, args.type or None, limit=args.limit)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['ts']}  {r['type']:<22} {json.dumps(r['payload'], ensure_ascii=False)[:120]}")
    return 0


def cmd_plan(wb: Workbench, args: argparse.Namespace) -> int:
    problems = wb.validate(args.file)
    if problems:
        return _print_problems(SpecError(problems))
    info = wb.plan(Experiment.from_yaml(args.file), strategy=args.strategy, max_configs=args.max_configs, seed=args.seed)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['experiment']}: {info['configurations']} configuration(s) × {info['samples']} sample(s) × {info['repeat']} repeat(s)"
          f" = {info['runs']} runs ({info['finished_runs']} already finished)")
    scorers = f" (scorers: {info['scorer_calls']}, {info['cached_scorer_calls']} cached)" if info["scorer_calls"] else ""
    print(f"model calls: {info['calls']} needed, {info['cached_calls']} already cached → {info['calls_to_make']} to make{scorers}")
    print(f"estimated: {info['estimated_tokens']:,} tokens, ${info['estimated_cost']:.4f}")
    _print_unpriced(info["unpriced_models"])
    return 0


def _print_unpriced(models: list[str]) -> None:
    if models:
        print(f"no price: {', '.join(models)} (counted as $0; set one with `promptlooper prices set MODEL INPUT OUTPUT`,"
              " USD per million tokens)")


def cmd_export(wb: Workbench, args: argparse.Namespace) -> int:
    text = wb.export(args.experiment, args.format)
    if args.output:
        out = Path(args.output)
        if not out.parent.is_dir():
            raise SpecError([Problem("--output", f"no folder {str(out.parent)!r} to write {out.name!r} into",
                                     "create the folder first, or name another file")])
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise SpecError([Problem("--output", f"cannot write {args.output}: {exc.strerror}", "name another file")]) from exc
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_decide(wb: Workbench, args: argparse.Namespace) -> int:
    fn = wb.approve if args.command == "approve" else wb.reject
    out = fn(args.experiment, args.config, by=args.by, reason=args.reason)
    print(f"configuration {out['config_id'][:12]} {out['decision']}" + (f" by {args.by}" if args.by else ""))
    return 0


def _parse_assignments(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs; VALUE is YAML, so 0.5, [0.1, 0.2] and {min: 0, max: 1, step: 0.5} all work."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SpecError([Problem(item, "expected KEY=VALUE", "e.g. answer.temperature=[0.1,0.3]")])
        out[key.strip()] = yaml.safe_load(value)
    return out


def cmd_fork(wb: Workbench, args: argparse.Namespace) -> int:
    child = wb.fork(args.experiment, args.config, _parse_assignments(args.set or []), name=args.name)
    print(f"forked {child.key}; run it with `promptlooper rerun {child.key}`")
    if args.run:
        return _run(wb, child, args)
    return 0


def cmd_rerun(wb: Workbench, args: argparse.Namespace) -> int:
    return _run(wb, wb.load(args.experiment), args)


def cmd_redirect(wb: Workbench, args: argparse.Namespace) -> int:
    if not (args.space or args.set):
        raise SpecError([Problem("redirect", "nothing to change", "give --set KEY=VALUES (repeatable) or --space JSON")])
    try:
        space = json.loads(args.space) if args.space else None
    except json.JSONDecodeError as exc:
        raise SpecError([Problem("--space", f"not JSON: {exc.msg} (column {exc.colno})",
                                 """e.g. --space '{"answer.temperature": [0.0, 0.2]}', or use --set KEY=VALUES""")]) from exc
    # --set changes the axes it names and keeps the others; --space replaces the whole space.
    out = wb.redirect(args.experiment, space, changes=_parse_assignments(args.set) if args.set else None)
    print(f"{out['experiment']}: space now {json.dumps(out['space'])} ({out['configurations']} configurations)"
          + (" — applied to the running sweep" if out["live"] else " — used by the next run"))
    return 0


def cmd_budget(wb: Workbench, args: argparse.Namespace) -> int:
    budget = wb.set_budget(args.experiment, max_tokens=args.max_tokens, max_cost=args.max_cost)
    print(f"budget now {budget}; `promptlooper resume` continues a budget pause")
    return 0


def cmd_webhooks(wb: Workbench, args: argparse.Namespace) -> int:
    if args.action == "add":
        bad = [h for h in (args.header or []) if "=" not in h]
        if bad:
            raise SpecError([Problem("--header", f"{bad[0]!r} is not NAME=ENV_VAR",
                                     "e.g. --header Authorization=HOOK_AUTH (the value is read from $HOOK_AUTH)")])
        headers = dict(h.split("=", 1) for h in (args.header or []))
        try:
            wid = wb.add_webhook(args.event, args.url, headers, max_attempts=args.max_attempts, backoff=args.backoff)
        except ValueError as exc:
            raise SpecError([Problem("webhook", str(exc), "see `promptlooper webhooks add --help`")]) from exc
        print(f"webhook {wid[:8]} → {args.url} for {args.event}")
    elif args.action == "remove":
        wb.remove_webhook(args.id)
        print(f"webhook {args.id} removed")
    elif args.action == "deliver":
        out = wb.deliver_webhooks(wait=args.wait)
        print(f"webhook outbox: {out['delivered']} delivered, {out['failed']} failed, {out['pending']} pending")
        if out["failed"] or out["pending"]:
            print("failed deliveries spent their retries (see wb.webhook_outbox()); pending ones are retried by the next"
                  " `promptlooper webhooks deliver` or any process that opens the store", file=sys.stderr)
            return 1
    else:
        print(_table(wb.webhooks(), ["id", "event_type", "url", "headers_env", "is_active"]))
    return 0


def cmd_human(wb: Workbench, args: argparse.Namespace) -> int:
    wb.request_human(args.experiment, args.reason)
    print("human_needed raised")
    return 0


def cmd_rescore(wb: Workbench, args: argparse.Namespace) -> int:
    if not (args.file or args.experiment):
        print("give an EXPERIMENT or --file FILE", file=sys.stderr)
        return 2
    # With --file, the file's (new or changed) scorers become the experiment's and score its runs.
    target: Any = Experiment.from_yaml(args.file) if args.file else args.experiment
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


def cmd_compare(wb: Workbench, args: argparse.Namespace) -> int:
    from .cli_views import compare

    out = compare(wb, args, _rank_or_id)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    a, b = (f"{out[f'experiment_{x}']}:" if f"experiment_{x}" in out else "" for x in "ab")
    print(f"A {a}{str(out.get('config_a', args.a))[:12]}: {out['mean_a']:.3f}   B {b}{str(out.get('config_b', args.b))[:12]}: {out['mean_b']:.3f}"
          f"   over n={out['n']} shared samples")
    print(f"difference A-B {out['mean_diff']:+.3f}, 95% interval [{out['ci_low']:+.3f}, {out['ci_high']:+.3f}], p = {out['p_value']:.4g}"
          f" → {'significant' if out['significant'] else 'not distinguishable'}")
    return 0


def _rank_or_id(value: str) -> str | int:
    return int(value) if value.isdigit() and len(value) < 6 else value


def cmd_rate(wb: Workbench, args: argparse.Namespace) -> int:
    out = wb.rate(args.run, thumbs=args.thumbs, stars=args.stars, comment=args.comment, by=args.by)
    print(json.dumps(out, indent=2, default=str))
    return 0


def cmd_calibration(wb: Workbench, args: argparse.Namespace) -> int:
    df = wb.calibration(args.experiment)
    if args.json:
        print(df.to_json(orient="records", indent=2))
    else:
        print(_table(df.to_dict(orient="records")) if len(df) else "no runs have both a judge score and a human rating yet")
    return 0


def cmd_dashboard(wb: Workbench, args: argparse.Namespace) -> int:
    from .dashboard import serve

    return serve(wb.db_path, args.host, args.port, preheat=not args.no_preheat, guest=args.guest)


def cmd_endpoints(wb: Workbench, args: argparse.Namespace) -> int:
    action = args.action or "list"
    if action == "list":
        rows = wb.endpoints()
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(_table(rows, ["name", "kind", "base_url", "api_key_env", "max_concurrency"]))
        return 0
    if action == "add":
        info = wb.add_endpoint(args.name, args.base_url, api_key_env=args.api_key_env, max_concurrency=args.max_concurrency,
                               timeout=args.timeout, max_retries=args.max_retries)
        print(f"endpoint {args.name} → {info['base_url']} saved" + (f" (key from ${args.api_key_env})" if args.api_key_env else ""))
        return 0
    if action == "test":
        models = wb.test_endpoint(args.name)
        print(f"✓ {args.name} answered; {len(models)} model(s):")
        for m in models:
            print(f"  {args.name}/{m}")
        return 0
    if action == "remove":
        wb.remove_endpoint(args.name)
        print(f"endpoint {args.name} removed")
        return 0
    raise AssertionError(action)


def cmd_cache(wb: Workbench, args: argparse.Namespace) -> int:
    if args.action == "explain":
        for call in wb.explain_cache(args.run):
            if call["kind"] != "prompt":
                print(f"stage {call['stage']}: a Python function (not cached)")
                continue
            print(f"stage {call['stage']}: key {call['cache_key']} ({'in cache' if call['in_cache'] else 'not in cache'};"
                  f" recomputed {'matches' if call['matches'] else 'DIFFERS'})")
            print("  SHA-256 over the canonical JSON of:")
            for line in json.dumps(call["material"], indent=2, ensure_ascii=False).splitlines():
                print("    " + line)
        return 0
    if args.action == "invalidate":
        if not (args.run or args.experiment):
            print("give --run RUN or --experiment EXPERIMENT", file=sys.stderr)
            return 2
        n = wb.invalidate_cache(run=args.run, experiment=args.experiment)
        print(f"invalidated {n} cached response(s); the next sweep calls the model for them again")
        return 0
    raise AssertionError(args.action)


def cmd_prices(wb: Workbench, args: argparse.Namespace) -> int:
    if args.action == "list":
        return cmd_prices_list(wb, args, _table)
    wb.set_price(args.model, args.input, args.output)
    print(f"price of {args.model}: ${args.input}/M input, ${args.output}/M output tokens")
    return 0


def cmd_mcp(wb: Workbench, args: argparse.Namespace) -> int:
    from .mcp_server import serve

    try:
        return serve(wb, transport=args.transport, host=args.host, port=args.port)
    finally:
        wb.close()


def _score(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a score: scores are normalised to 0..1, e.g. --fail-under 0.8")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: give 0 (stop at once) or a number of seconds")
    return value


class _Parser(argparse.ArgumentParser):
    """Every (sub)command parser takes ``--db``, so it works wherever a user puts it.

    A subcommand's ``--db`` is SUPPRESSed unless given, so it never overwrites one given before the
    command. ``add_subparsers`` makes its parsers of this class too, commands added later included.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.add_argument("--db", metavar="FILE", default=argparse.SUPPRESS,
                          help="database file (default ./promptlooper.db or $PROMPTLOOPER_DB)")


# Which commands may create the database file, and which need none at all (everything else is about
# stored experiments or runs, so a missing file is a mistake worth naming, not an empty store to make).
_CREATE_DB = {"run", "quickstart", "mcp", "endpoints add", "endpoints remove", "webhooks add", "webhooks remove", "prices set"}
_NO_DB_NEEDED = {"validate", "plan", "endpoints", "endpoints list", "endpoints test", "webhooks", "webhooks list"}


def _workbench(args: argparse.Namespace) -> Workbench:
    """The Workbench a command runs on, without creating a database a read-only command would leave behind."""
    db = getattr(args, "db", None) or default_path()
    command = " ".join(str(c) for c in (args.command, getattr(args, "action", None)) if c)
    if command in _NO_DB_NEEDED and not Path(db).exists():
        return Workbench(":memory:")  # nothing registered, nothing cached: what a missing file means
    return Workbench(db, create=command in _CREATE_DB)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="promptlooper", description="Find the best prompt × model × parameters by measuring.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Any, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(fn=fn)
        return p

    p = add("validate", cmd_validate, "Check an experiment file; every problem with its field path (exit 2 if any).")
    p.add_argument("file")

    def sweep_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--strategy", choices=["grid", "random", "guided"])
        p.add_argument("--max-configs", type=int)
        p.add_argument("--seed", type=int)
        p.add_argument("--concurrency", type=int)
        p.add_argument("--top", type=int, default=10, help="leaderboard rows to print")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument("--yes", "-y", action="store_true",
                       help="start a sweep past the confirmation limits ($PROMPTLOOPER_CONFIRM_CALLS / _COST) without asking")
        p.add_argument("--fail-under", type=_score, metavar="SCORE",
                       help="exit 1 if the best configuration (the approved one, if any) scores below SCORE (0..1)")
        p.add_argument("--junit", metavar="FILE", help="write a JUnit XML report (one test case per configuration)")
        p.add_argument("--unhealthy-timeout", type=_seconds, default=120.0, metavar="SECONDS",
                       help="stop the sweep when an endpoint stays unhealthy (its circuit breaker open) this long;"
                            " 0 stops at once (default 120)")

    p = add("run", cmd_run, "Validate, then sweep an experiment file with a live progress bar; prints the leaderboard.")
    p.add_argument("file")
    sweep_options(p)
    p = add("quickstart", cmd_quickstart, "Run the bundled quickstart experiment on the embedded model.")
    sweep_options(p)

    p = add("leaderboard", cmd_leaderboard, "Configurations ranked by weighted score, with n and a 95-percent interval.")
    p.add_argument("experiment")
    p.add_argument("--json", action="store_true")
    p.add_argument("--sort", help="a scorer column, tokens, cost or latency_ms")
    p.add_argument("--top", type=int)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every configuration and sample ever run, earlier definitions included")
    which.add_argument("--definition", type=int, metavar="N", help="rank an earlier definition (numbers from `definitions`)")
    p = add("definitions", cmd_definitions, "An experiment's definitions: each run with changed samples, stages, space or scorers.")
    p.add_argument("experiment")
    p.add_argument("--json", action="store_true")

    add_housekeeping(sub, lambda fn: lambda wb, args: fn(wb, args, _table))  # experiments, projects, notes
    p = add("status", cmd_status, "An experiment's status, run counts and latest sweep.")
    p.add_argument("experiment")
    p = add("runs", cmd_runs, "List an experiment's runs (the first 50), or export them all: --format csv|jsonl|parquet -o FILE.")
    p.add_argument("experiment")
    p.add_argument("--config", help="configuration id prefix")
    p.add_argument("--limit", type=int, help="at most N runs (default: 50 in the table, every run in an export)")
    p.add_argument("--format", choices=["table", "json", "csv", "jsonl", "parquet"], default="table",
                   help="csv / jsonl / parquet: one row per run with every varied parameter and scorer as columns")
    p.add_argument("--output", "-o", help="file to write (default: stdout; parquet needs a file)")
    p.add_argument("--json", action="store_true", help="same as --format json")
    p = add("show", cmd_show, "One run in full: prompts sent, responses, scores.")
    p.add_argument("run")
    for verb, text in (("pause", "Pause a running sweep (from any process): calls in flight finish, no new ones start."),
                       ("resume", "Resume a paused sweep."), ("stop", "Stop a sweep; finished runs stay.")):
        p = add(verb, cmd_steer, text)
        p.add_argument("experiment")
    p = add("events", cmd_events, "An experiment's event timeline.")
    p.add_argument("experiment")
    p.add_argument("--type", action="append", help="event type, or a family such as 'run.*' (repeatable)")
    p.add_argument("--limit", type=int)
    p.add_argument("--json", action="store_true")

    p = add("plan", cmd_plan, "Before any call: calls needed, already cached, estimated tokens and cost.")
    p.add_argument("file")
    p.add_argument("--strategy", choices=["grid", "random"])
    p.add_argument("--max-configs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--json", action="store_true")
    p = add("export", cmd_export, "The best configuration (approved, else top) as json / yaml / env, or a markdown report.")
    p.add_argument("experiment")
    p.add_argument("--format", choices=["json", "yaml", "env", "report"], default="json")
    p.add_argument("--output", "-o")
    for verb, text in (("approve", "Mark a configuration good enough: it becomes the exported best."),
                       ("reject", "Exclude a configuration from the leaderboard (runs are kept).")):
        p = add(verb, cmd_decide, text)
        p.add_argument("experiment")
        p.add_argument("config", help="configuration id (a prefix from the leaderboard)")
        p.add_argument("--by", default="", help="who decides")
        p.add_argument("--reason", default="")
    p = add("fork", cmd_fork, "A new experiment from a configuration (default: the approved one, else the best) with changed parameters.")
    p.add_argument("experiment")
    p.add_argument("--config", help="configuration id prefix (default: the approved one, else the leaderboard's top)")
    p.add_argument("--set", action="append", help="KEY=VALUE (YAML): a fixed value or a list to sweep; repeatable")
    p.add_argument("--name")
    p.add_argument("--run", action="store_true", help="run the fork right away")
    sweep_options(p)
    p = add("rerun", cmd_rerun, "Run a stored experiment again (resumes; finished runs are skipped).")
    p.add_argument("experiment")
    sweep_options(p)
    p = add("redirect", cmd_redirect, "Change the remaining space of a (running) sweep; runs already done stay.")
    p.add_argument("experiment")
    p.add_argument("--set", action="append", help="KEY=VALUES (YAML list or range): that key's new values, the others kept; repeatable")
    p.add_argument("--space", help="the whole new space as JSON")
    p = add("budget", cmd_budget, "Set or raise the budget of a running or paused sweep.")
    p.add_argument("experiment")
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--max-cost", type=float)
    p = add("webhooks", cmd_webhooks, "Register webhooks (JSON POSTs of events, with retries) and deliver their queue.")
    wsub = p.add_subparsers(dest="action")
    wa = wsub.add_parser("add")
    wa.add_argument("event", help="event type, 'run.*' or '*'")
    wa.add_argument("url")
    wa.add_argument("--header", action="append", help="NAME=ENV_VAR: the header's value is read from $ENV_VAR at send time")
    wa.add_argument("--max-attempts", type=int, help="attempts per event before it is marked failed (default 8)")
    wa.add_argument("--backoff", type=float, help="seconds before the first retry, doubling after each (default 1)")
    wsub.add_parser("list")
    wd = wsub.add_parser("deliver", help="Deliver queued events now (retries with backoff); exit 1 if any failed or is left.")
    wd.add_argument("--wait", type=float, default=30.0, help="seconds to keep retrying (default 30)")
    wr = wsub.add_parser("remove")
    wr.add_argument("id")
    p = add("request-human", cmd_human, "Raise the human_needed event for an experiment.")
    p.add_argument("experiment")
    p.add_argument("reason")

    p = add("rescore", cmd_rescore, "Re-score every stored run with the experiment's (or a file's) scorers; no model calls.")
    p.add_argument("experiment", nargs="?", help="experiment to re-score with its stored scorers")
    p.add_argument("--file", help="an experiment file whose scorers to apply (same project/name)")
    p.add_argument("--no-model-calls", action="store_true", help="skip judges that would need a call not in the cache")
    p = add("compare", cmd_compare, "A vs B: paired comparison of two configurations over their shared samples "
                                    "(of one experiment, or of two: EXPERIMENT:CONFIG).")
    p.add_argument("experiment", help="the experiment of A and B, or A itself as EXPERIMENT:CONFIG")
    p.add_argument("a", help="configuration id prefix, 'best', a leaderboard rank, or OTHER_EXPERIMENT:CONFIG")
    p.add_argument("b", nargs="?", help="the same (omitted when the first two are EXPERIMENT:CONFIG each)")
    p.add_argument("--scorer", help="compare one scorer instead of the weighted score")
    p.add_argument("--json", action="store_true")
    from .cli_views import add_parsers as add_view_parsers

    add_view_parsers(add)
    p = add("rate", cmd_rate, "Rate a run: thumbs up/down and/or 1-5 stars, with a comment (stored as human scores).")
    p.add_argument("run")
    p.add_argument("--thumbs", choices=["up", "down"])
    p.add_argument("--stars", type=int, choices=[1, 2, 3, 4, 5])
    p.add_argument("--comment", default="")
    p.add_argument("--by", default="")
    p = add("calibration", cmd_calibration, "How far to trust each judge: agreement with human ratings (Spearman, kappa).")
    p.add_argument("experiment")
    p.add_argument("--json", action="store_true")

    p = add("dashboard", cmd_dashboard, "Serve the read-only Voila dashboards of this database (127.0.0.1 by default).")
    p.add_argument("--host", default="127.0.0.1", help="bind address; on any other than loopback a token is required (see --guest)")
    p.add_argument("--port", type=int, default=8402)
    p.add_argument("--no-preheat", action="store_true", help="start each page's kernel on request (slower first paint)")
    p.add_argument("--guest", action="store_true",
                   help="no token: anyone who reaches the address may view (read-only); off by default")

    p = add("endpoints", cmd_endpoints, "Manage model endpoints: list, add, test, remove.")
    esub = p.add_subparsers(dest="action")
    lp = esub.add_parser("list", help="List endpoints (the embedded 'local' is always there).")
    lp.add_argument("--json", action="store_true")
    ap = esub.add_parser("add", help="Add or update an OpenAI-compatible endpoint.")
    ap.add_argument("name")
    ap.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:11434/v1")
    ap.add_argument("--api-key-env", help="NAME of the environment variable holding the key (the key is never stored)")
    ap.add_argument("--max-concurrency", type=int, default=32)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--max-retries", type=int, default=6)
    tp = esub.add_parser("test", help="Reach an endpoint and list its models.")
    tp.add_argument("name")
    rp = esub.add_parser("remove", help="Remove an endpoint.")
    rp.add_argument("name")
    p.set_defaults(json=False)

    p = add("cache", cmd_cache, "Inspect or invalidate the response cache.")
    csub = p.add_subparsers(dest="action", required=True)
    ep = csub.add_parser("explain", help="Print what went into the cache keys of a run's calls.")
    ep.add_argument("run")
    ip = csub.add_parser("invalidate", help="Forget the cached responses of a run or an experiment.")
    ip.add_argument("--run")
    ip.add_argument("--experiment")

    p = add("prices", cmd_prices, "Set or list models' prices (USD per million input / output tokens).")
    psub = p.add_subparsers(dest="action", required=True)
    lp = psub.add_parser("list", help="Every known price and where it comes from (user, endpoint, default).")
    lp.add_argument("--json", action="store_true")
    sp = psub.add_parser("set")
    sp.add_argument("model")
    sp.add_argument("input", type=float)
    sp.add_argument("output", type=float)

    p = add("mcp", cmd_mcp, "Serve the MCP tools (agents drive and steer sweeps): stdio, or HTTP with a bearer key.")
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8401)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a reader that went away shows here, not as noise at interpreter exit
    except BrokenPipeError:
        # `promptlooper … | head`: the reader has what it wanted. Point stdout at /dev/null so the
        # interpreter's final flush cannot fail again, and exit as for SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        wb = _workbench(args)
    except PromptLooperError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        return int(args.fn(wb, args))
    except SpecError as exc:
        return _print_problems(exc)
    except PromptLooperError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyError as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 1
    finally:
        wb.close()


if __name__ == "__main__":
    sys.exit(main())
