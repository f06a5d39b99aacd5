"""The ``migrate`` command: copy a SQLite store into PostgreSQL (``--to postgresql://…``).

The copy itself (one transaction, ids kept, verified, safe to rerun) is
:func:`promptlooper.store.copying.copy_store`; this reads options and prints each table's counts.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from .commands import command
from .output import table

if TYPE_CHECKING:
    from ..store.copying import TableCopy
    from ..workbench import Workbench


def cmd_migrate(wb: Workbench, args: argparse.Namespace) -> int:
    from ..store import is_url
    from ..store.copying import copy_store

    source = wb.db_path
    if is_url(source):
        print("error: the store to copy must be a SQLite file (--from FILE), not a database server", file=sys.stderr)
        return 1
    _ = wb.store  # opens the file: says so if there is none, and brings an older one's schema up to date
    wb.close()  # the copy reads the file itself; nothing of this process writes it meanwhile

    def shown(done: TableCopy) -> None:
        print(f"  {done.table}: {done.copied:,} copied", file=sys.stderr)

    print(f"copying {source} …", file=sys.stderr)
    report = copy_store(source, args.to, force=args.force, progress=shown)
    print(table([{"table": t.table, "rows": t.source, "copied": t.copied, "already there": t.already}
                 for t in report.tables]))
    print(f"verified: every row of {report.source} is in {report.target} ({report.copied:,} copied now)")
    return 0


def add_parser(sub: Any) -> None:
    p = command(sub, "migrate", cmd_migrate,
                "Copy this SQLite store into a PostgreSQL database (ids kept, verified; safe to run again).")
    p.add_argument("--to", required=True, metavar="URL", help="postgresql://user@host/db (its schema is made if new)")
    p.add_argument("--from", dest="db", metavar="FILE", default=argparse.SUPPRESS,
                   help="the SQLite store to copy (default: --db, $PROMPTLOOPER_DB or ./promptlooper.db)")
    p.add_argument("--force", action="store_true",
                   help="copy even into a database that holds other projects (rows it has are kept as they are)")
