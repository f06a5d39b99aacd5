"""All SQL lives in ``promptlooper/store/``: the rule, read from the package's syntax trees.

Outside the store no module may hold a string that reads as an SQL statement, reach a store's
connection (``.cx``, ``.db``, ``._db``, ``.conn`` on anything), or import sqlite3 / sqlite_utils
(ruff's TID251 bans the imports too; this test says it without running ruff). A second backend
(PostgreSQL) then implements :class:`promptlooper.store.backend.StoreBackend` and nothing else.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import promptlooper

PACKAGE = Path(promptlooper.__file__).resolve().parent
STORE = PACKAGE / "store"

# Upper-case keywords only: prose in docstrings ("select the best, from ...") is not SQL.
SQL = re.compile(
    r"\bSELECT\b[\s\S]*\bFROM\b"
    r"|\bINSERT\s+(?:OR\s+[A-Z]+\s+)?INTO\b"
    r"|\bUPDATE\s+\w+\s+SET\b"
    r"|\bDELETE\s+FROM\b"
    r"|\bCREATE\s+(?:UNIQUE\s+)?(?:TABLE|INDEX|VIEW|TRIGGER)\b"
)
CONNECTION_ATTRIBUTES = {"cx", "db", "_db", "conn"}
SQLITE_MODULES = {"sqlite3", "sqlite_utils"}


def _modules() -> list[Path]:
    modules = sorted(p for p in PACKAGE.rglob("*.py") if STORE not in p.parents)
    assert len(modules) > 50, f"the package's modules were not found under {PACKAGE}"
    return modules


def _string_text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):  # an f-string: its literal parts, the holes as "?"
        return "".join(v.value if isinstance(v, ast.Constant) else "?" for v in node.values)
    return None


def violations(source: str) -> list[tuple[int, str]]:
    """(line, what) of every breach of the rule in one module's source."""
    found = []
    tree = ast.parse(source)
    inside_fstring = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if id(node) in inside_fstring:
            continue  # judged as part of its f-string
        text = _string_text(node)
        if text is not None and SQL.search(text):
            found.append((node.lineno, f"SQL statement {text[:60]!r}"))
        elif isinstance(node, ast.Attribute) and node.attr in CONNECTION_ATTRIBUTES:
            found.append((node.lineno, f"reaches a store's connection (.{node.attr})"))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, f"imports {a.name}") for a in node.names if a.name.split(".")[0] in SQLITE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] in SQLITE_MODULES:
            found.append((node.lineno, f"imports {node.module}"))
    return found


@pytest.mark.parametrize("source, expected", [
    ('c.execute("SELECT a, b FROM runs WHERE id = ?")', 1),
    ('c.execute(f"DELETE FROM scores WHERE run_id IN ({marks})")', 1),
    ('q = ("INSERT OR REPLACE INTO scores (a) "\n     "VALUES (?)")', 1),
    ('x = "UPDATE runs SET score = ?"', 1),
    ('x = "CREATE TABLE IF NOT EXISTS t (a)"', 1),
    ("with store.cx.read() as c: pass", 1),
    ("rows = store.db.query(q)", 1),
    ("wb.store._db", 1),
    ("import sqlite3", 1),
    ("from sqlite_utils import Database", 1),
    ('"""Pick the best configuration from the leaderboard; select runs from a sweep."""', 0),
    ('help = "database file (default ./promptlooper.db)"', 0),
    ("store.rate_run(run_id, rows)", 0),
])
def test_the_rule_sees_sql_and_connections(source: str, expected: int) -> None:
    assert len(violations(source)) == expected, violations(source)


def test_no_sql_outside_the_store() -> None:
    found = [f"{path.relative_to(PACKAGE.parent)}:{line}: {what}"
             for path in _modules() for line, what in violations(path.read_text(encoding="utf-8"))]
    assert not found, "add a Store method (promptlooper/store/) instead:\n" + "\n".join(found)


def _store_imports() -> dict[str, set[str]]:
    """Module of promptlooper/store/ → the modules of the package it imports (anywhere in it, even in a function)."""
    names = {p.stem for p in STORE.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in STORE.glob("*.py"):
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                targets = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
                edges |= {t for t in targets if t in names}
        graph[path.stem] = edges - {path.stem}
    return graph


def test_the_store_modules_import_each_other_without_a_circle() -> None:
    graph = _store_imports()
    assert {"store", "housekeeping", "db"} <= set(graph)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph[start] - seen:
            if nxt == goal or reaches(nxt, goal, seen | {nxt}):
                return True
        return False

    circles = sorted(m for m in graph if reaches(m, m, set()))
    assert not circles, f"these store modules import themselves through others: {circles}"
