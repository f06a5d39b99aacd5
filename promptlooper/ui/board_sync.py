"""What the leaderboard sends its page: the whole table once, then keyed deltas.

A live sweep refreshes the leaderboard about once a second, and most refreshes change a few
rows: a score, ``n``, a rank. Sending every row every time cost the notebook's websocket (and
the kernel's loop, which serialises it) a full board per second; a board of a few hundred
configurations is hundreds of kilobytes. So the page receives

- ``table`` = ``{"seq": s, "rows": [...]}``: every row, each with a small integer key ``k``;
  sent when the board is rebuilt (first show, or different columns);
- ``delta`` = ``{"base": s, "n": i, "add": [...], "patch": [...], "remove": [k...], "order": [k...]}``:
  new rows in full, for changed rows only their changed fields (``cells`` merged one level
  deep), the keys gone, and the display order when it changed (keys, not 64-character ids).

The page applies a delta whose ``base`` is its table's ``seq`` and keeps the merged table as its
model's ``table`` (locally), so a notebook saved with its widget state keeps the whole board. A
page that missed deltas (one that connects while a sweep runs, as a dashboard does, gets the first
table and only the latest delta) asks for the table again (``resync``): each delta builds on the
one before, so applying a later one alone would leave rows out for good.
Python stays the owner of the rows: this only decides how they travel.
"""

from __future__ import annotations

from typing import Any


def page_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the page draws it: without the raw ``values`` (Python sorts, the page only
    draws ``cells``)."""
    return {k: v for k, v in row.items() if k != "values"}


def row_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``new`` that differ from ``old`` (``cells`` compared cell by cell)."""
    patch = {k: v for k, v in new.items() if k != "cells" and old.get(k) != v}
    old_cells, new_cells = old.get("cells") or {}, new.get("cells") or {}
    cells = {k: v for k, v in new_cells.items() if old_cells.get(k) != v}
    if cells:
        patch["cells"] = cells
    return patch


class BoardSync:
    """The page's copy of the board as last sent, and the next message that brings it up to date."""

    def __init__(self) -> None:
        self.seq = 0  # the table the page has
        self.n = 0  # deltas sent on that table
        self._columns: list[str] | None = None
        self._keys: dict[str, int] = {}  # config id -> k
        self._next = 0  # the next unused k
        self._sent: dict[str, dict[str, Any]] = {}  # config id -> page row as the page has it
        self._order: list[int] = []

    def update(self, rows: list[dict[str, Any]], columns: list[dict[str, Any]]) -> tuple[str, dict[str, Any]] | None:
        """``("table", value)`` or ``("delta", value)`` for the page to show ``rows`` (in order), or
        None when it already does."""
        page = [page_row(r) for r in rows]
        keys = [c["key"] for c in columns]
        if not self.seq or keys != self._columns:
            return "table", self._rebuild(page, keys)
        add: list[dict[str, Any]] = []
        patch: list[dict[str, Any]] = []
        for row in page:
            rid = row["id"]
            if rid not in self._keys:
                self._keys[rid] = k = self._next
                self._next += 1
                add.append({**row, "k": k})
            else:
                change = row_patch(self._sent[rid], row)
                if change:
                    patch.append({"k": self._keys[rid], **change})
            self._sent[rid] = row
        live = {r["id"] for r in page}
        remove = [self._keys.pop(rid) for rid in [i for i in self._keys if i not in live]]
        for rid in [i for i in self._sent if i not in live]:
            del self._sent[rid]
        order = [self._keys[r["id"]] for r in page]
        moved = order != self._order
        self._order = order
        if not (add or patch or remove or moved):
            return None
        self.n += 1
        delta: dict[str, Any] = {"base": self.seq, "n": self.n, "add": add, "patch": patch, "remove": remove}
        if moved:
            delta["order"] = order
        return "delta", delta

    def resend(self) -> None:
        """Forget what the page has (it missed deltas): the next :meth:`update` sends the whole table."""
        self._columns = None

    def _rebuild(self, page: list[dict[str, Any]], columns: list[str]) -> dict[str, Any]:
        self.seq += 1
        self.n = 0
        self._columns = columns
        self._keys = {r["id"]: k for k, r in enumerate(page)}
        self._sent = {r["id"]: r for r in page}
        self._order = list(range(len(page)))
        self._next = len(page)
        return {"seq": self.seq, "rows": [{**r, "k": k} for k, r in enumerate(page)]}
