"""The store's shared SQL, as PostgreSQL runs it.

The noun classes (``promptlooper/store/experiments.py`` …) are written once, in the SQL both
engines share; the few SQLite-only forms they use are rewritten here, each by one rule whose
PostgreSQL meaning is the SQLite one for the store's statements:

``?``                            → ``%s`` (psycopg's placeholder; a literal ``%`` is doubled first)
``INSERT OR IGNORE INTO t …``    → ``INSERT INTO t … ON CONFLICT DO NOTHING``
``INSERT OR REPLACE INTO t (c…)``→ an upsert on ``t``'s primary key setting every other column
                                   (and ``rowid = DEFAULT``: a replaced row moves to the end, as in SQLite)
``WHERE 1``                      → ``WHERE TRUE``
``a LIKE b``                     → ``a ILIKE b`` (SQLite's LIKE ignores case; an id prefix typed in capitals still matches)
``group_concat(x, char(10))``    → ``string_agg(x, chr(10))``
``instr(a, b)``                  → ``strpos(a, b)``
``substr(x, -1)``                → ``right(x, 1)`` (a negative start means "from the end" only in SQLite)

Statements are rewritten once each (cached). The hot path (a sweep's result batches) does not go
through here: :mod:`.batches` writes it in PostgreSQL's own SQL.
"""

from __future__ import annotations

import functools
import re

# Primary keys of the tables the store writes with INSERT OR REPLACE (see schema.py).
PRIMARY_KEYS = {"scores": ("run_id", "scorer"), "settings": ("key",), "stage_results": ("run_id", "stage_index"),
                "response_cache": ("key",)}
# Tables with a rowid column of PostgreSQL's own (schema.py).
ROWID_TABLES = frozenset({"scores", "sweeps"})

_OR_REPLACE = re.compile(r"^\s*INSERT OR REPLACE INTO (\w+) \(([^)]*)\)", re.S)
_OR_IGNORE = re.compile(r"^\s*INSERT OR IGNORE INTO ", re.S)
_RULES = [
    (re.compile(r"\bWHERE 1(?=\s|$)"), "WHERE TRUE"),
    (re.compile(r"\bLIKE\b"), "ILIKE"),
    (re.compile(r"\bgroup_concat\("), "string_agg("),
    (re.compile(r"\bchar\(10\)"), "chr(10)"),
    (re.compile(r"\binstr\("), "strpos("),
    (re.compile(r"\bsubstr\(([\w.]+), -1\)"), r"right(\1, 1)"),
]


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    sql = sql.replace("%", "%%").replace("?", "%s")
    for pattern, replacement in _RULES:
        sql = pattern.sub(replacement, sql)
    if _OR_IGNORE.match(sql):
        sql = _OR_IGNORE.sub("INSERT INTO ", sql) + " ON CONFLICT DO NOTHING"
    elif m := _OR_REPLACE.match(sql):
        table, columns = m.group(1), [c.strip() for c in m.group(2).split(",")]
        key = PRIMARY_KEYS[table]
        sets = [f"{c} = EXCLUDED.{c}" for c in columns if c not in key]
        if table in ROWID_TABLES:
            sets.append("rowid = DEFAULT")
        sql = (sql.replace("INSERT OR REPLACE INTO", "INSERT INTO", 1)
               + f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {', '.join(sets)}")
    return sql
