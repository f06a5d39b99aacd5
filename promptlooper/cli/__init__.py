"""The ``promptlooper`` command: thin, every command calls the Workbench facade.

One module per command group (:mod:`.run`, :mod:`.results`, :mod:`.views`, :mod:`.scores`,
:mod:`.steering`, :mod:`.housekeeping`, :mod:`.endpoints`, :mod:`.webhooks`, :mod:`.serve`), each with
its handlers and an ``add_parser(subparsers)``; :mod:`.parser` puts them together, :mod:`.output`
prints, :mod:`.commands` declares. Handlers import the facade when they run, so ``--help`` is quick.

Exit status: 0 ok, 1 an operation failed (message on stderr), 2 the input is invalid (every
problem listed with its field path and what to do), 130 interrupted, 141 the reader of the output
went away (``| head``), as a shell reports a process ended by SIGPIPE. ``run`` / ``rerun`` (and
``quickstart``, ``fork --run``) exit 1 unless every run of the sweep completed, and with
``--fail-under`` unless the best (or approved) configuration scores at least that: see
:mod:`promptlooper.ci`.

``--db FILE`` is accepted before or after any command. Commands about stored experiments never
create a database: on a file that does not exist they say so and exit 1; ``validate``, ``plan`` and
listing endpoints or webhooks work without one (an empty store in memory, nothing written). Each
command declares which it is (:mod:`.commands`).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PromptLooperError, SpecError, StoreError
from .commands import CREATES, NONE_NEEDED
from .output import print_problems
from .parser import build_parser

if TYPE_CHECKING:
    from ..workbench import Workbench


# Allocations between two young-generation collections. With Python's default (700), importing what
# a run needs (~50,000 objects that all stay alive) takes ~130 collections that free almost nothing.
START_UP_GC_THRESHOLD = 100_000


def console() -> int:
    """The ``promptlooper`` command (and ``python -m promptlooper.cli``): :func:`main`, tuned for a
    process that starts, works and ends, which in-process callers (tests, notebooks) are not.

    Measured on the 1,000-call run of ``benchmarks/startup.py`` (CPU time of the process, median of
    9): collecting less often saves ~30 ms before the first call, and freezing the heap before the
    interpreter exits ~60 ms (its final collections walk every object, only to free memory the
    operating system takes back anyway). Long commands (``serve``, ``dashboard``, a long sweep) still collect, only in larger steps;
    a sweep freezes its own start-up heap anyway (:mod:`promptlooper.engine.gcfreeze`).
    """
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, START_UP_GC_THRESHOLD), gen1, gen2)
    # Pydantic's documented switch: without it, building the first model reads the entry points of
    # every installed distribution, looking for validation plugins this command never uses (~15 ms
    # of each run's start, measured). A value the user set stays.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    code = main()
    gc.freeze()
    return code


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


def workbench(args: argparse.Namespace) -> Workbench:
    """The Workbench a command runs on, without creating a database a read-only command would leave behind."""
    # Imported here, when a command runs, and not at the top: the facade pulls in the engine,
    # pydantic and pandas, which `promptlooper --help` never needs. Every handler does the same.
    from ..store import default_path, is_url
    from ..workbench import Workbench

    db = getattr(args, "db", None) or default_path()
    actor = getattr(args, "actor", None)  # --as NAME (promptlooper.actors: else $PROMPTLOOPER_USER, else the OS user)
    if args.database == NONE_NEEDED and not is_url(db) and not Path(db).exists():
        return Workbench(":memory:", actor=actor)  # nothing registered, nothing cached: what a missing file means
    # A server's database is there already, only its schema may not be: a command that needs none sets it up.
    return Workbench(db, create=args.database == CREATES or (args.database == NONE_NEEDED and is_url(db)), actor=actor)


def _main(argv: list[str] | None) -> int:
    args = build_parser(sys.argv[1:] if argv is None else argv).parse_args(argv)
    try:
        wb = workbench(args)
    except PromptLooperError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        return int(args.fn(wb, args))
    except SpecError as exc:
        return print_problems(exc)
    except PromptLooperError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyError as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 1
    finally:
        # The database gone (a lost PostgreSQL server): the error is said above; closing must not
        # end in a traceback about the same loss.
        with contextlib.suppress(StoreError):
            wb.close()


__all__ = ["build_parser", "console", "main"]
