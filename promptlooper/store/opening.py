"""Which store a location names: a SQLite file, or a PostgreSQL database by URL.

A location is what ``--db``, ``Workbench(db)``, ``$PROMPTLOOPER_DB`` or ``$DATABASE_URL`` give
(:func:`~promptlooper.store.db.default_path`). ``postgresql://…`` (or ``postgres://…``) opens
:class:`~promptlooper.store.postgres.PostgresStore`; ``sqlite:///path`` and a plain path open the
SQLite file; any other ``scheme://`` is an error that says what is supported, rather than a file
of that odd name. Every part of PromptLooper opens its store here, so one URL selects the
backend for the CLI, notebooks, the MCP server, dashboards and a sweep's own connections.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import StoreError
from .backend import StoreBackend
from .store import Store

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
POSTGRES_SCHEMES = ("postgresql", "postgres")


def scheme(location: str) -> str | None:
    """The URL scheme of ``location`` (lower case), or None for a file path."""
    m = _SCHEME.match(location)
    return m.group(1).lower() if m else None


def is_url(location: str) -> bool:
    """A database server's URL rather than a file (nothing to look for on disk)."""
    return scheme(location) in POSTGRES_SCHEMES


def uses_writer_process(location: str) -> bool:
    """Whether a sweep on this store hands its batches to a writer process: SQLite files only (a
    PostgreSQL server takes concurrent writers itself; batches go through the pool in-process)."""
    return not is_url(location)


def shown_location(location: str) -> str:
    """The database for a message or a log line: a file's full path, or a URL with its password
    hidden (a PostgreSQL URL may carry one; it must never reach a terminal, log or reply)."""
    if is_url(location):
        return re.sub(r"^(\w+(?:\+\w+)?://[^:/@]+):[^@]*@", r"\1:***@", location)
    return str(Path(location).resolve())


def open_store(location: str, *, readonly: bool = False, create: bool = True) -> StoreBackend:
    kind = scheme(location)
    if kind is None:
        return Store(location, readonly=readonly, create=create)
    if kind == "sqlite":
        return Store(location.split("://", 1)[1], readonly=readonly, create=create)
    if kind in POSTGRES_SCHEMES:
        # psycopg is an optional extra, imported only by those who name a PostgreSQL database.
        try:
            from .postgres import PostgresStore
        except ImportError as exc:
            raise StoreError(f"a PostgreSQL store needs its driver: pip install 'promptlooper[postgres]' ({exc})") from exc
        return PostgresStore(location, readonly=readonly, create=create)
    raise StoreError(f"unsupported database URL scheme {kind!r} in {location.split('://', 1)[0]}://…: give a SQLite file path "
                     "(or sqlite:///path) or a postgresql:// URL (--db, $DATABASE_URL or $PROMPTLOOPER_DB)")


__all__ = ["is_url", "open_store", "scheme", "shown_location", "uses_writer_process"]
