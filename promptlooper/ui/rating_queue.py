"""Rating queue: one finished run at a time, "next unrated" first, rated from the keyboard.

Keys (in the browser): ``j`` / ``k`` next / previous, ``1``-``5`` stars, ``+`` / ``-`` thumbs up /
down, ``u`` only-unrated on / off. Each key is a message; this class keeps the order (samples,
then configurations, as the matrix reads), which runs are unrated, and where the reader is, and
writes every rating through the facade (``wb.rate``). Ratings come back as the person gave
them - thumbs and stars - never as the stored 0-1 numbers.

The order is read once (one runs-table read) and again on ``refresh`` or by :meth:`follow`
while a sweep adds runs; moving and rating read only the run on screen, so each key answers in
milliseconds on an experiment of thousands of runs.
"""

from __future__ import annotations

import getpass
from typing import Any

import traitlets

from ._assets import asset, esm
from ._base import TERMINAL, PLWidget, Reader, every, experiment_key
from ._format import clean, fmt_score, short
from .diff import messages_text

FINISHED = ("completed", "cached")
HUMAN = ("human_thumbs", "human_stars")


def queue_order(frame: Any) -> tuple[list[str], set[str]]:
    """(finished run ids in sample, configuration, repeat order; the ids with no human rating)."""
    done = frame[frame["status"].isin(FINISHED)].sort_values(["sample_index", "config_id", "repeat"], kind="stable")
    rated = None
    for col in HUMAN:
        if col in done.columns:
            has = done[col].notna()
            rated = has if rated is None else rated | has
    ids = done["run_id"].astype(str).tolist()
    unrated = set(ids) if rated is None else set(done.loc[~rated, "run_id"].astype(str))
    return ids, unrated


class RatingQueue(PLWidget):
    """Rate the experiment's runs one after another: next unrated, thumbs, stars, keys."""

    _esm = esm("queue")
    _css = asset("queue", "widget.css")

    run = traitlets.Dict().tag(sync=True)  # the run on screen, with its thumbs / stars
    position = traitlets.Dict().tag(sync=True)  # {index, total, unrated}
    only_unrated = traitlets.Bool(True).tag(sync=True)

    STEERING = frozenset({"rate"})

    def __init__(self, wb: Any, experiment: Any, *, readonly: bool | None = None, rater: str | None = None, slot: str = ""):
        super().__init__(readonly=readonly, slot=slot)
        self.wb = wb
        self.experiment = experiment_key(experiment)
        self.rater = rater if rater is not None else (getattr(wb, "actor", "") or _user())  # the Workbench's actor
        self._order: list[str] = []
        self._unrated: set[str] = set()
        self._at = -1
        self._reader = Reader(wb)
        self.reload()
        self._on_next()

    # -- reading ------------------------------------------------------------
    def reload(self, frame: Any = None) -> None:
        """Read the queue again (new runs, ratings made elsewhere); the run on screen stays."""
        current = self._order[self._at] if 0 <= self._at < len(self._order) else None
        self._order, self._unrated = queue_order(frame if frame is not None else self.wb.runs(self.experiment, as_frame=True))
        self._at = self._order.index(current) if current in self._order else -1
        self._position()

    def _position(self) -> None:
        self.position = {"index": self._at + 1, "total": len(self._order), "unrated": len(self._unrated)}

    def show(self, run_id: str) -> None:
        d = self.wb.run_detail(run_id)
        self._at = self._order.index(d["id"]) if d["id"] in self._order else self._at
        stage = (d.get("stages") or [{}])[-1]
        given = self.wb.ratings(d["id"])
        self.run = clean({"id": d["id"], "short": short(d["id"], 8), "sample_index": d.get("sample_index"),
                          "config": short(d.get("config_id")), "score": fmt_score(d.get("score")),
                          "prompt": messages_text(stage.get("prompt_sent")), "output": d.get("output") or "",
                          "thumbs": given["thumbs"], "stars": given["stars"], "by": given["by"]})
        self._position()

    def follow(self, handle: Any = None, interval: float = 2.0) -> None:
        """Take in the runs a running sweep adds (read in a worker thread) until it ends."""
        async def step() -> bool:
            # whether the sweep had ended is asked BEFORE the read, so the last read sees its last runs
            ended = bool(handle.done()) if handle is not None else \
                await self._reader.run(lambda ro: ro.status(self.experiment).get("status") in TERMINAL)
            frame = await self._reader.call("runs", self.experiment, as_frame=True)
            if self._closed:
                return True
            self.reload(frame)
            if not self.run:
                self._on_next()
            return ended

        self._start_loop(("queue", self.experiment), every(interval, step, self._reader.changes(self.experiment)))

    def next_unrated(self) -> None:
        """Move to the next unrated run (``j`` in the browser)."""
        self._on_next()

    def rate(self, thumbs: str | None = None, stars: int | None = None) -> None:
        """Rate the run on screen, as ``+`` / ``-`` / ``1``-``5`` do (refused when read-only)."""
        if self.readonly:
            raise PermissionError("read-only view: ratings are disabled")
        self._on_rate(thumbs=thumbs, stars=stars)

    # -- messages -------------------------------------------------------------
    def _on_next(self) -> None:
        n = len(self._order)
        for step in range(1, n + 1):  # the next one after the current, wrapping around
            i = (self._at + step) % n
            if not self.only_unrated or self._order[i] in self._unrated:
                self.show(self._order[i])
                return
        if n and not self.only_unrated:
            return
        self.notice = "Every finished run is rated." if n else "No finished run to rate yet."

    def _on_prev(self) -> None:
        if self._at > 0:
            self.show(self._order[self._at - 1])

    def _on_toggle(self) -> None:
        self.only_unrated = not self.only_unrated

    def _on_refresh(self) -> None:
        self.reload()
        if self.run:
            self.show(self.run["id"])
        else:
            self._on_next()

    def _on_rate(self, thumbs: Any = None, stars: Any = None) -> None:
        if not self.run:
            raise ValueError("no run to rate")
        stars = int(stars) if stars not in (None, "") else None
        self.wb.rate(self.run["id"], thumbs=thumbs or None, stars=stars, by=self.rater)
        self._unrated.discard(self.run["id"])
        self.notice = f"rated run {self.run['short']}"
        self.show(self.run["id"])


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return ""
