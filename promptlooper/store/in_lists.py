"""Values bound into a statement as a list: ``IN (?,…)`` placeholders, and long lists cut in parts.

SQLite bounds how many values one statement binds (999 before 3.32), and each list length is a
statement of its own in the connection's statement cache; a read or write that may bind many keys
goes in parts of a fixed size. (PostgreSQL's store translates the ``?`` placeholders.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

IN_MAX = 500  # values per IN list: well under SQLite's bound-parameter limit


def marks(n: int) -> str:
    """``?,?,…``: the placeholders of ``n`` values."""
    return ",".join("?" * n)


def parts(values: Iterable[T], size: int = IN_MAX) -> Iterator[list[T]]:
    """``values`` in consecutive lists of at most ``size``."""
    items = list(values)
    for i in range(0, len(items), size):
        yield items[i:i + size]
