"""The experiments overview: every experiment of the store with its status, progress and best
score, linking to its dashboard page. Sorting and searching happen in the page (they only
change what this one viewer sees); the rows are read from the store every few seconds."""

from __future__ import annotations

from typing import Any

import traitlets

from ._assets import asset, esm
from ._base import PLWidget, Reader, every


def overview_rows(wb: Any) -> list[dict[str, Any]]:
    """One plain row per experiment, newest first."""
    rows = []
    for exp in wb.experiments():
        sweep = (wb.status(exp["id"]).get("sweep") or {})
        best = sweep.get("best_score")
        rows.append({
            "key": f"{exp['project']}/{exp['name']}", "project": str(exp["project"]), "name": str(exp["name"]),
            "status": str(sweep.get("status") or exp.get("status") or ""), "runs": int(exp.get("runs") or 0),
            "done": int(sweep.get("done") or 0), "total": int(sweep.get("total") or 0),
            "best": None if best is None else float(best), "updated": str(exp.get("updated_at") or "")[:19],
        })
    return sorted(rows, key=lambda r: r["updated"], reverse=True)


class Overview(PLWidget):
    """A styled, sortable, searchable table of experiments; ``link`` is the experiment page."""

    _esm = esm("overview")
    _css = asset("overview", "widget.css")

    rows = traitlets.List().tag(sync=True)
    link = traitlets.Unicode("experiment.ipynb?experiment=").tag(sync=True)

    def __init__(self, wb: Any, *, live: bool = True, interval: float = 2.0, readonly: bool | None = None):
        super().__init__(readonly=readonly)
        self.wb = wb
        self._reader = Reader(wb)
        self.rows = overview_rows(wb)
        if live:
            self._start_loop((wb.db_path,), every(interval, self._tick, self._reader.changes(None)))

    async def _tick(self) -> bool:
        rows = await self._reader.run(overview_rows)
        if rows != self.rows:
            self.rows = rows
        return self._closed

    def _on_refresh(self) -> None:
        self.rows = overview_rows(self.wb)
