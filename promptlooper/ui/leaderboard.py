"""Leaderboard widget: configurations ranked by weighted score, sortable, expandable, decidable.

Columns: the varied parameters, the weighted score with its interval and ``n``, each scorer,
tokens, cost and latency. A click on a header sorts (in Python); a click on a row expands its
runs (prompt sent, response, per-sample scores); approve / reject call the facade. Selecting
rows (up to two) or runs feeds the diff, steering and rating views of the dashboard.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import traitlets

from ._assets import asset, esm
from ._base import TERMINAL, PLWidget, Reader, every, experiment_key
from ._format import clean, fmt_cost, fmt_int, fmt_interval, fmt_ms, fmt_score, fmt_value, short
from .board_sync import BoardSync

# the fixed columns of promptlooper.leaderboard, around the varied and scorer ones
_HEAD = ("rank", "config_id")
_SCORE = ("score", "ci_low", "ci_high", "n")
_TAIL = ("tokens", "cost", "latency_ms", "failed", "failure", "decision", "full_config_id")
ASCENDING_FIRST = frozenset({"tokens", "cost", "latency_ms", "failed", "rank"})
MAX_RUNS = 20


def classify_columns(frame: Any) -> tuple[list[str], list[str], list[str]]:
    """(varied parameter, scorer, other) columns of a leaderboard frame.

    Scorers are the numeric columns between ``n`` and ``tokens``; anything else there (such as
    ``distinguishable``) is shown as information.
    """
    cols = [str(c) for c in frame.columns]
    try:
        varied = cols[cols.index("config_id") + 1 : cols.index("score")]
        between = cols[cols.index("n") + 1 : cols.index("tokens")]
    except ValueError:
        return [], [], []
    import pandas as pd

    scorers = [c for c in between if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]
    return varied, scorers, [c for c in between if c not in scorers]


LABELS = {"distinguishable": "≠ best"}


def column_specs(varied: list[str], scorers: list[str], info: list[str] | None = None, *,
                 failures: bool = False) -> list[dict[str, Any]]:
    """Header cells, in display order, with what sorting by each means (``failed`` when any run failed)."""
    specs = [{"key": "rank", "label": "#", "kind": "rank"}, {"key": "config_id", "label": "config", "kind": "id"}]
    specs += [{"key": k, "label": k, "kind": "param"} for k in varied]
    specs += [{"key": "score", "label": "score", "kind": "score"}, {"key": "interval", "label": "95% CI", "kind": "score"},
              {"key": "n", "label": "n", "kind": "count"}]
    specs += [{"key": k, "label": LABELS.get(k, k), "kind": "info"} for k in info or []]
    specs += [{"key": s, "label": s, "kind": "scorer"} for s in scorers]
    specs += [{"key": "tokens", "label": "tokens", "kind": "metric"}, {"key": "cost", "label": "cost", "kind": "metric"},
              {"key": "latency_ms", "label": "latency", "kind": "metric"}]
    if failures:
        specs.append({"key": "failed", "label": "failed", "kind": "failure"})
    specs.append({"key": "decision", "label": "decision", "kind": "decision"})
    return specs


def info_text(key: str, value: Any) -> str:
    if key == "distinguishable":  # paired test against the best: True = significantly different
        return {"best": "best", True: "yes", False: "no"}.get(value, fmt_value(value))
    return fmt_value(value)


def build_rows(frame: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(column specs, rows) from the DataFrame of ``Workbench.leaderboard``.

    Each row keeps raw ``values`` (for sorting) and display ``cells`` (for drawing).
    """
    varied, scorers, info = classify_columns(frame)
    rows = []
    for rec in frame.to_dict("records"):
        values = {k: clean(v) for k, v in rec.items()}
        values["interval"] = values.get("ci_low")
        cells = {
            "rank": str(values.get("rank", "")), "config_id": str(values.get("config_id", "")),
            "score": fmt_score(values.get("score")), "interval": fmt_interval(values.get("ci_low"), values.get("ci_high")),
            "n": fmt_int(values.get("n")), "tokens": fmt_int(values.get("tokens")), "cost": fmt_cost(values.get("cost")),
            "latency_ms": fmt_ms(values.get("latency_ms")), "decision": str(values.get("decision") or ""),
        }
        cells.update({k: fmt_value(values.get(k)) for k in varied})
        cells.update({k: fmt_score(values.get(k)) for k in scorers})
        cells.update({k: info_text(k, values.get(k)) for k in info})
        failed = int(values.get("failed") or 0)
        # The count with the most common reason, so a failing configuration explains itself.
        cells["failed"] = f"{failed} · {values.get('failure')}" if failed and values.get("failure") else (str(failed) if failed else "")
        rows.append({"id": str(values.get("full_config_id", "")), "cells": cells, "values": values,
                     "decision": cells["decision"], "failed": failed})
    mark_few_samples(rows)
    return column_specs(varied, scorers, info, failures=any(r["failed"] for r in rows)), rows


def mark_few_samples(rows: list[dict[str, Any]]) -> None:
    """Flag configurations scored on fewer samples than the best-sampled one (``few``).

    Mid-sweep, a configuration with two lucky samples can outrank one scored on all of them;
    the view marks such rows so nobody approves a rank that is not yet earned.
    """
    counts = [int(r["values"].get("n") or 0) for r in rows]
    most = max(counts, default=0)
    for r, n in zip(rows, counts, strict=True):
        r["few"] = n < most
        r["n_of"] = f"scored on {n} of {most} samples so far" if n < most else ""


def sort_rows(rows: list[dict[str, Any]], key: str, descending: bool) -> list[dict[str, Any]]:
    """Rows ordered by one column; missing values last whatever the direction, ties by rank."""

    def missing(v: Any) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v))

    present = [r for r in rows if not missing(r["values"].get(key))]
    absent = [r for r in rows if missing(r["values"].get(key))]
    numeric = all(isinstance(r["values"][key], int | float) for r in present)

    def value(r: dict[str, Any]) -> Any:
        v = r["values"][key]
        return v if numeric else fmt_value(v).lower()

    by_rank = sorted(present, key=lambda r: r["values"].get("rank") or 0)
    ordered = sorted(by_rank, key=value, reverse=descending)
    return ordered + sorted(absent, key=lambda r: r["values"].get("rank") or 0)


def default_direction(key: str) -> bool:
    """True (descending) for scores, False for what is better small (cost, tokens, latency)."""
    return key not in ASCENDING_FIRST and key not in ("config_id",)


def toggle_two(chosen: list[str], item: str) -> list[str]:
    """Unselect ``item`` if chosen, else select it, keeping the two latest (a pair to compare)."""
    if item in chosen:
        return [c for c in chosen if c != item]
    return [*chosen, item][-2:]


def run_view(detail: dict[str, Any]) -> dict[str, Any]:
    """One run for display: each stage's prompt, parameters and response, and its scores."""
    stages = []
    for s in detail.get("stages") or []:
        sent = s.get("prompt_sent")
        if isinstance(sent, list) and all(isinstance(m, dict) for m in sent):
            messages = [{"role": str(m.get("role", "")), "content": str(m.get("content", ""))} for m in sent]
        elif sent is None:
            messages = []
        else:
            messages = [{"role": "input", "content": fmt_value(sent)}]
        stages.append({
            "name": s.get("stage_name", ""), "kind": s.get("kind", ""), "model": s.get("model_used") or "",
            "messages": messages, "response": s.get("response_raw") or "",
            "params": ", ".join(f"{k}={fmt_value(v)}" for k, v in sorted((s.get("parameters") or {}).items())),
            "cached": bool(s.get("cached")),
        })
    return {
        "id": detail.get("id", ""), "short": short(detail.get("id"), 8), "sample_index": detail.get("sample_index"),
        "repeat": detail.get("repeat", 0), "status": detail.get("status", ""), "error": detail.get("error") or "",
        "score": fmt_score(detail.get("score")), "output": detail.get("output") or "",
        "scores": [{"scorer": sc.get("scorer", ""), "value": fmt_score(sc.get("value")), "source": sc.get("source", "auto")}
                   for sc in detail.get("scores") or []],
        "stages": stages,
    }


class Leaderboard(PLWidget):
    """The experiment's leaderboard; ``live=True`` refreshes it while the sweep adds runs.

    Rejected configurations stay visible (marked, so the decision can be undone) but the
    facade's leaderboard, exports and "best" leave them out.
    """

    _esm = esm("leaderboard")
    _css = asset("leaderboard", "widget.css")

    columns = traitlets.List().tag(sync=True)
    rows = traitlets.List()  # every row, sorted, with raw values: Python's; the page gets table + delta
    table = traitlets.Dict().tag(sync=True)  # the whole board, sent when it is rebuilt (see board_sync)
    delta = traitlets.Dict().tag(sync=True)  # what changed since, keyed
    sort = traitlets.Dict({"key": "score", "desc": True}).tag(sync=True)
    expanded = traitlets.Unicode("").tag(sync=True)  # full config id
    runs = traitlets.List().tag(sync=True)  # run_view() of the expanded configuration
    selected = traitlets.List().tag(sync=True)  # up to two full config ids (compare / fork)
    picked_runs = traitlets.List().tag(sync=True)  # up to two run ids (compare / rate)

    STEERING = frozenset({"approve", "reject", "clear"})

    def __init__(self, wb: Any, experiment: Any, handle: Any = None, *, live: bool = True, interval: float = 1.0,
                 readonly: bool | None = None, by: str = "", slot: str = ""):
        super().__init__(readonly=readonly, slot=slot)
        self.wb = wb
        self.experiment = experiment_key(experiment)
        self.handle = handle
        self.interval = interval
        self.by = by
        self._reader = Reader(wb)
        self._all: list[dict[str, Any]] = []
        self._sync = BoardSync()
        self._seen: Any = None
        self.frame: Any = None  # the last leaderboard DataFrame shown
        self._gap = interval  # grows with the cost of a refresh (see _tick)
        self._next = 0.0
        self._frame_callbacks: list[Callable[[Any], None]] = []
        self._select_callbacks: list[Callable[[list[str]], None]] = []
        self._run_callbacks: list[Callable[[list[str]], None]] = []
        self.refresh()
        if live:
            self._start_loop((wb.db_path, self.experiment), every(interval, self._tick, self._reader.changes(self.experiment)))

    # -- data ---------------------------------------------------------------
    @property
    def _with_rejected(self) -> bool:
        # Rejected rows are listed (after the ranking, struck through) only where they can be
        # un-rejected: a read-only board, such as a dashboard's, shows the ranking every board shows.
        return not self.readonly

    def refresh(self) -> None:
        """Read the leaderboard now (synchronously)."""
        self.show(self.wb.leaderboard(self.experiment, include_rejected=self._with_rejected))

    def show(self, frame: Any, built: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None) -> None:
        """Show a leaderboard frame; ``built`` is its ``build_rows(frame)`` when already made (in a
        worker thread: formatting a few hundred rows would hold the kernel's loop for tens of ms)."""
        self.frame = frame
        self.columns, self._all = build_rows(frame) if built is None else built
        self._resort()
        if self.expanded:
            self._load_runs(self.expanded)
        for fn in self._frame_callbacks:
            fn(frame)

    def _resort(self) -> None:
        rows = sort_rows(self._all, self.sort.get("key", "score"), bool(self.sort.get("desc", True)))
        if rows != self.rows:
            self.rows = rows
            message = self._sync.update(rows, self.columns)
            if message is not None:
                setattr(self, *message)

    async def _tick(self) -> bool:
        marker = await self._change_marker()
        now = time.monotonic()
        self._following(marker[-1])
        final = marker[-1] in TERMINAL
        if marker != self._seen and (now >= self._next or final):
            self._seen = marker
            frame, built = await self._reader.run(self._read)
            took = time.monotonic() - now
            # A big leaderboard costs the kernel (its computation holds the GIL in the worker
            # thread): refresh it at most a fifth of the time.
            self._gap = max(self.interval, 4 * took)
            self._next = time.monotonic() + self._gap
            self.show(frame, built)
        return self._closed

    def _read(self, ro: Any) -> tuple[Any, tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        # runs in the reader's thread: the read and the row building both stay off the loop
        frame = ro.leaderboard(self.experiment, include_rejected=self._with_rejected)
        return frame, build_rows(frame)

    async def _change_marker(self) -> Any:
        if self.handle is not None:
            p = self.handle.progress
            return (p.done, p.status)
        status = await self._reader.call("status", self.experiment)
        sweep = status.get("sweep") or {}
        return (sweep.get("id"), status.get("runs", {}).get("completed"), sweep.get("done"), sweep.get("status"))

    def _load_runs(self, config_id: str) -> None:
        runs = self.wb.runs(self.experiment, config=config_id, limit=MAX_RUNS)
        self.runs = [run_view(self.wb.run_detail(r["id"])) for r in runs]

    # -- wiring for the dashboard -------------------------------------------
    def on_frame(self, fn: Callable[[Any], None]) -> None:
        """``fn(frame)`` after every refresh, with the leaderboard DataFrame (charts follow it)."""
        self._frame_callbacks.append(fn)

    def on_select(self, fn: Callable[[list[str]], None]) -> None:
        """``fn(config_ids)`` when the selection (≤ 2 configurations) changes."""
        self._select_callbacks.append(fn)

    def on_pick_runs(self, fn: Callable[[list[str]], None]) -> None:
        """``fn(run_ids)`` when the picked runs (≤ 2) change."""
        self._run_callbacks.append(fn)

    # -- messages from the browser -------------------------------------------
    def _on_sort(self, key: str) -> None:
        known = {c["key"] for c in self.columns}
        if key not in known:
            raise ValueError(f"cannot sort by {key!r}")
        desc = (not self.sort.get("desc", True)) if self.sort.get("key") == key else default_direction(key)
        self.sort = {"key": key, "desc": desc}
        self._resort()

    def _on_expand(self, config_id: str) -> None:
        if self.expanded == config_id:
            self.expanded, self.runs = "", []
            return
        self._known(config_id)
        self.expanded = config_id
        self._load_runs(config_id)

    def _on_select(self, config_id: str) -> None:
        self._known(config_id)
        self.selected = chosen = toggle_two(self.selected, config_id)
        for fn in self._select_callbacks:
            fn(list(chosen))

    def _on_pick_run(self, run_id: str) -> None:
        if run_id not in {r["id"] for r in self.runs} | set(self.picked_runs):
            raise ValueError(f"unknown run {run_id!r}")
        self.picked_runs = chosen = toggle_two(self.picked_runs, run_id)
        for fn in self._run_callbacks:
            fn(list(chosen))

    def _on_refresh(self) -> None:
        self.refresh()

    def _on_resync(self) -> None:
        """A page missed deltas (it connected after them): every view gets the whole table again."""
        self._sync.resend()
        message = self._sync.update(self.rows, self.columns)
        if message is not None:
            setattr(self, *message)

    def _on_approve(self, config_id: str, reason: str = "") -> None:
        self._decide("approve", config_id, reason)

    def _on_reject(self, config_id: str, reason: str = "") -> None:
        self._decide("reject", config_id, reason)

    def _on_clear(self, config_id: str) -> None:
        self._decide("clear_decision", config_id, "")

    def _decide(self, verb: str, config_id: str, reason: str) -> None:
        self._known(config_id)
        method = getattr(self.wb, verb, None)
        if method is None:
            raise NotImplementedError(f"this PromptLooper has no Workbench.{verb}")
        kwargs = {"by": self.by} if verb == "clear_decision" else {"by": self.by, "reason": reason}
        method(self.experiment, config_id, **kwargs)
        done = {"approve": "approved", "reject": "rejected", "clear_decision": "cleared"}[verb]
        self.notice = f"{done} {short(config_id)}"
        self.refresh()

    def varied_of(self, config_id: str) -> dict[str, Any]:
        """The varied parameter values of a configuration on this board (no store read)."""
        row = next(r for r in self._all if r["id"] == config_id)
        return {c["key"]: row["values"].get(c["key"]) for c in self.columns if c["kind"] == "param"}

    def best_id(self) -> str | None:
        """The configuration ranked first (rejected ones are not ranked), or None on an empty board."""
        ranked = [r for r in self._all if r["values"].get("rank") is not None and r["decision"] != "rejected"]
        top = min(ranked, key=lambda r: r["values"]["rank"], default=None)
        return top["id"] if top else None

    def _known(self, config_id: str) -> None:
        if config_id not in {r["id"] for r in self._all}:
            raise ValueError(f"configuration {short(config_id)!r} is not on this leaderboard")
