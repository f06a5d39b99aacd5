"""Activity timeline: the experiment's events, newest first, filterable by type, polled from the store.

Events come from every process that touches the experiment (this kernel's sweep, the CLI, an
agent over MCP), so the feed reads the store, never in-process callbacks. The filter is applied
here: the browser sends which types to hide and gets the filtered feed back.
"""

from __future__ import annotations

import collections
from typing import Any

import traitlets

from ._assets import asset, esm
from ._base import PLWidget, Reader, every, experiment_key
from ._format import fmt_cost, fmt_int, fmt_score, fmt_value, short

KEEP = 2000  # events held in memory for filtering
SHOW = 150  # events sent to the browser
PAGE = 5000
QUIET = ("run.started",)  # hidden until asked for: one per run, they drown the rest


def summarize(event: dict[str, Any]) -> str:
    """One line saying what happened (user text stays text: the browser sets textContent)."""
    t, p = event.get("type", ""), event.get("payload") or {}
    cfg = short(p.get("config_id"))
    if t in ("run.completed", "run.cached"):
        return f"config {cfg} · score {fmt_score(p.get('score'))}"
    if t == "run.started":
        return f"config {cfg} · run {short(p.get('run_id'), 8)}"
    if t == "run.failed":
        return f"config {cfg} · {p.get('error') or 'failed'}"
    if t == "new_best_found":
        params = ", ".join(f"{k}={fmt_value(v)}" for k, v in (p.get("varied") or {}).items())
        return f"config {cfg} · score {fmt_score(p.get('score'))} (n={p.get('n', '?')})" + (f" · {params}" if params else "")
    if t == "experiment.started":
        return f"{fmt_int(p.get('total'))} runs ({fmt_int(p.get('already_done'))} already done), {p.get('strategy', '')}"
    if t in ("experiment.completed", "experiment.stopped"):
        return (f"{fmt_int(p.get('done'))}/{fmt_int(p.get('total'))} runs · {fmt_int(p.get('tokens'))} tokens · "
                f"{fmt_cost(p.get('cost'))}" + (f" · best {fmt_score(p.get('best_score'))}" if p.get("best_score") is not None else ""))
    if t == "experiment.paused":
        return str(p.get("reason") or "paused")
    if t == "budget.exhausted":
        return f"{fmt_int(p.get('token_count'))} tokens · {fmt_cost(p.get('cost'))}"
    if t.startswith("configuration."):
        by = f" by {p['by']}" if p.get("by") else ""
        return f"config {cfg}{by}" + (f": {p['reason']}" if p.get("reason") else "")
    if t == "experiment.forked":
        return f"{p.get('parent', '')} → {p.get('child', '')}"
    if t == "experiment.redirected":
        return f"{fmt_int(p.get('configurations'))} configurations · {fmt_int(p.get('remaining_runs'))} runs left"
    if t == "run.rated":
        given = [f"thumbs {p['thumbs']}" if p.get("thumbs") else "", f"{p['stars']} stars" if p.get("stars") else ""]
        by = f" by {p['by']}" if p.get("by") else ""
        return f"run {short(p.get('run_id'), 8)} · " + ", ".join(g for g in given if g) + by
    if t == "human_needed":
        return str(p.get("reason") or "")
    return ", ".join(f"{k}={fmt_value(v)}" for k, v in p.items() if not isinstance(v, dict | list))[:200]


def event_row(event: dict[str, Any]) -> dict[str, Any]:
    ts = str(event.get("ts") or "")
    summary = summarize(event)
    by = str((event.get("payload") or {}).get("by") or "")  # who acted (promptlooper.actors), on a shared store
    if by and f" by {by}" not in summary:
        summary = f"{summary} · by {by}" if summary else f"by {by}"
    return {"id": int(event["id"]), "ts": ts, "time": ts[11:19] if len(ts) >= 19 else ts, "type": str(event.get("type", "")),
            "family": str(event.get("type", "")).split(".")[0], "summary": summary, "by": by}


class Timeline(PLWidget):
    """The event feed; ``hidden`` holds the types filtered out (``run.started`` by default)."""

    _esm = esm("timeline")
    _css = asset("timeline", "widget.css")

    events = traitlets.List().tag(sync=True)
    types = traitlets.List().tag(sync=True)  # [{type, count, hidden}]
    hidden = traitlets.List(list(QUIET)).tag(sync=True)

    def __init__(self, wb: Any, experiment: Any, *, poll: float = 1.0, live: bool = True, readonly: bool | None = None,
                 slot: str = ""):
        super().__init__(readonly=readonly, slot=slot)
        self.wb = wb
        self.experiment = experiment_key(experiment)
        self._reader = Reader(wb)
        self._rows: collections.deque[dict[str, Any]] = collections.deque(maxlen=KEEP)
        self._counts: collections.Counter[str] = collections.Counter()
        self._last_id = 0
        self.add_events(self._fetch(wb))
        if live:
            self._start_loop((wb.db_path, self.experiment), every(poll, self._poll, self._reader.changes(self.experiment)))

    def _fetch(self, wb: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = wb.events(self.experiment, after_id=self._last_id if not out else out[-1]["id"], limit=PAGE)
            out.extend(page)
            if len(page) < PAGE:
                return out

    async def _poll(self) -> bool:
        self.add_events(await self._reader.run(self._fetch))
        return self._closed

    def add_events(self, events: list[dict[str, Any]]) -> None:
        """Take new events (ascending ids) into the feed."""
        fresh = [e for e in events if int(e["id"]) > self._last_id]
        if not fresh:
            return
        for e in fresh:
            row = event_row(e)
            self._rows.append(row)
            self._counts[row["type"]] += 1
        self._last_id = int(fresh[-1]["id"])
        self._publish()

    def visible(self) -> list[dict[str, Any]]:
        hidden = set(self.hidden)
        out = []
        for row in reversed(self._rows):
            if row["type"] not in hidden:
                out.append(row)
                if len(out) >= SHOW:
                    break
        return out

    def _publish(self) -> None:
        hidden = set(self.hidden)
        self.types = [{"type": t, "count": n, "hidden": t in hidden} for t, n in sorted(self._counts.items())]
        events = self.visible()
        if events != self.events:
            self.events = events

    # -- messages -------------------------------------------------------------
    def _on_toggle(self, type: str) -> None:  # noqa: A002 - the message field is called type
        self.hidden = [t for t in self.hidden if t != type] if type in self.hidden else [*self.hidden, type]
        self._publish()

    def _on_only(self, type: str) -> None:  # noqa: A002
        self.hidden = [t for t in self._counts if t != type]
        self._publish()

    def _on_all(self) -> None:
        self.hidden = []
        self._publish()
