"""The housekeeping commands: ``experiments delete|archive|unarchive``, ``projects``, ``notes``, ``prices list``.

Thin, as the rest of the CLI: every command calls the Workbench facade. Deleting asks first at a
terminal; elsewhere (scripts, CI) it needs ``--yes``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from .errors import Problem, SpecError
from .workbench import Workbench


def _sure(what: str, args: argparse.Namespace) -> None:
    if args.yes:
        return
    if sys.stdin.isatty() and sys.stderr.isatty():
        sys.stderr.write(f"delete {what}? This cannot be undone (archive hides it instead) [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() in ("y", "yes"):
            return
    raise SpecError([Problem("--yes", f"not deleted: deleting {what} cannot be undone",
                             "add --yes to delete it, or archive it to hide it from lists")])


def cmd_experiments(wb: Workbench, args: argparse.Namespace, table: Callable[..., str]) -> int:
    action = getattr(args, "action", None) or "list"
    if action == "delete":
        row = wb.experiment(args.experiment)
        _sure(f"experiment {row['project']}/{row['name']} with its runs", args)
        out = wb.delete_experiment(row["id"])
        print(f"deleted {out['deleted']} ({out['runs']} run(s)); cached responses stay for other experiments")
        return 0
    if action in ("archive", "unarchive"):
        out = wb.archive_experiment(args.experiment, action == "archive")
        print(f"{out['experiment']} {action}d" + (" (hidden from lists; `experiments --all` shows it)" if out["archived"] else ""))
        return 0
    rows = wb.experiments(args.project, include_archived=args.all)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    columns = ["project", "name", "status", "runs", "updated_at", "id"] + (["archived_at"] if args.all else [])
    print(table(rows, columns))
    if args.project:
        _print_notes(wb, args.project)
    return 0


def _print_notes(wb: Workbench, project: str) -> None:
    try:
        notes = wb.notes(project)
    except LookupError:
        return  # an unknown project: the (empty) list said enough
    if notes:
        print(f"\nnotes on {project}:")
        for n in notes:
            print(f"  {n['created_at'][:19]}  {n['text']}" + (f"  ({n['by']})" if n["by"] else ""))


def cmd_projects(wb: Workbench, args: argparse.Namespace, table: Callable[..., str]) -> int:
    action = args.action or "list"
    if action == "delete":
        _sure(f"project {args.project} with every experiment in it", args)
        out = wb.delete_project(args.project)
        print(f"deleted project {args.project}: {out['experiments']} experiment(s), {out['runs']} run(s), {out['notes']} note(s)")
        return 0
    if action in ("archive", "unarchive"):
        wb.archive_project(args.project, action == "archive")
        print(f"project {args.project} {action}d")
        return 0
    rows = wb.projects(include_archived=args.all)
    print(json.dumps(rows, indent=2) if args.json else table(rows, ["name", "experiments", "notes", "description"]
                                                                  + (["archived_at"] if args.all else [])))
    return 0


def cmd_notes(wb: Workbench, args: argparse.Namespace, table: Callable[..., str]) -> int:
    if args.action == "add":
        out = wb.add_note(args.project, args.text, by=args.by)
        print(f"note {out['id']} added to {args.project}")
        return 0
    rows = wb.notes(args.project)
    print(json.dumps(rows, indent=2) if args.json else table(rows, ["created_at", "by", "text"], wide=("text",)))
    return 0


def cmd_prices_list(wb: Workbench, args: argparse.Namespace, table: Callable[..., str]) -> int:
    rows = wb.prices()
    print(json.dumps(rows, indent=2) if args.json else table(rows, ["model", "input", "output", "source"]))
    print("USD per million tokens; the first match wins: user, then the endpoint's, then the defaults", file=sys.stderr)
    return 0


def add_parsers(sub: Any, bind: Callable[[Callable[..., int]], Callable[[Workbench, argparse.Namespace], int]]) -> None:
    """Add the housekeeping commands to the ``promptlooper`` parser (``sub``: its subparsers)."""

    def add(name: str, fn: Callable[..., int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(fn=bind(fn))
        return p

    def yes(p: argparse.ArgumentParser) -> None:
        p.add_argument("--yes", "-y", action="store_true", help="delete without asking")

    p = add("experiments", cmd_experiments, "List experiments (archived ones with --all); delete, archive or unarchive one.")
    p.add_argument("--project")
    p.add_argument("--json", action="store_true")
    p.add_argument("--all", action="store_true", help="archived experiments too")
    esub = p.add_subparsers(dest="action")
    esub.add_parser("list", help="List experiments (the default).")
    d = esub.add_parser("delete", help="Delete an experiment and its runs, scores, sweeps and events (refused while it is swept).")
    d.add_argument("experiment")
    yes(d)
    for verb, text in (("archive", "Hide an experiment from lists; its runs are kept (refused while it is swept)."),
                       ("unarchive", "Show an archived experiment in lists again.")):
        esub.add_parser(verb, help=text).add_argument("experiment")

    p = add("projects", cmd_projects, "List projects (archived ones with --all); delete, archive or unarchive one.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--all", action="store_true", help="archived projects too")
    psub = p.add_subparsers(dest="action")
    psub.add_parser("list", help="List projects (the default).")
    d = psub.add_parser("delete", help="Delete a project, every experiment in it and its notes (refused while one is swept).")
    d.add_argument("project")
    yes(d)
    for verb, text in (("archive", "Hide a project and its experiments from lists (refused while one is swept)."),
                       ("unarchive", "Show an archived project again.")):
        psub.add_parser(verb, help=text).add_argument("project")

    p = add("notes", cmd_notes, "Notes on a project: what was tried, what was decided (shown with its experiments).")
    nsub = p.add_subparsers(dest="action", required=True)
    a = nsub.add_parser("add", help="Add a dated note to a project.")
    a.add_argument("project")
    a.add_argument("text")
    a.add_argument("--by", default="", help="who writes it")
    ls = nsub.add_parser("list", help="A project's notes, oldest first.")
    ls.add_argument("project")
    ls.add_argument("--json", action="store_true")


__all__ = ["add_parsers", "cmd_prices_list"]
