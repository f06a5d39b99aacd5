"""Housekeeping commands: ``experiments`` (list, delete, archive, unarchive), ``projects``, ``notes``
and ``cache`` (explain, invalidate). Deleting asks first at a terminal; elsewhere (scripts, CI) it
needs ``--yes``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from ..errors import Problem, SpecError
from .commands import action, command
from .output import table

if TYPE_CHECKING:
    from ..workbench import Workbench


def sure(what: str, args: argparse.Namespace) -> None:
    if args.yes:
        return
    if sys.stdin.isatty() and sys.stderr.isatty():
        sys.stderr.write(f"delete {what}? This cannot be undone (archive hides it instead) [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() in ("y", "yes"):
            return
    raise SpecError([Problem("--yes", f"not deleted: deleting {what} cannot be undone",
                             "add --yes to delete it, or archive it to hide it from lists")])


def cmd_experiments(wb: Workbench, args: argparse.Namespace) -> int:
    verb = getattr(args, "action", None) or "list"
    if verb == "delete":
        row = wb.experiment(args.experiment)
        sure(f"experiment {row['project']}/{row['name']} with its runs", args)
        out = wb.delete_experiment(row["id"])
        print(f"deleted {out['deleted']} ({out['runs']} run(s)); cached responses stay for other experiments")
        return 0
    if verb in ("archive", "unarchive"):
        out = wb.archive_experiment(args.experiment, verb == "archive")
        print(f"{out['experiment']} {verb}d" + (" (hidden from lists; `experiments --all` shows it)" if out["archived"] else ""))
        return 0
    rows = wb.experiments(args.project, include_archived=args.all)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(table(rows, ["project", "name", "status", "runs", "updated_at", "id"] + (["archived_at"] if args.all else [])))
    if args.project:
        print_notes(wb, args.project)
    return 0


def print_notes(wb: Workbench, project: str) -> None:
    try:
        notes = wb.notes(project)
    except LookupError:
        return  # an unknown project: the (empty) list said enough
    if notes:
        print(f"\nnotes on {project}:")
        for n in notes:
            print(f"  {n['created_at'][:19]}  {n['text']}" + (f"  ({n['by']})" if n["by"] else ""))


def cmd_projects(wb: Workbench, args: argparse.Namespace) -> int:
    verb = args.action or "list"
    if verb == "delete":
        sure(f"project {args.project} with every experiment in it", args)
        out = wb.delete_project(args.project)
        print(f"deleted project {args.project}: {out['experiments']} experiment(s), {out['runs']} run(s), {out['notes']} note(s)")
        return 0
    if verb in ("archive", "unarchive"):
        wb.archive_project(args.project, verb == "archive")
        print(f"project {args.project} {verb}d")
        return 0
    rows = wb.projects(include_archived=args.all)
    columns = ["name", "experiments", "notes", "description"] + (["archived_at"] if args.all else [])
    print(json.dumps(rows, indent=2) if args.json else table(rows, columns))
    return 0


def cmd_notes(wb: Workbench, args: argparse.Namespace) -> int:
    if args.action == "add":
        out = wb.add_note(args.project, args.text, by=args.by)
        print(f"note {out['id']} added to {args.project}")
        return 0
    rows = wb.notes(args.project)
    print(json.dumps(rows, indent=2) if args.json else table(rows, ["created_at", "by", "text"], wide=("text",)))
    return 0


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
    if not (args.run or args.experiment):
        print("give --run RUN or --experiment EXPERIMENT", file=sys.stderr)
        return 2
    n = wb.invalidate_cache(run=args.run, experiment=args.experiment)
    print(f"invalidated {n} cached response(s); the next sweep calls the model for them again")
    return 0


def _listing(sub: Any, name: str, fn: Any, help: str, noun: str, deletes: str, archives: str, unarchives: str) -> None:
    """``experiments`` / ``projects``: a list (the default) and delete / archive / unarchive one."""
    p = command(sub, name, fn, help)
    if name == "experiments":
        p.add_argument("--project")
    p.add_argument("--json", action="store_true")
    p.add_argument("--all", action="store_true", help=f"archived {name} too")
    verbs = p.add_subparsers(dest="action")
    action(verbs, "list", f"List {name} (the default).")
    d = action(verbs, "delete", deletes)
    d.add_argument(noun)
    d.add_argument("--yes", "-y", action="store_true", help="delete without asking")
    action(verbs, "archive", archives).add_argument(noun)
    action(verbs, "unarchive", unarchives).add_argument(noun)


# What add_parser adds: a command line naming one of these builds only this group's parsers (cli/parser.py).
COMMANDS = ("experiments", "projects", "notes", "cache")


def add_parser(sub: Any) -> None:
    _listing(sub, "experiments", cmd_experiments,
             "List experiments (archived ones with --all); delete, archive or unarchive one.", "experiment",
             "Delete an experiment and its runs, scores, sweeps and events (refused while it is swept).",
             "Hide an experiment from lists; its runs are kept (refused while it is swept).",
             "Show an archived experiment in lists again.")
    _listing(sub, "projects", cmd_projects,
             "List projects (archived ones with --all); delete, archive or unarchive one.", "project",
             "Delete a project, every experiment in it and its notes (refused while one is swept).",
             "Hide a project and its experiments from lists (refused while one is swept).",
             "Show an archived project again.")
    p = command(sub, "notes", cmd_notes, "Notes on a project: what was tried, what was decided (shown with its experiments).")
    verbs = p.add_subparsers(dest="action", required=True)
    a = action(verbs, "add", "Add a dated note to a project.")
    a.add_argument("project")
    a.add_argument("text")
    a.add_argument("--by", default="", help="who writes it")
    ls = action(verbs, "list", "A project's notes, oldest first.")
    ls.add_argument("project")
    ls.add_argument("--json", action="store_true")
    p = command(sub, "cache", cmd_cache, "Inspect or invalidate the response cache.")
    verbs = p.add_subparsers(dest="action", required=True)
    action(verbs, "explain", "Print what went into the cache keys of a run's calls.").add_argument("run")
    i = action(verbs, "invalidate", "Forget the cached responses of a run or an experiment.")
    i.add_argument("--run")
    i.add_argument("--experiment")
