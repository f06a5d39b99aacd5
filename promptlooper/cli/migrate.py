"""Commands that move a store or share it with a team: ``migrate`` (copy a SQLite store into
PostgreSQL) and ``db reader-role`` (a read-only database role for the dashboards).

The copy itself (one transaction, ids kept, verified, safe to rerun) is
:func:`promptlooper.store.copying.copy_store`, the role :func:`promptlooper.store.postgres.roles.
create_reader_role`; this reads options and prints.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from .commands import CREATES, action, command
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
    print(table([{"table": t.table, "rows": t.source, "copied": t.copied, "already there": t.already,
                  "updated (newer)": t.updated, "target's kept": t.kept} for t in report.tables]))
    print(f"verified: every row of {report.source} is in {report.target} ({report.copied:,} copied now)")
    return 0


def cmd_db(wb: Workbench, args: argparse.Namespace) -> int:
    from ..store import is_url, shown_location

    if not is_url(wb.db_path):
        print("error: a read-only role is a PostgreSQL database's (--db postgresql://… or $DATABASE_URL); dashboards "
              "open a SQLite file read-only (mode=ro) already", file=sys.stderr)
        return 1
    password = os.environ.get(args.password_env, "") if args.password_env else ""
    if args.password_env and not password:
        print(f"error: ${args.password_env} is empty: put the role's password in it", file=sys.stderr)
        return 1
    _ = wb.store  # makes or upgrades the schema first: the grants cover the tables that exist
    # psycopg is the PostgreSQL extra's, imported only here.
    from ..store.postgres.roles import create_reader_role

    url = create_reader_role(wb.db_path, args.role, password or None)
    print(f"read-only role {args.role}: {shown_location(url)}")
    print(f"serve the dashboards with it: promptlooper dashboard --db {shown_location(url)}")
    return 0


# What add_parser adds: a command line naming one of these builds only this group's parsers (cli/parser.py).
COMMANDS = ("migrate", "db")


def add_parser(sub: Any) -> None:
    p = command(sub, "migrate", cmd_migrate,
                "Copy this SQLite store into a PostgreSQL database (ids kept, verified; safe to run again).")
    p.add_argument("--to", required=True, metavar="URL", help="postgresql://user@host/db (its schema is made if new)")
    p.add_argument("--from", dest="db", metavar="FILE", default=argparse.SUPPRESS,
                   help="the SQLite store to copy (default: --db, $PROMPTLOOPER_DB or ./promptlooper.db)")
    p.add_argument("--force", action="store_true",
                   help="copy even into a database that holds other projects (its own rows are left as they are)")
    p = command(sub, "db", cmd_db, "Database administration of a PostgreSQL store (DATABASE_URL).", database=CREATES)
    verbs = p.add_subparsers(dest="action", required=True)
    r = action(verbs, "reader-role", "Create (or refresh) a role that may only read: for `promptlooper dashboard --db`.",
               database=CREATES)
    r.add_argument("role", help="the role's name, e.g. promptlooper_reader")
    r.add_argument("--password-env", metavar="VAR", help="the environment variable holding its password (never an argument)")
