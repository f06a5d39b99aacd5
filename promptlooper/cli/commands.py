"""How a command is declared: its name, handler, help, and what it needs of the database.

Every command says whether it may create the database file (``CREATES``), needs none at all
(``NONE_NEEDED``: an empty store in memory when the file is missing, nothing written), or is about
stored experiments or runs (``EXISTING``: a missing file is a mistake worth naming, not an empty
store to make). :func:`promptlooper.cli.main` reads it as ``args.database``.

Only argparse here, as in every group module's top level: see :mod:`promptlooper.cli.parser`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..workbench import Workbench

    Handler = Callable[[Workbench, argparse.Namespace], int]

CREATES, NONE_NEEDED, EXISTING = "creates", "none", "existing"


def command(sub: Any, name: str, fn: Handler, help: str, *, database: str = EXISTING) -> argparse.ArgumentParser:
    """Add the command ``name`` to ``sub`` (the subparsers of the top-level parser)."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help)
    p.set_defaults(fn=fn, database=database)
    return p


def action(sub: Any, name: str, help: str | None = None, *, database: str = EXISTING) -> argparse.ArgumentParser:
    """Add the action ``name`` of a command (``endpoints add``); it may need the database otherwise."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=help)
    p.set_defaults(database=database)  # a subparser's defaults override its command's
    return p


def score(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a score: scores are normalised to 0..1, e.g. --fail-under 0.8")
    return value


def seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: give 0 (stop at once) or a number of seconds")
    return value
