"""Copy a SQLite store into a PostgreSQL one (``promptlooper migrate --to postgresql://…``).

What is copied: every table the two schemas share (the migrations are mirrored, so that is every
table: projects, experiments, configurations, runs, stage results, scores, both caches, events,
sweeps, endpoints, settings, webhooks and their outbox and deliveries, notes, definitions, …),
and in each the columns both have. Rows keep their ids (hashes, and the events' numbers, which
webhook cursors point at), so leaderboards, exports and the response cache come out identical.
Nothing secret is in a store to copy: endpoints and webhooks keep the *names* of environment
variables, never their values.

How:
* The target's schema is made or brought up to date first (the PostgreSQL store's migrations), and
  the source must have no table the target lacks (its rows would be lost: upgrade PromptLooper).
* The SQLite file is read in one read transaction (one snapshot, even while a sweep writes it).
* One transaction holds the whole copy, under the store's write lock (:data:`.postgres.connection.
  WRITE_LOCK`): a failure leaves the target as it was, and no writer interleaves.
* Each table streams from SQLite (read in batches of :data:`BATCH` rows) through ``COPY`` into a
  temporary table of the target's column types, then ``INSERT … SELECT … ON CONFLICT DO NOTHING``
  in the order of the foreign keys. Tables PostgreSQL reads in write order (scores, sweeps: their
  ``rowid`` column) are copied in SQLite's rowid order.
* Identity columns' sequences are moved past the copied ids, so new events and notes get new ones.
* Verification: after the inserts, every source row is compared, all its columns, with the
  target's row of the same key; unless each is there with the same values or counted as *kept*
  (below), the transaction is rolled back.

Reruns are safe: a row the target already has is not copied again, so a second run copies only
what the SQLite file gained since. A row whose key the target has with other values keeps the
target's values (a configuration approved on PostgreSQL since, a webhook cursor that moved on),
counted as *kept*, unless the row says when it changed (``updated_at``: projects, experiments,
sweeps, endpoints) and the source's is later: then the source's values replace it (*updated*), so
a store copied while a sweep ran, and copied again after, shows the sweep finished. Except in numbered tables (events, notes, the webhook outbox and its
deliveries, told values): the same number with other values is another history's record, and the
copy is refused (both stores went on after an earlier copy, or the target is another store).
A target that already holds projects the source does not know is another team's store: refused,
unless ``force=True``, so one typo in a URL cannot mix two stores.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StoreError
from .opening import is_url, scheme, shown_location

BATCH = 5000
# Bookkeeping of each engine, never data: each store records its own migrations.
_NOT_DATA = {"_sqlite_migrations", "sqlite_sequence", "_promptlooper_migrations"}


@dataclass
class TableCopy:
    """One table's figures: rows in the source, rows copied now, rows the target already had as they
    are, rows whose key the target has with other values (the target's kept), and rows the source
    changed later than the target did (``updated_at``: the source's copied over; see the module)."""

    table: str
    source: int = 0
    copied: int = 0
    already: int = 0
    kept: int = 0
    updated: int = 0


@dataclass
class CopyReport:
    source: str
    target: str
    tables: list[TableCopy] = field(default_factory=list)

    @property
    def copied(self) -> int:
        return sum(t.copied for t in self.tables)


def copy_store(source: str, target: str, *, force: bool = False,
               progress: Callable[[TableCopy], None] | None = None) -> CopyReport:
    """Copy the SQLite store at ``source`` into the PostgreSQL database ``target`` (see the module)."""
    if not is_url(target):
        raise StoreError(f"--to must be a postgresql:// URL (the database to copy into), not {target!r}: "
                         "a SQLite file is copied with cp")
    if scheme(source) not in (None, "sqlite") or not Path(_file(source)).is_file():
        raise StoreError(f"--from must be an existing SQLite store file, not {shown_location(source)}")
    # psycopg is an optional extra, imported by those who copy into PostgreSQL only.
    import psycopg

    from .postgres import PostgresStore
    from .postgres.connection import WRITE_LOCK

    PostgresStore(target).close()  # makes or migrates the target's schema (and says clearly if it cannot connect)
    report = CopyReport(shown_location(source), shown_location(target))
    src = sqlite3.connect(f"file:{Path(_file(source)).resolve()}?mode=ro", uri=True, isolation_level=None)
    try:
        # One read transaction for the whole copy: every table is read from the same snapshot (WAL), so
        # a sweep still writing the file cannot give scores whose runs were committed after runs were read.
        src.execute("BEGIN")
        with psycopg.connect(target) as pg, pg.transaction():
            pg.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            tables = _tables_in_order(pg, _source_tables(src))
            _refuse_a_mixed_target(src, pg, force)
            numbered = _identity_columns(pg)
            for table in tables:
                done = _copy_table(src, pg, table, numbered=table in numbered)
                report.tables.append(done)
                if progress:
                    progress(done)
            _advance_identities(pg, tables)
    except psycopg.Error as exc:
        raise StoreError(f"copying into {report.target} failed, nothing was written: {exc}") from exc
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the SQLite store {report.source}: {exc}; nothing was written") from exc
    finally:
        src.close()
    return report


def _file(location: str) -> str:
    return location.split("://", 1)[1] if scheme(location) == "sqlite" else location


def _source_tables(src: sqlite3.Connection) -> list[str]:
    names = [r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return [n for n in names if n not in _NOT_DATA and not n.startswith("sqlite_")]


def _tables_in_order(pg: Any, wanted: list[str]) -> list[str]:
    """``wanted`` with each table after the tables its foreign keys point at; every one must exist in the target."""
    have = {r[0] for r in pg.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
    missing = [t for t in wanted if t not in have]
    if missing:
        raise StoreError(f"the target has no table {', '.join(missing)} (the SQLite store was written by a newer "
                         "PromptLooper?): upgrade the PromptLooper that runs migrate, then run it again")
    parents: dict[str, set[str]] = {t: set() for t in wanted}
    for child, parent in pg.execute("SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint"
                                    " WHERE contype = 'f' AND connamespace = current_schema()::regnamespace"):
        if child in parents and parent in parents and parent != child:
            parents[child].add(parent)
    ordered: list[str] = []
    while parents:
        ready = sorted(t for t, ps in parents.items() if not ps - set(ordered))
        if not ready:
            raise StoreError(f"foreign keys form a circle between {sorted(parents)}")
        ordered += ready
        for t in ready:
            del parents[t]
    return ordered


def _refuse_a_mixed_target(src: sqlite3.Connection, pg: Any, force: bool) -> None:
    theirs = {r[0]: r[1] for r in pg.execute("SELECT id, name FROM projects")}
    ours = {r[0] for r in src.execute("SELECT id FROM projects")}
    strangers = sorted(name for pid, name in theirs.items() if pid not in ours)
    if strangers and not force:
        raise StoreError(f"the target already holds projects the SQLite store does not have ({', '.join(strangers[:5])}"
                         f"{', …' if len(strangers) > 5 else ''}): is it the right database? Give --force to copy into it "
                         "anyway (rows of the same key keep the target's values unless the file's changed later)")


def _columns(src: sqlite3.Connection, pg: Any, table: str) -> list[tuple[str, str, bool]]:
    """(name, target type, part of the primary key) of the columns both stores have, in the target's order."""
    theirs = {r[1] for r in src.execute(f'PRAGMA table_info("{table}")')}
    rows = pg.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod),"
        " EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary AND a.attnum = ANY(i.indkey))"
        " FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (table,)).fetchall()
    # PostgreSQL's own rowid (scores, sweeps) numbers rows in write order: given by the target as they arrive.
    return [(name, kind, key) for name, kind, key in rows if name in theirs and name != "rowid"]


def _copy_table(src: sqlite3.Connection, pg: Any, table: str, *, numbered: bool) -> TableCopy:
    from psycopg import sql

    columns = _columns(src, pg, table)
    names = [c[0] for c in columns]
    keys = [c[0] for c in columns if c[2]]
    if not keys:
        raise StoreError(f"table {table} has no primary key in the target: cannot copy it without doubles on a rerun")
    stage = sql.Identifier(f"_copy_{table}")
    cols = sql.SQL(", ").join(map(sql.Identifier, names))
    typed = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(k)) for n, k, _ in columns)
    pg.execute(sql.SQL("CREATE TEMPORARY TABLE {} (_n BIGSERIAL, {}) ON COMMIT DROP").format(stage, typed))
    done = TableCopy(table)
    with pg.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, cols)) as copy:
        for row in _rows(src, table, names):
            copy.write_row(row)
            done.source += 1
    target = sql.Identifier(table)

    def matching(compare: str) -> int:
        """Source rows whose key the target has, with the same values (``compare`` "NOT DISTINCT") or other ones."""
        on = sql.SQL(" AND ").join(sql.SQL("t.{k} = s.{k}").format(k=sql.Identifier(k)) for k in keys)
        mine = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(n)) for n in names)
        theirs = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(n)) for n in names)
        query = sql.SQL("SELECT count(*) FROM {s} s JOIN {t} t ON {on} WHERE ROW({a}) IS {cmp} FROM ROW({b})").format(
            s=stage, t=target, on=on, a=mine, b=theirs, cmp=sql.SQL(compare))
        return int(pg.execute(query).fetchone()[0])

    done.kept = matching("DISTINCT")
    if done.kept and numbered:
        raise StoreError(f"{table}: {done.kept:,} record(s) of the SQLite store have numbers the target uses for other "
                         "records: the two stores each went on after an earlier copy, or the target is another store. "
                         "Copy into an empty database (nothing was written)")
    if done.kept and "updated_at" in names:
        # The later change wins where rows say when they changed (ISO timestamps of one format compare as text).
        on = sql.SQL(" AND ").join(sql.SQL("t.{k} = s.{k}").format(k=sql.Identifier(k)) for k in keys)
        sets = sql.SQL(", ").join(sql.SQL("{c} = s.{c}").format(c=sql.Identifier(n)) for n in names if n not in keys)
        done.updated = pg.execute(sql.SQL("UPDATE {t} t SET {sets} FROM {s} s WHERE {on} AND s.updated_at > t.updated_at")
                                  .format(t=target, sets=sets, s=stage, on=on)).rowcount
        done.kept -= done.updated
    inserted = pg.execute(sql.SQL("INSERT INTO {t} ({c}) SELECT {c} FROM {s} ORDER BY _n ON CONFLICT DO NOTHING").format(
        t=target, c=cols, s=stage))
    done.copied = inserted.rowcount
    done.already = done.source - done.copied - done.kept - done.updated
    same = matching("NOT DISTINCT")
    if same + done.kept != done.source:
        raise StoreError(f"verification failed for {table}: of {done.source:,} rows of the SQLite store, {same:,} are in "
                         f"the target as they are and {done.kept:,} kept the target's values (nothing was written)")
    return done


def _rows(src: sqlite3.Connection, table: str, names: list[str]) -> Iterator[tuple[Any, ...]]:
    # rowid order: the order rows were written, which PostgreSQL's rowid columns (scores, sweeps) keep.
    cur = src.execute(f'SELECT {", ".join(f"{chr(34)}{n}{chr(34)}" for n in names)} FROM "{table}" ORDER BY rowid')
    while rows := cur.fetchmany(BATCH):
        yield from rows


def _identity_columns(pg: Any) -> dict[str, str]:
    """Table → its identity column (the numbered tables: events, notes, …)."""
    return dict(pg.execute("SELECT table_name, column_name FROM information_schema.columns"
                           " WHERE table_schema = current_schema() AND is_identity = 'YES'").fetchall())


def _advance_identities(pg: Any, tables: list[str]) -> None:
    """Move each identity column's sequence past the largest copied id (else the next insert collides)."""
    from psycopg import sql

    for table, column in _identity_columns(pg).items():
        if table in tables:
            pg.execute(sql.SQL("SELECT setval(pg_get_serial_sequence({tl}, {cl}), m) FROM"
                               " (SELECT max({c}) AS m FROM {t}) x WHERE m IS NOT NULL").format(
                tl=sql.Literal(table), cl=sql.Literal(column), c=sql.Identifier(column), t=sql.Identifier(table)))


__all__ = ["BATCH", "CopyReport", "TableCopy", "copy_store"]
