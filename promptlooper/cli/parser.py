"""The ``promptlooper`` parser, built from each command group's ``add_parser(subparsers)``.

Every module of this package imports only the standard library (and the exception classes) at its
top, so that ``promptlooper --help`` prints without the engine, pydantic, pandas or aiohttp; each
command handler imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
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


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="promptlooper", description="Find the best prompt × model × parameters by measuring.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parser(sub)
    return parser
