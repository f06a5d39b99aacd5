"""The ``promptlooper`` parser, built from each command group's ``add_parser(subparsers)``.

Every module of this package imports only the standard library (and the exception classes) at its
top, so that ``promptlooper --help`` prints without the engine, pydantic, pandas or aiohttp; each
command handler imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from .. import __version__
from . import (
    endpoints,
    housekeeping,
    migrate,
    results,
    run,
    scores,
    serve,
    steering,
    views,
    webhooks,
    worker,
)

# In this order in `promptlooper --help`: a sweep's life, then what surrounds it.
GROUPS = (run, results, views, scores, steering, housekeeping, endpoints, webhooks, serve, worker, migrate)


class Parser(argparse.ArgumentParser):
    """Every (sub)command parser takes ``--db`` and ``--as``, so they work wherever a user puts them.

    A subcommand's ``--db`` / ``--as`` is SUPPRESSed unless given, so it never overwrites one given before the
    command. ``add_subparsers`` makes its parsers of this class too, commands added later included.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.add_argument("--db", metavar="FILE", default=argparse.SUPPRESS,
                          help="database file (default ./promptlooper.db or $PROMPTLOOPER_DB)")
        self.add_argument("--as", dest="actor", metavar="NAME", default=argparse.SUPPRESS,
                          help="who acts, recorded with what this command starts, steers, decides, rates or notes "
                               "(default $PROMPTLOOPER_USER, else your user name)")


# Options the top-level parser takes before the command, with the value each one consumes.
TOP_OPTIONS_WITH_VALUE = ("--db", "--as")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser. Given the command line, and it names a command plainly, only that command's
    group is added: building all ~60 (sub)command parsers is ~13 ms of a one-call `run`'s ~0.4 s
    (argparse looks up translations for every one), and parsing needs only the named command's.
    ``--help``, no command, an unknown one or an option this cannot read get every group.
    """
    parser = Parser(prog="promptlooper", description="Find the best prompt × model × parameters by measuring.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    named = None if argv is None else named_group(argv)
    if named is None:
        sub = parser.add_subparsers(dest="command", required=True)
        for group in GROUPS:
            group.add_parser(sub)
    else:
        # The usage an error prints lists every command, as the full parser's does ({a,b,...}).
        every = ",".join(name for group in GROUPS for name in group.COMMANDS)
        sub = parser.add_subparsers(dest="command", required=True, metavar=f"{{{every}}}")
        named.add_parser(sub)
    return parser


def named_group(argv: Sequence[str]) -> Any:
    """The group of the command ``argv`` names, or None when it names none that this can tell."""
    args = iter(argv)
    for arg in args:
        if arg in TOP_OPTIONS_WITH_VALUE:
            next(args, None)
        elif arg.startswith(tuple(f"{option}=" for option in TOP_OPTIONS_WITH_VALUE)):
            continue
        elif arg.startswith("-"):
            return None  # --help, --version, or an option argparse may read otherwise (an abbreviation)
        else:
            return next((group for group in GROUPS if arg in group.COMMANDS), None)
    return None
